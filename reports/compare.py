"""Regression compare between two runs: paired bootstrap CI of the per-clip difference per metric.

The difference is that of the estimator the leaderboard shows (frame-weighted means for the
frame-averaged metrics, :data:`moee_bench.metrics.core.keys.KeyInfo.weight`). Every caveat stored with either run's
aggregates is listed under the table; a GT-aligned metric of a method that re-crops the face is
``not comparable`` (with the reason), never a regression or an improvement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moee_bench.metrics.core.keys import KEYS
from moee_bench.metrics.core.registry import METRICS, metric_classes
from moee_bench.reports.bootstrap import weighted_mean
from moee_bench.reports.resampling import CORRECTIONS, PairedTest, adjust, paired_test


@dataclass
class Verdict:
    key: str
    method: str
    base: float
    new: float
    diff: float
    lo: float
    hi: float
    n: int
    verdict: str      # regressed | improved | no significant change | not comparable | missing
    reason: str = ""
    flags: str = ""   # footnote marks: ‡ not comparable, † a warning on either side
    p: float = float("nan")          # bootstrap p-value of "beyond the threshold" (see reports.resampling)
    p_adjusted: float = float("nan")  # after the multiplicity correction over every test of the compare
    estimator: str = ""              # the resampling that made the CI and the p-value
    refused: str = ""                # runs | data | method: why not comparable (runs/data: exit 5; method: n/c‡)

    def as_dict(self) -> dict:
        """JSON-ready (NaN -> None)."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


@dataclass
class RunCaveats:
    """What the compare needs to know about one run besides its per-clip table (from its store)."""

    not_comparable: dict[str, dict[str, str]] = field(default_factory=dict)   # method -> key -> reason
    warned: dict[str, dict[str, str]] = field(default_factory=dict)           # method -> key -> warning
    lines: dict[str, list[str]] = field(default_factory=dict)                 # method -> caveat lines


def run_caveats(agg: pd.DataFrame) -> RunCaveats:
    """Collect the caveats stored with a run's aggregates (``aggregates.extra``)."""
    out = RunCaveats()
    if agg.empty or "extra" not in agg.columns:
        return out
    for method, key, extra in zip(agg["method"], agg["key"], agg["extra"]):
        try:
            e = json.loads(extra) if extra else {}
        except (TypeError, ValueError):
            continue
        if e.get("not_comparable"):
            out.not_comparable.setdefault(method, {})[key] = e["not_comparable"]
        for what in ("warning", "unverified"):
            if e.get(what):
                out.warned.setdefault(method, {})[key] = e[what]
        if key == "caveats":
            out.lines[method] = list(e.get("items") or [])
    return out


def _num(v: object) -> bool:
    """Whether an aggregate cell holds a finite number (None/NaN: not computed)."""
    return v is not None and np.isfinite(float(v))


def _finite(df: pd.DataFrame, key: str) -> np.ndarray:
    if df.empty or key not in df.columns:
        return np.zeros(0)
    v = pd.to_numeric(df[key], errors="coerce").to_numpy(float)
    return v[np.isfinite(v)]


def comparability(base_run: dict, new_run: dict, keys: list[str]) -> dict[str, str]:
    """Metric key -> why two runs (rows of ``ResultStore.runs()``) cannot be compared on it: a different
    dataset, manifest or split (every key), a different decode/resize rule or precision (every key), or a
    metric whose protocol (parameters) or weight files (sha256) differ. Only what both runs recorded is
    checked; a key absent from the result is comparable."""
    bm, nm = base_run.get("meta") or {}, new_run.get("meta") or {}
    whole: list[str] = []
    for what, b, n in (("dataset", base_run.get("dataset"), new_run.get("dataset")),
                       ("manifest (content hash)", bm.get("manifest_hash"), nm.get("manifest_hash")),
                       ("split", base_run.get("split"), new_run.get("split")),
                       ("decode/resize rule", bm.get("ingest"), nm.get("ingest")),
                       ("precision", bm.get("precision"), nm.get("precision"))):
        if b and n and b != n:
            whole.append(f"different {what}: {_short(b)} vs {_short(n)}")
    bp, np_ = bm.get("protocol") or {}, nm.get("protocol") or {}
    bw, nw = bm.get("weights_by_metric") or {}, nm.get("weights_by_metric") or {}
    owner: dict[str, str] = {}
    classes = metric_classes(sorted(n for n in set(bp) | set(np_) if n in METRICS))
    for name, cls in classes.items():
        # a metric whose module cannot be imported here: its keys are the ones named after it (sync_c, emotion_acc)
        for k in (cls.keys if cls is not None else [k for k in keys if k == name or k.startswith(name + "_")]):
            owner.setdefault(k, name)
    out: dict[str, str] = {}
    for k in keys:
        why = list(whole)
        m = owner.get(k)
        diff = sorted(x for x in set(bp.get(m) or {}) | set(np_.get(m) or {})
                      if not _location(x) and bp[m].get(x) != np_[m].get(x)) if m and m in bp and m in np_ else []
        if diff:
            why.append(f"`{m}` protocol differs in " + ", ".join(
                f"{x} ({_short(bp[m].get(x))} vs {_short(np_[m].get(x))})" for x in diff))
        if m and m in bw and m in nw:
            bs, ns = sorted(f.get("sha256") or "" for f in bw[m]), sorted(f.get("sha256") or "" for f in nw[m])
            if bs != ns:
                why.append(f"`{m}` weight files differ (sha256 {', '.join(x[:12] for x in bs)} vs "
                           f"{', '.join(x[:12] for x in ns)})")
        if why:
            out[k] = "runs not comparable: " + "; ".join(why)
    return out


def _location(field_name: str) -> bool:
    """Protocol fields that name where a file lies (``ffmpeg_path``), not what it is: not compared."""
    return field_name.endswith("_path") or field_name in ("path", "file")


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return f"{p:.3f}" if p >= 0.001 else (f"{p:.1e}" if p >= 1e-16 else "<1e-16")


def _short(v: object) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


def compare_tables(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = 0.0, metrics: list[str] | None = None,
                   n_boot: int = 2000, seed: int = 0, base_caveats: RunCaveats | None = None,
                   new_caveats: RunCaveats | None = None, base_agg: pd.DataFrame | None = None,
                   new_agg: pd.DataFrame | None = None, alpha: float = 0.05, correction: str = "holm",
                   resample: str = "auto", refused: dict[str, str] | None = None) -> list[Verdict]:
    """Per method and clip-averaged metric: regression when the whole ``1 - alpha`` CI of (new - base) lies on
    the worse side beyond ``threshold`` (in the metric's units); improvement symmetric; the p-values of every
    test are adjusted together (``correction``: holm, bh or none) and a verdict needs the adjusted p < alpha.
    The bootstrap resamples identities then clips when the clips have identities (``resample``: auto,
    cluster, clip; :mod:`reports.resampling`). A key marked not comparable in either run (a re-cropping
    method) is ``not comparable`` with its reason; a key in ``refused`` (runs whose protocol differs,
    :func:`comparability`) is ``not comparable`` with ``refused="runs"``.

    A metric (or a whole method) the base run has values for and the new run has none is the verdict
    ``missing``, never dropped; set-level metrics (FID, FVD) are checked for that through the
    aggregates when ``base_agg``/``new_agg`` are given."""
    out: list[Verdict] = []
    tests: list[tuple[Verdict, PairedTest]] = []
    refused = refused or {}
    bc, nc = base_caveats or RunCaveats(), new_caveats or RunCaveats()
    keys = metrics or [k for k, i in KEYS.items() if i.kind == "clip_mean" and not i.closer_to_gt]  # ≈GT keys have no direction
    empty = pd.DataFrame(columns=["clip_id"])
    for method in sorted(set(base.method) if not base.empty else []):
        b = base[base.method == method].set_index("clip_id")
        n = (new[new.method == method] if not new.empty else empty).set_index("clip_id")
        common = b.index.intersection(n.index)
        for k in keys:
            if len(_finite(b, k)) == 0:
                continue
            if len(_finite(n, k)) == 0:
                bm = float(_finite(b, k).mean())
                out.append(Verdict(k, method, bm, np.nan, np.nan, np.nan, np.nan, 0, "missing"))
                continue
            if k in refused:
                out.append(Verdict(k, method, np.nan, np.nan, np.nan, np.nan, np.nan, 0, "not comparable", refused[k],
                                   "‡", refused="runs"))
                continue
            w = KEYS[k].weight
            bv, nv = b.loc[common, k].to_numpy(float), n.loc[common, k].to_numpy(float)
            ok = np.isfinite(bv) & np.isfinite(nv)
            bw = nw = None
            if w and w in b.columns and w in n.columns:
                bw, nw = b.loc[common, w].to_numpy(float), n.loc[common, w].to_numpy(float)
                ok &= np.isfinite(bw) & np.isfinite(nw) & (bw > 0) & (nw > 0)
                bw, nw = bw[ok], nw[ok]
            warn = "; ".join(x for x in (bc.warned.get(method, {}).get(k), nc.warned.get(method, {}).get(k)) if x)
            flags = "†" if warn else ""
            nc_reason = nc.not_comparable.get(method, {}).get(k) or bc.not_comparable.get(method, {}).get(k)
            if ok.sum() < 2:
                nb, nn = len(_finite(b, k)), len(_finite(n, k))
                # runs that scored different clips cannot be compared (exit 5); a subgroup of one clip is just small
                disjoint = nb >= 2 and nn >= 2
                why = (f"fewer than 2 clips scored in both runs ({nb} in base, {nn} in new: different clips)" if disjoint
                       else f"fewer than 2 clips scored ({nb} in base, {nn} in new): too few to test")
                out.append(Verdict(k, method, np.nan, np.nan, np.nan, np.nan, np.nan, int(ok.sum()), "not comparable",
                                   f"{why}; {warn}".rstrip("; "), flags, refused="data" if disjoint else ""))
                continue
            groups = b.loc[common, "identity"].to_numpy(object)[ok] if "identity" in b.columns else None
            t = paired_test(bv[ok], nv[ok], base_weights=bw, new_weights=nw, groups=groups, mode=resample,
                            higher_is_better=KEYS[k].higher_is_better, threshold=threshold, n_boot=n_boot,
                            level=1 - alpha, seed=seed)
            bm, nm = weighted_mean(bv[ok], bw), weighted_mean(nv[ok], nw)
            v = Verdict(k, method, bm, nm, t.diff, t.lo, t.hi, int(ok.sum()), "no significant change", warn, flags,
                        estimator=t.resampling.name + (f" ({t.resampling.note})" if t.resampling.note else ""))
            if nc_reason:
                v.verdict, v.reason, v.flags, v.refused = "not comparable", nc_reason, "‡" + flags, "method"
            else:
                tests.append((v, t))
            out.append(v)
    for (v, t), padj in zip(tests, adjust([t.p for _, t in tests], correction)):
        v.p, v.p_adjusted = t.p, float(padj)
        if padj < alpha:
            v.verdict = "improved" if t.side == "better" else "regressed"
    if base_agg is not None and new_agg is not None and not base_agg.empty:
        for (method, key), v in base_agg.set_index(["method", "key"])["value"].items():
            info = KEYS.get(key)
            if info is None or info.kind != "set" or (metrics and key not in metrics) or not _num(v):
                continue
            nv = new_agg[(new_agg.method == method) & (new_agg.key == key)]["value"] if not new_agg.empty else []
            if not len(nv) or not _num(nv.iloc[0]):
                out.append(Verdict(key, method, float(v), np.nan, np.nan, np.nan, np.nan, 0, "missing"))
    return out


def render(verdicts: list[Verdict], base_name: str, new_name: str, base_caveats: RunCaveats | None = None,
           new_caveats: RunCaveats | None = None, *, alpha: float = 0.05, correction: str = "holm",
           threshold: float = 0.0) -> str:
    """The compare as markdown: one row per method and metric, the estimator and the correction named."""
    tested = [v for v in verdicts if np.isfinite(v.p)]
    estimators = sorted({v.estimator for v in tested})
    level = f"{100 * (1 - alpha):g}%"
    lines = [f"# moee-bench compare: `{base_name}` -> `{new_name}`", "",
             f"Paired bootstrap over clips scored in both runs ({level} CI of new - base; frame-weighted means for "
             "frame-averaged metrics). Regressed / improved: the whole interval beyond "
             f"±{threshold:g} and the p-value, adjusted for {len(tested)} test(s) by "
             f"{CORRECTIONS[correction]}, below alpha = {alpha:g}. ‡ not comparable (never a verdict); "
             "† a warning on either side.", "",
             *[f"Resampling: {e}." for e in estimators], *([""] if estimators else []),
             "| method | metric | base | new | diff [CI] | N | p (adj.) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for v in verdicts:
        f = KEYS[v.key].fmt
        label = f"{KEYS[v.key].label} {'↑' if KEYS[v.key].higher_is_better else '↓'}{v.flags}"
        if v.reason:
            notes.append(f"- `{v.method}` {KEYS[v.key].label}{v.flags}: {v.reason}")
        if v.verdict == "not comparable" and not np.isfinite(v.diff):
            lines.append(f"| `{v.method}` | {label} | — | — | — | {v.n} | — | not comparable |")
            continue
        if v.verdict == "missing":
            lines.append(f"| `{v.method}` | {KEYS[v.key].label} | {f.format(v.base)} | — | — | 0 | — | "
                         "⚠️ missing in the new run |")
            continue
        mark = {"regressed": "❌ regressed", "improved": "✅ improved"}.get(v.verdict, v.verdict)
        lines.append(f"| `{v.method}` | {label} | {f.format(v.base)} | {f.format(v.new)} | "
                     f"{v.diff:+.4f} [{v.lo:+.4f}, {v.hi:+.4f}] | {v.n} | {_p(v.p_adjusted)} | {mark} |")
    for name, cav in ((base_name, base_caveats), (new_name, new_caveats)):
        for method, items in sorted((cav.lines if cav else {}).items()):
            notes += [f"- `{name}` `{method}`: {x}" for x in items]
    if notes:
        lines += ["", "Caveats:", "", *dict.fromkeys(notes)]
    return "\n".join(lines) + "\n"
