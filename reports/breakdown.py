"""Report sections built from per-clip values: breakdowns by target emotion and intensity, the intensity
response of the emotion classifier, and the landmark-dynamics table (raw values, GT row, closeness).

Everything here groups clips the split already has; nothing is generated or scored again. CIs are
95 % percentile bootstraps over clips (:mod:`reports.bootstrap`, seeded).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from moee_bench.metrics.core.keys import DYNAMICS_LABELS, KEYS
from moee_bench.reports.bootstrap import mean_ci

BREAKDOWN_KEYS = ("sync_c", "sync_d", "emotion_acc")
GT_METHODS = ("ground-truth", "gt")


def _cell(vals: np.ndarray, fmt: str) -> str:
    v = np.asarray(vals, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "—"
    lo, hi = mean_ci(v)
    s = fmt.format(v.mean())
    if lo != hi:
        s += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return f"{s} (n={len(v)})"


def breakdown(clips: pd.DataFrame, key: str, by: str) -> pd.DataFrame | None:
    """Methods x groups (``by`` = ``emotion`` or ``intensity``): mean of ``key`` with its bootstrap CI and n."""
    if clips.empty or key not in clips.columns or by not in clips.columns:
        return None
    c = clips[np.isfinite(pd.to_numeric(clips[key], errors="coerce"))]
    c = c[c[by].notna()]
    if c.empty:
        return None
    fmt = KEYS[key].fmt if key in KEYS else "{:.3f}"
    groups = sorted(c[by].unique(), key=lambda g: (str(type(g)), g))
    rows = []
    for method, mc in c.groupby("method"):
        row = {"method": method}
        for g in groups:
            row[str(g)] = _cell(mc[mc[by] == g][key].to_numpy(float), fmt)
        rows.append(row)
    return pd.DataFrame(rows)


def target_probability(clips: pd.DataFrame) -> pd.Series:
    """Per clip, the classifier's probability of the clip's own target emotion (``emotion_target_prob``; older
    stores: ``emotion_prob/<target>``)."""
    if "emotion_target_prob" in clips.columns:
        return pd.to_numeric(clips["emotion_target_prob"], errors="coerce")
    out = pd.Series(np.nan, index=clips.index)
    for i, row in clips.iterrows():
        col = f"emotion_prob/{row.get('emotion')}"
        if col in clips.columns:
            out[i] = row[col]
    return out


def intensity_response(clips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """For clips with an intensity label: per method and level, emotion accuracy and mean target probability;
    and per method and emotion, Spearman's rho of the target probability with the level (scipy.stats.spearmanr).

    None when no scored clip carries an intensity. The ground-truth method, if the suite ran it, is the GT row."""
    from scipy.stats import spearmanr

    need = {"intensity", "emotion", "method"}
    if clips.empty or not need <= set(clips.columns) or "emotion_acc" not in clips.columns:
        return None
    c = clips[clips["intensity"].notna()].copy()
    c["target_prob"] = target_probability(c)
    c = c[np.isfinite(pd.to_numeric(c["emotion_acc"], errors="coerce"))]
    if c.empty:
        return None
    levels = sorted(int(x) for x in c["intensity"].unique())
    rows = []
    for method, mc in c.groupby("method"):
        for lv in levels:
            lc = mc[mc["intensity"].astype(int) == lv]
            rows.append({"method": method, "level": lv, "n": len(lc),
                         "emotion_acc": _cell(lc["emotion_acc"].to_numpy(float), "{:.3f}"),
                         "target_prob": _cell(lc["target_prob"].to_numpy(float), "{:.3f}")})
    per_level = pd.DataFrame(rows)
    rho_rows = []
    for (method, emo), ec in c.groupby(["method", "emotion"]):
        x, y = ec["intensity"].astype(float).to_numpy(), ec["target_prob"].to_numpy(float)
        ok = np.isfinite(y)
        if ok.sum() < 3 or len(np.unique(x[ok])) < 2:
            rho_rows.append({"method": method, "emotion": emo, "n": int(ok.sum()), "spearman_rho": None, "p": None,
                             "note": "needs >= 3 clips over >= 2 levels"})
            continue
        r = spearmanr(x[ok], y[ok])
        rho_rows.append({"method": method, "emotion": emo, "n": int(ok.sum()),
                         "spearman_rho": float(r.statistic), "p": float(r.pvalue), "note": ""})
    return per_level, pd.DataFrame(rho_rows)


def closeness_of_means(pred: np.ndarray, gt: np.ndarray) -> float:
    """THEval's ``1 - |mean(pred) - mean(gt)| / |mean(gt)|`` over paired clips (NaN if undefined)."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    ok = np.isfinite(p) & np.isfinite(g)
    if not ok.any() or abs(g[ok].mean()) <= 1e-9:
        return float("nan")
    return float(1 - abs(p[ok].mean() - g[ok].mean()) / abs(g[ok].mean()))


def _closeness_resamples(p: np.ndarray, g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Closeness of the paired means for each row of resampled clip indices ``idx`` (vectorised)."""
    ok = np.isfinite(p) & np.isfinite(g)
    pz, gz = np.where(ok, p, 0.0), np.where(ok, g, 0.0)
    cnt = ok[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pm, gm = pz[idx].sum(axis=1) / cnt, gz[idx].sum(axis=1) / cnt
        return np.where((cnt > 0) & (np.abs(gm) > 1e-9), 1 - np.abs(pm - gm) / np.abs(gm), np.nan)


def _quantiles(vals: np.ndarray, level: float) -> tuple[float, float]:
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def closeness_cis(clips: pd.DataFrame, n_boot: int = 1000, level: float = 0.95,
                  seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap CIs over clips (one method's) of each ``<key>_closeness`` and of ``dynamics_score``;
    every statistic is recomputed on the same resamples."""
    n = len(clips)
    if n < 2:
        return {}
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    res = {k: _closeness_resamples(clips[k].to_numpy(float), clips[f"{k}_gt"].to_numpy(float), idx)
           for k in DYNAMICS_LABELS if k in clips.columns and f"{k}_gt" in clips.columns}
    out = {f"{k}_closeness": _quantiles(v, level) for k, v in res.items()}
    if len(res) == len(DYNAMICS_LABELS):
        out["dynamics_score"] = _quantiles(np.mean(np.stack(list(res.values())), axis=0), level)
    return out


def dynamics_table(clips: pd.DataFrame) -> pd.DataFrame | None:
    """Rows: ``GT`` (the GT videos of every clip scored, each clip once) then methods; columns: raw THEval
    statistics (mean [CI] over clips) and, for methods, closeness to the GT over their paired clips [CI]."""
    if clips.empty or not any(k in clips.columns for k in DYNAMICS_LABELS):
        return None
    rows = []
    gt_rows = clips.drop_duplicates("clip_id")
    row: dict[str, Any] = {"method": "GT"}
    for k in DYNAMICS_LABELS:
        row[k] = _cell(gt_rows[f"{k}_gt"].to_numpy(float), KEYS[k].fmt) if f"{k}_gt" in gt_rows.columns else "—"
        row[f"{k}_closeness"] = "—"
    rows.append(row)
    for method, mc in clips.groupby("method"):
        row = {"method": method}
        cis = closeness_cis(mc, n_boot=300)
        for k in DYNAMICS_LABELS:
            row[k] = _cell(mc[k].to_numpy(float), KEYS[k].fmt) if k in mc.columns else "—"
            if k in mc.columns and f"{k}_gt" in mc.columns:
                v = closeness_of_means(mc[k].to_numpy(float), mc[f"{k}_gt"].to_numpy(float))
                lo, hi = cis.get(f"{k}_closeness", (np.nan, np.nan))
                row[f"{k}_closeness"] = "—" if not np.isfinite(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
            else:
                row[f"{k}_closeness"] = "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _md(df: pd.DataFrame, header: dict[str, str] | None = None) -> list[str]:
    cols = list(df.columns)
    head = [header.get(c, c) if header else c for c in cols]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join("—" if r[c] is None or (isinstance(r[c], float) and np.isnan(r[c])) else
                                     (f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])) for c in cols) + " |")
    return out


def dynamics_header() -> dict[str, str]:
    h = {"method": "method"}
    for k, lbl in DYNAMICS_LABELS.items():
        h[k] = f"{lbl} ≈GT"
        h[f"{k}_closeness"] = f"{lbl} close ↑"
    return h


def render_markdown_sections(clips: pd.DataFrame) -> list[str]:
    """The breakdown, intensity-response and dynamics sections of LEADERBOARD.md for one run."""
    out: list[str] = []
    dyn = dynamics_table(clips)
    if dyn is not None:
        out += ["### Landmark dynamics (THEval definitions; raw values closest to the GT row are best)", ""]
        out += _md(dyn, dynamics_header()) + [""]
    for by in ("emotion", "intensity"):
        for key in BREAKDOWN_KEYS:
            t = breakdown(clips, key, by)
            if t is not None and len(t.columns) > 2:
                info = KEYS[key]
                out += [f"### {info.label} {info.arrow} by target {by}", ""] + _md(t) + [""]
    ir = intensity_response(clips)
    if ir is not None:
        per_level, rho = ir
        out += ["### Intensity response (emotion classifier on each method's clips, per labelled intensity level)", ""]
        out += _md(per_level) + ["", "Spearman correlation of the target-emotion probability with the intensity level, per emotion:", ""]
        out += _md(rho) + [""]
    return out


def render_html_sections(clips: pd.DataFrame) -> list[str]:
    """The same sections as HTML tables."""
    import html

    parts: list[str] = []
    dyn = dynamics_table(clips)
    if dyn is not None:
        parts.append("<h3>Landmark dynamics (THEval definitions; raw values closest to the GT row are best)</h3>")
        parts.append(dyn.rename(columns=dynamics_header()).to_html(index=False, na_rep="—", table_id="dynamics"))
    for by in ("emotion", "intensity"):
        for key in BREAKDOWN_KEYS:
            t = breakdown(clips, key, by)
            if t is not None and len(t.columns) > 2:
                info = KEYS[key]
                parts.append(f"<h3>{html.escape(info.label)} {info.arrow} by target {by}</h3>")
                parts.append(t.to_html(index=False, na_rep="—"))
    ir = intensity_response(clips)
    if ir is not None:
        per_level, rho = ir
        parts.append("<h3>Intensity response</h3>" + per_level.to_html(index=False, na_rep="—", table_id="intensity-response"))
        parts.append("<p class='note'>Spearman correlation of the target-emotion probability with the intensity level</p>"
                     + rho.to_html(index=False, na_rep="—", float_format=lambda x: f"{x:.3f}"))
    return parts
