"""LEADERBOARD.md: one table per dataset split, methods x metrics, from the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from moee_bench.metrics.keys import KEYS
from moee_bench.reports.bootstrap import mean_ci, set_metric_ci
from moee_bench.reports.breakdown import closeness_cis, render_markdown_sections

if TYPE_CHECKING:  # the store sits above reports; reports only receive one
    from moee_bench.bench.store import ResultStore

HEADLINE = ["fid", "kid", "fvd", "kvd", "flmd", "lpips", "psnr", "ssim", "csim", "akd", "sync_c", "sync_d", "emotion_acc",
            "compound_top2", "compound_mix", "dynamics_score"]


def method_table(store: ResultStore, run_id: str, set_bootstrap: int = 0) -> pd.DataFrame:
    """Rows = methods; per metric: value, CI low/high, N scored; plus missing and failed counts.

    ``set_bootstrap`` > 0 adds bootstrap CIs to FID from cached per-clip features (costly: one
    Fréchet distance per resample)."""
    agg = store.aggregates(run_id)
    clips = store.clip_table(run_id)
    status = store.status_table(run_id)
    rows = []
    for method in sorted(agg["method"].unique()) if not agg.empty else []:
        a = agg[agg.method == method].set_index("key")["value"]
        c = clips[clips.method == method] if not clips.empty else clips
        st = status[status.method == method] if not status.empty else status
        row: dict[str, Any] = {"method": method, "n_clips": int(a.get("n_clips", len(c))),
                               "n_missing": int(a.get("n_missing", 0) or 0)}
        failed = st[~st.status.isin(["ok", "unavailable", "missing"])] if not st.empty else st
        row["n_failed"] = int(failed.clip_id.nunique()) if not failed.empty else 0
        for key in HEADLINE:
            if key not in a.index:
                continue
            v = a[key]
            row[key] = None if pd.isna(v) else float(v)
            info = KEYS.get(key)
            if key in ("kid", "kvd") and row[key] is not None and f"{key}_se" in a.index and not pd.isna(a[f"{key}_se"]):
                row[f"{key}_ci"] = (row[key] - 1.96 * float(a[f"{key}_se"]), row[key] + 1.96 * float(a[f"{key}_se"]))
            if key == "dynamics_score" and row[key] is not None and not c.empty:
                row[f"{key}_ci"] = closeness_cis(c, n_boot=300).get(key, (np.nan, np.nan))
            if info and info.kind == "set" and set_bootstrap > 0 and row[key] is not None:
                ci = set_metric_ci(store, run_id, method, key, n_boot=set_bootstrap)
                if ci is not None:
                    row[f"{key}_ci"] = ci
            if info and info.kind == "clip_mean" and key in c.columns:
                vals = c[key].to_numpy(dtype=float)
                row[f"{key}_n"] = int(np.isfinite(vals).sum())
                row[f"{key}_ci"] = mean_ci(vals)
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(key: str, row: pd.Series, best: Any) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    info = KEYS[key]
    s = info.fmt.format(v)
    ci = row.get(f"{key}_ci")
    if isinstance(ci, tuple) and np.isfinite(ci[0]) and ci[0] != ci[1]:
        s += f" [{info.fmt.format(ci[0])}, {info.fmt.format(ci[1])}]"
    return f"**{s}**" if best is not None and v == best else s


def _code(s: str) -> str:
    """``s`` as inline markdown code that neither breaks the table nor the list (hostile clip ids)."""
    s = str(s).replace("`", "'").replace("\n", " ").replace("|", "\\|")
    return f"`{s}`"


def clip_warning_notes(clips: pd.DataFrame, limit: int = 5) -> list[str]:
    """Protocol notes for the per-clip warnings of a run (length mismatch, fps resampling, ...): one line
    per method and kind of warning, with its first message in full and the clips it concerns."""
    import re

    if clips.empty or "warnings" not in clips.columns:
        return []
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for method, cid, ws in zip(clips.method, clips.clip_id, clips.warnings):
        try:
            items = json.loads(ws) if isinstance(ws, str) else []
        except json.JSONDecodeError:
            items = [ws]
        for w in items:
            groups.setdefault((method, re.sub(r"\d+(\.\d+)?", "#", str(w))), []).append((cid, str(w)))
    lines = []
    for (method, _), items in sorted(groups.items()):
        names = ", ".join(_code(c) for c, _ in items[:limit])
        names += f" and {len(items) - limit} more" if len(items) > limit else ""
        lines.append(f"- {_code(method)}, {len(items)} clip{'s' if len(items) > 1 else ''} ({names}): {items[0][1]}"
                     + (" (first clip's values)" if len(items) > 1 else ""))
    return lines


def unverified_warning(meta: dict) -> str:
    """The run's unverified-weights warning (per metric; a run stored before per-metric records: whole run)."""
    bad = meta.get("unverified_weights")
    if not bad:
        return ""
    if bad is True:
        return "computed with unverified weights; not comparable"
    return (", ".join(f"`{m}`" for m in bad) + " computed with unverified weights (digest matches neither the "
            "registry, the lock nor a --trust pin); not comparable")


def weight_note(f: dict) -> str:
    """One weight file of a metric: registry name, file name, full sha256 and how it was trusted."""
    return f"`{f.get('name')}` {Path(str(f.get('file', ''))).name} sha256 `{f.get('sha256')}` ({f.get('trust', '?')})"


def render_markdown(store: ResultStore, run_ids: list[str] | None = None, set_bootstrap: int = 0) -> str:
    runs = {r["run_id"]: r for r in store.runs()}
    ids = run_ids or list(runs)
    out = ["# moee-bench leaderboard", "",
           "Generated by `moee-bench report` from the result store; nothing here is typed by hand. "
           "Values are means over clips with 95% percentile-bootstrap CIs over clips (1000 resamples); "
           "FID/FVD/FLMD are set-level (CIs for them only with `--set-bootstrap N`: clips resampled, recomputed from cached features); "
           "KID/KVD CIs are ±1.96 standard errors (Bińkowski et al.'s variance estimate; frames/windows treated as independent) "
           "unless `--set-bootstrap N`; Dyn-Score is THEval's mean closeness to the GT, CI by resampling clips. "
           "↑ higher is better, ↓ lower is better, ≈GT closest to the GT row is best; best per column in bold. "
           "— means not computed (the reason is in the notes), never zero.", ""]
    for rid in ids:
        r = runs.get(rid)
        if r is None:
            continue
        meta = r["meta"]
        t = method_table(store, rid, set_bootstrap)
        out += [f"## {meta.get('dataset_name', r['dataset'])} / split `{r['split']}` (run `{rid}`)", ""]
        if t.empty:
            out += ["No results.", ""]
            continue
        keys = [k for k in HEADLINE if k in t.columns and t[k].notna().any()]
        head = ["method", "N", "missing", "failed"] + [f"{KEYS[k].label} {KEYS[k].arrow}" for k in keys]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        best = {}
        for k in keys:
            col = t[k].dropna()
            best[k] = (col.max() if KEYS[k].higher_is_better else col.min()) if len(col) > 1 else None
        for _, row in t.iterrows():
            cells = [_code(row['method']), str(row["n_clips"]), str(row["n_missing"]), str(row["n_failed"])]
            cells += [_fmt(k, row, best[k]) for k in keys]
            out.append("| " + " | ".join(cells) + " |")
        clips = store.clip_table(rid)
        out += [""] + render_markdown_sections(clips)
        out += ["", "Protocol notes:", ""]
        warn = unverified_warning(meta)
        if warn:
            out.append(f"- **WARNING: {warn}**")
        for name, why in (meta.get("metrics_unavailable") or {}).items():
            out.append(f"- `{name}` not computed: {str(why).splitlines()[0] if why else ''}")
        for name, proto in (meta.get("protocol") or {}).items():
            short = {k: v for k, v in proto.items() if k not in ("metric",) and not str(k).endswith("sha256")}
            out.append(f"- `{name}`: " + json.dumps(short, default=str))
        for name, files in (meta.get("weights_by_metric") or {}).items():
            out.append(f"- `{name}` weights: " + "; ".join(weight_note(f) for f in files))
        out += clip_warning_notes(clips)
        out += [f"- dataset manifest hash `{meta.get('manifest_hash', '')[:12]}`, suite hash `{r['suite_hash'][:12]}`, "
                f"git `{(meta.get('git_commit') or 'n/a')[:10]}`, device {meta.get('device')}, seed {meta.get('seed')}", ""]
    return "\n".join(out) + "\n"
