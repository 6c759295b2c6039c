"""LEADERBOARD.md: one table per dataset split, methods x metrics, from the store."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moee_bench.bench.core.statuses import is_failure
from moee_bench.metrics.core.keys import KEYS
from moee_bench.metrics.core.registry import METRICS, metric_class
from moee_bench.reports.bootstrap import percentile_ci_method, set_metric_bootstrap
from moee_bench.reports.breakdown import closeness_cis, render_markdown_sections
from moee_bench.reports.resampling import mean_ci as resampled_mean_ci
from moee_bench.reports.significance import Ties, tied_with_best
from moee_bench.reports.source import ResultSource


FRECHET_KEYS = ("fid", "fvd", "flmd")      # set-level Fréchet distances: plug-in estimates biased upwards
HEADLINE = ["fid", "kid", "fvd", "kvd", "flmd", "lpips", "psnr", "ssim", "csim", "akd", "sync_c", "sync_d", "emotion_acc",
            "compound_top2", "compound_mix", "dynamics_score"]


#: units of the headline columns (AKD: FOMM's convention, landmarks of frames resized to 256x256)
UNITS = {"psnr": "dB", "akd": "px at 256²"}


def column_label(key: str) -> str:
    """A headline column's title: label, unit, direction (``PSNR (dB) ↑``)."""
    unit = f" ({UNITS[key]})" if key in UNITS else ""
    return f"{KEYS[key].label}{unit} {KEYS[key].arrow}"


def _extras(agg: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if "extra" not in agg.columns:
        return out
    for k, e in zip(agg["key"], agg["extra"]):
        try:
            out[k] = json.loads(e) if e else {}
        except (TypeError, ValueError):
            out[k] = {}
    return out


def method_table(store: ResultSource, run_id: str, set_bootstrap: int = 0) -> pd.DataFrame:
    """Rows = methods; per metric: value, CI low/high, N scored, flags; plus missing and failed counts and caveats.

    The CI of a clip-averaged key bootstraps the estimator of its value (frame-weighted where the value is a
    mean over frames, :data:`moee_bench.metrics.core.keys.KeyInfo.weight`). ``<key>_flags`` carries the caveats stored with
    the aggregate (``not_comparable``, ``warning``, ``unverified``); ``caveats`` the method's caveat lines.
    ``set_bootstrap`` > 0 adds bootstrap CIs to FID/FVD from cached per-clip features (costly: one Fréchet
    distance per resample)."""
    agg = store.aggregates(run_id)
    clips = store.clip_table(run_id)
    status = store.status_table(run_id)
    run = next((r for r in store.runs() if r["run_id"] == run_id), {"meta": {}})
    psnr_head = ((run["meta"].get("protocol") or {}).get("psnr") or {}).get("headline", "")
    rows = []
    # the suite's order (the built-in suite leads with the MoEE reference and its ablations), then any other
    suite_order = list(run["meta"].get("methods") or {})
    for method in sorted(agg["method"].unique(), key=lambda m: (suite_order.index(m) if m in suite_order else
                                                                  len(suite_order), m)) if not agg.empty else []:
        am = agg[agg.method == method]
        a = am.set_index("key")["value"]
        extras = _extras(am)
        c = clips[clips.method == method] if not clips.empty else clips
        st = status[status.method == method] if not status.empty else status
        row: dict[str, Any] = {"method": method, "n_clips": int(a.get("n_clips", len(c))),
                               "n_missing": int(a.get("n_missing", 0) or 0),
                               "caveats": list((extras.get("caveats") or {}).get("items") or [])}
        failed = st[st.status.map(is_failure)] if not st.empty else st
        row["n_failed"] = int(failed.clip_id.nunique()) if not failed.empty else 0
        for key in HEADLINE:
            owner = _metric_of(key)
            why = ((extras.get(key) or {}).get("reason") or (extras.get(owner) or {}).get("reason")
                   or (run["meta"].get("metrics_unavailable") or {}).get(owner))
            if why:
                row[f"{key}_reason"] = str(why).splitlines()[0]
            if key not in a.index:
                continue
            v = a[key]
            row[key] = None if pd.isna(v) else float(v)
            row[f"{key}_flags"] = {k: x for k, x in (extras.get(key) or {}).items()
                                   if k in ("not_comparable", "warning", "unverified")}
            info = KEYS.get(key)
            row[f"{key}_ci_method"] = "none (set-level; --set-bootstrap N)" if info and info.kind == "set" else "none"
            if key in ("kid", "kvd") and row[key] is not None and f"{key}_se" in a.index and not pd.isna(a[f"{key}_se"]):
                row[f"{key}_ci"] = (row[key] - 1.96 * float(a[f"{key}_se"]), row[key] + 1.96 * float(a[f"{key}_se"]))
                row[f"{key}_ci_method"] = "±1.96 standard errors (Bińkowski et al.)"
                row[f"{key}_ci_tag"] = "±1.96 SE"
            if key == "dynamics_score" and row[key] is not None and not c.empty:
                row[f"{key}_ci"] = closeness_cis(c, n_boot=300).get(key, (np.nan, np.nan))
                row[f"{key}_ci_method"] = percentile_ci_method(300)
            if info and info.kind == "set" and set_bootstrap > 0 and row[key] is not None:
                ci, why = set_metric_bootstrap(store, run_id, method, key, n_boot=set_bootstrap)
                if ci is not None and key in FRECHET_KEYS:
                    # the plug-in Fréchet distance is biased upwards, so its percentile interval misses the true value
                    # (`bench stats`: 3 % coverage at 10 clips, 76 % at 100); the basic interval reflects the bias
                    row[f"{key}_ci"] = (max(0.0, 2 * row[key] - ci[1]), 2 * row[key] - ci[0])
                    row[f"{key}_ci_method"] = (f"95% basic bootstrap (2 x value - percentile bounds) over clips "
                                               f"({set_bootstrap} resamples), recomputed from cached features")
                    row[f"{key}_ci_tag"] = "bootstrap"
                elif ci is not None:
                    row[f"{key}_ci"] = ci
                    row[f"{key}_ci_method"] = percentile_ci_method(set_bootstrap) + ", recomputed from cached features"
                    row[f"{key}_ci_tag"] = "bootstrap"
                else:                       # the cell keeps the interval it had (if any) and names it
                    row[f"{key}_ci_note"] = why + (f"; the interval shown is {row[f'{key}_ci_tag']}"
                                                   if row.get(f"{key}_ci_tag") else "; no interval shown")
            if info and info.kind == "clip_mean" and key in c.columns:
                if key == "psnr" and psnr_head.startswith("dataset"):
                    continue                # the headline is set-level (total MSE): no clip bootstrap of it
                vals = c[key].to_numpy(dtype=float)
                w = c[info.weight].to_numpy(dtype=float) if info.weight and info.weight in c.columns else None
                row[f"{key}_n"] = int(np.isfinite(vals).sum())
                if info.weight and w is None:
                    row[f"{key}_ci_note"] = f"no CI: the store has no per-clip {info.weight} (written before weights were stored)"
                    continue
                groups = c["identity"].to_numpy(object) if "identity" in c.columns else None
                lo, hi, res = resampled_mean_ci(vals, w, groups)
                row[f"{key}_ci"] = (lo, hi)
                row[f"{key}_ci_method"] = (percentile_ci_method(what="identities, then clips within them")
                                           if res.unit == "cluster" else percentile_ci_method()) + (
                    ", frame-weighted mean" if w is not None else "") + (f" ({res.note})" if res.note else "")
        rows.append(row)
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=None)
def _metric_of(key: str) -> str | None:
    """The registered metric whose aggregate keys include ``key`` (None if none declares it)."""
    for name in METRICS:
        try:
            if key in metric_class(name).keys:
                return name
        except ImportError:
            continue
    return None


def asked_keys(meta: dict[str, Any]) -> list[str]:
    """The headline keys of the metrics the run asked for (shown even when not computed: "—", reason in the notes)."""
    asked = set((meta.get("suite") or {}).get("metrics") or []) | set(meta.get("metrics_unavailable") or {})
    return [k for k in HEADLINE if _metric_of(k) in asked]


def flag_marks(flags: Any) -> str:
    """Footnote marks of a cell: ‡ not comparable, † warning or unverified weights."""
    if not isinstance(flags, dict):
        return ""
    return ("‡" if flags.get("not_comparable") else "") + ("†" if flags.get("warning") or flags.get("unverified") else "")


def best_values(t: pd.DataFrame, keys: list[str]) -> dict[str, Any]:
    """Best value per column among the comparable cells (a not-comparable cell is never best)."""
    best: dict[str, Any] = {}
    for k in keys:
        ok = [not (isinstance(f, dict) and f.get("not_comparable")) for f in t.get(f"{k}_flags", [None] * len(t))]
        col = t[k][ok].dropna() if len(t) else t[k]
        best[k] = (col.max() if KEYS[k].higher_is_better else col.min()) if len(col) > 1 else None
    return best


def tied_methods(store: ResultStore, rid: str, t: pd.DataFrame, keys: list[str], best: dict[str, Any],
                 set_bootstrap: int = 0) -> Ties:
    """The methods tied with the best per clip-averaged column, and per FID/FVD column with ``set_bootstrap``
    (:func:`reports.significance.tied_with_best`)."""
    clips = store.clip_table(rid)
    top: dict[str, str] = {}
    cands: dict[str, list[str]] = {}
    for k in keys:
        info = KEYS[k]
        on_sets = info.kind == "set" and k in ("fid", "fvd") and set_bootstrap > 0
        if best.get(k) is None or info.closer_to_gt or not (on_sets or (info.kind == "clip_mean" and k in clips.columns)):
            continue
        ok = [not (isinstance(f, dict) and f.get("not_comparable")) and v is not None and v == v
              for f, v in zip(t.get(f"{k}_flags", [None] * len(t)), t[k])]
        rows = t[ok]
        top[k] = str(rows[rows[k] == best[k]]["method"].iloc[0])
        cands[k] = [str(m) for m in rows["method"]]
    return tied_with_best(clips, top, cands, store=store, run_id=rid, set_bootstrap=set_bootstrap)


def _fmt(key: str, row: pd.Series, best: Any, tied: set[str] | None = None) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    info = KEYS[key]
    flags = row.get(f"{key}_flags")
    s = info.fmt.format(v)
    ci = row.get(f"{key}_ci")
    if isinstance(ci, tuple) and np.isfinite(ci[0]) and ci[0] != ci[1]:
        s += f" [{info.fmt.format(ci[0])}, {info.fmt.format(ci[1])}]"
        if isinstance(row.get(f"{key}_ci_tag"), str):        # set-level cells name their estimator
            s += f" {row[f'{key}_ci_tag']}"
    marks = flag_marks(flags)
    n, n_all = row.get(f"{key}_n"), row.get("n_clips")
    if isinstance(n, (int, np.integer)) and isinstance(n_all, (int, np.integer)) and n != n_all:
        marks += f" (N={n})"                # over fewer clips than the row's N
    if isinstance(flags, dict) and flags.get("not_comparable"):
        return f"n/c ({s}){marks}"
    bold = row.get("method") in tied if tied is not None else (best is not None and v == best)
    return (f"**{s}**" if bold else s) + marks


def clip_status_note(statuses: pd.DataFrame | None, method: str, key: str) -> str:
    """`` (18 of 18 clips no_face: first message)``: what the clips of ``method`` got from the metric producing
    ``key`` when they were not scored, so that a metric not computed says why its clips were not; "" when all were."""
    if statuses is None or statuses.empty:
        return ""
    metric = _metric_of(key)
    mine = statuses[statuses["method"] == method]
    if metric is not None:
        rows = mine[mine["metric"] == metric]
        bad = rows[rows["status"] != "ok"]
        if not bad.empty:
            top = bad["status"].value_counts()
            status = str(top.index[0])
            msg = str(bad[bad["status"] == status]["message"].iloc[0] or "").splitlines()
            return (f" ({int(top.iloc[0])} of {len(rows)} clips {status}" + (f": {msg[0]}" if msg else "")
                    + (f"; {len(bad) - int(top.iloc[0])} other" if len(bad) > int(top.iloc[0]) else "") + ")")
    return ""


def caveat_lines(row: pd.Series, keys: list[str], statuses: pd.DataFrame | None = None) -> list[str]:
    """Every caveat of one method's row, one line each: the caveats stored with its aggregates (the runner
    lists them all), else the cells' flags; then the cells whose CI could not be computed, and the cells not computed
    with the reason and (``statuses``: the run's clip statuses) what their clips got."""
    out: list[str] = list(row.get("caveats") or [])
    if not out:
        for k in keys:
            flags = row.get(f"{k}_flags")
            for what in ("not_comparable", "warning", "unverified"):
                if isinstance(flags, dict) and flags.get(what):
                    out.append(f"{KEYS[k].label} {flag_marks({what: 1})}: {flags[what]}")
    for k in keys:
        note = row.get(f"{k}_ci_note")
        if isinstance(note, str):
            out.append(f"{KEYS[k].label}: {note}")
        v, why = row.get(k), row.get(f"{k}_reason")
        if v is None or (isinstance(v, float) and np.isnan(v)):
            why = why if isinstance(why, str) else "no value in the store (no clip it applies to was scored)"
            if not why.startswith("WeightsError"):
                why += clip_status_note(statuses, row["method"], k)
            out.append(f"{KEYS[k].label}{NOT_COMPUTED}{why}")
    return list(dict.fromkeys(out))


NOT_COMPUTED = " — not computed: "


def grouped_caveats(cav: list[tuple[str, list[str]]]) -> list[tuple[list[str], str]]:
    """The caveat lines of a table, each said once: within a method, metrics not computed for the same reason share
    a line ("Sync-C, Sync-D — not computed: ..."); then a line that several methods share names them all (a missing
    weight file is one line, not one per method and metric). Returns (methods, line) in first-seen order."""
    per_method: list[tuple[str, list[str]]] = []
    for method, lines in cav:
        merged: dict[str, list[str]] = {}
        for line in lines:
            label, sep, why = line.partition(NOT_COMPUTED)
            key = NOT_COMPUTED + why if sep else line
            merged.setdefault(key, []).append(label if sep else "")
        per_method.append((method, [", ".join(labels) + key if key.startswith(NOT_COMPUTED) else key
                                    for key, labels in merged.items()]))
    out: dict[str, list[str]] = {}
    for method, lines in per_method:
        for line in lines:
            out.setdefault(line, []).append(method)
    return [(methods, line) for line, methods in out.items()]


def methods_label(methods: list[str], every: list[str]) -> str:
    """``every method`` when ``methods`` are all the table's, else their names."""
    if len(methods) > 1 and list(methods) == list(every):
        return f"every method ({len(methods)})"
    return ", ".join(_code(m) for m in methods)


def throughput_rows(store: ResultSource, run_id: str) -> list[dict[str, str]]:
    """Generation speed and memory per method, formatted, each memory figure with its label; None is 'not measured'."""
    thr = store.throughput(run_id)
    rows = []
    for _, r in thr.iterrows() if not thr.empty else []:
        try:
            extra = json.loads(r["extra"] or "{}")
        except (TypeError, ValueError):
            extra = {}

        def num(v: Any, fmt: str) -> str:
            return "not measured" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)

        mem = r["peak_mem_bytes"]
        rows.append({"method": r["method"], "device": str(r["device"]),
                     "frames_per_s": num(r["frames_per_s"], "{:.3g}"),
                     "seconds_per_clip": num(r["seconds_per_clip"], "{:.3g}"),
                     "model_load_s": num(extra.get("model_load_s"), "{:.3g}"),
                     "peak_mem": (num(None if mem is None or pd.isna(mem) else mem / 2**20, "{:.0f} MiB")
                                  + (f" ({extra['peak_mem_kind']})" if extra.get("peak_mem_kind") else
                                     f" ({extra['peak_mem']})" if extra.get("peak_mem") else ""))})
    return rows


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


def render_markdown(store: ResultSource, run_ids: list[str] | None = None, set_bootstrap: int = 0) -> str:
    runs = {r["run_id"]: r for r in store.runs()}
    ids = run_ids or list(runs)
    out = ["# moee-bench leaderboard", "",
           "Generated by `moee-bench report` from the result store; nothing here is typed by hand. "
           "Values are means with 95% percentile-bootstrap CIs over clips (1000 resamples; identities, then clips within "
           "them, when the clips have at least 6 identities); "
           "frame-averaged metrics (PSNR, SSIM, LPIPS, CSIM, AKD) are means over all frames and their CIs bootstrap that same frame-weighted mean; "
           "FID/FVD/FLMD are set-level (CIs for them only with `--set-bootstrap N`: clips resampled, recomputed from cached features, "
           "basic bootstrap interval since the plug-in distance is biased upwards); "
           "KID/KVD CIs are ±1.96 standard errors (Bińkowski et al.'s variance estimate; frames/windows treated as independent, "
           "so they cover about 82% in `moee-bench bench stats`) "
           "unless `--set-bootstrap N`; every set-level interval names its estimator in its cell (`bootstrap`, `±1.96 SE`), "
           "and a bootstrap that could not be made says why under Caveats; Dyn-Score is THEval's mean closeness to the GT, CI by resampling clips. "
           "↑ higher is better, ↓ lower is better, ≈GT closest to the GT row is best; best per column in bold among comparable cells, with the methods not significantly different from it (paired, Holm; under each table). "
           "— means not computed (the reason is in the notes), never zero; n/c‡ = not comparable (reason under Caveats).", ""]
    for rid in ids:
        r = runs.get(rid)
        if r is None:
            continue
        meta = r["meta"]
        t = method_table(store, rid, set_bootstrap)
        out += [f"## {meta.get('dataset_name', r['dataset'])} / split `{r['split']}` (run `{rid}`)", ""]
        note = split_note(meta)
        if note:
            out += [note, ""]
        if t.empty:
            out += ["No results.", ""]
            continue
        asked = asked_keys(meta)
        keys = [k for k in HEADLINE if (k in t.columns and t[k].notna().any()) or k in asked]
        for k in keys:
            if k not in t.columns:
                t[k] = None
        head = ["method", "N", "missing", "failed"] + [column_label(k) for k in keys]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        best = best_values(t, keys)
        ties = tied_methods(store, rid, t, keys, best, set_bootstrap)
        for _, row in t.iterrows():
            cells = [_code(row['method']), str(row["n_clips"]), str(row["n_missing"]), str(row["n_failed"])]
            cells += [_fmt(k, row, best[k], ties.tied.get(k)) for k in keys]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", ties.describe()]
        statuses = store.status_table(rid)
        cav = [(row["method"], caveat_lines(row, keys, statuses)) for _, row in t.iterrows()]
        if any(lines for _, lines in cav) or meta.get("reference_warnings"):
            out += ["", "Caveats (‡ not comparable, never ranked; † warning or unverified weights; — not computed, "
                        "with the reason; (N=k): the value is over k clips):", ""]
            every = [m for m, _ in cav]
            out += [f"- {methods_label(methods, every)}: {line}" for methods, line in grouped_caveats(cav)]
            refs = meta.get("reference_warnings") or []
            if refs:
                out.append(f"- reference: {len(refs)} clip(s) use the first frame of their own target video as the "
                           f"reference (no reference image, no neutral clip of the identity): {refs[0]}")
        thr = throughput_rows(store, rid)
        if thr:
            out += ["", "Generation throughput (peak memory labelled by what was measured; \"not measured\" is never 0):", "",
                    "| method | device | frames/s | s/clip | model load s | peak memory |", "|---|---|---|---|---|---|"]
            out += [f"| `{r['method']}` | {r['device']} | {r['frames_per_s']} | {r['seconds_per_clip']} | "
                    f"{r['model_load_s']} | {r['peak_mem']} |" for r in thr]
        clips = store.clip_table(rid)
        out += [""] + render_markdown_sections(clips)
        out += ["", "Protocol notes:", ""]
        warn = unverified_warning(meta)
        if warn:
            out.append(f"- **WARNING: {warn}**")
        for stage, ws in (meta.get("warnings") or {}).items():
            for w in ws[:10]:
                out.append(f"- warning raised ({stage}): {w}")
        if meta.get("ingest"):
            out.append("- ingest: " + json.dumps(meta["ingest"], default=str))
        for name, why in (meta.get("metrics_unavailable") or {}).items():
            out.append(f"- `{name}` not computed: {str(why).splitlines()[0] if why else ''}")
        for name, proto in (meta.get("protocol") or {}).items():
            short = {k: v for k, v in proto.items() if k not in ("metric",) and not str(k).endswith("sha256")}
            out.append(f"- `{name}`: " + json.dumps(short, default=str))
        for name, files in (meta.get("weights_by_metric") or {}).items():
            out.append(f"- `{name}` weights: " + "; ".join(weight_note(f) for f in files))
        out += clip_warning_notes(clips)
        out += [f"- dataset manifest hash `{meta.get('manifest_hash', '')[:12]}`, suite hash `{r['suite_hash'][:12]}`, "
                f"git `{(meta.get('git_commit') or 'n/a')[:10]}`, device {meta.get('device')}, seed {meta.get('seed')}, "
                f"feature networks {meta.get('precision', 'fp32')}", ""]
    return "\n".join(out) + "\n"


def split_note(meta: dict[str, Any]) -> str | None:
    """One line on the run's split (clips, identities, split and manifest hashes) and each method's training data."""
    sp = meta.get("split")
    if not isinstance(sp, dict):
        return None
    parts = [f"Split `{sp.get('name')}`: {sp.get('n_clips')} clips of {len(sp.get('identities', []))} identities, "
             f"split hash `{str(sp.get('hash'))[:12]}`, manifest `{str(sp.get('manifest_hash'))[:12]}`."]
    checks = []
    for label, m in (meta.get("methods") or {}).items():
        c = m.get("identity_check") if isinstance(m, dict) else None
        if isinstance(c, dict):
            checks.append(f"`{label}` trained on {len(c.get('overlap', []))} of these identities (allowed on purpose)"
                          if c.get("overlap") else f"`{label}` trained on other identities (checked)")
        elif c:
            checks.append(f"`{label}` training data unknown (trained elsewhere)")
    if checks:
        parts.append("Training data: " + "; ".join(checks) + ".")
    return " ".join(parts)
