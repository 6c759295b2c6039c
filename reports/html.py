"""One self-contained HTML report (images embedded as base64 PNG, plots with matplotlib)."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

from moee_bench.metrics.core.keys import KEYS
from moee_bench.reports.leaderboard import (HEADLINE, asked_keys, best_values, caveat_lines, column_label, flag_marks,
                                            grouped_caveats, methods_label,
                                             method_table, split_note, throughput_rows, tied_methods, unverified_warning)
from moee_bench.reports.source import ResultSource


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e8f6e8}
.nc{color:#888;background:#f4f4f4}
.warn{background:#fff3cd;padding:8px;border-left:4px solid #e0a800}.note{color:#666;font-size:13px}
img{max-width:100%}pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def generating_methods(meta: dict) -> set[str]:
    """The run's methods that generate video (their description in the run metadata says so)."""
    return {m for m, d in (meta.get("methods") or {}).items() if d.get("generates", True)}


def _frame_strips(store: ResultSource, run_id: str, methods: list[str], clip_ids: list[str]) -> str:
    from moee_bench.bench.core import media

    rows = []
    for cid in clip_ids:
        cells = []
        for m in methods:
            path = store.generated_video(m, cid)
            img = None
            if path:
                try:
                    fr = media.read_frames(path)
                    img = np.concatenate([fr[i] for i in np.linspace(0, len(fr) - 1, 4).astype(int)], axis=1)
                except Exception:  # a missing or unreadable video leaves the cell empty in the report
                    img = None
            if img is None:
                cells.append("<td>(no video)</td>")
                continue
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2)).save(buf, format="JPEG", quality=80)
            cells.append(f'<td><img alt="{html.escape(m)}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}"></td>')
        rows.append(f"<tr><td>{html.escape(cid)}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    return f"<table><tr><th>clip</th>{head}</tr>{''.join(rows)}</table>"


def render_html(store: ResultSource, run_ids: list[str] | None = None) -> str:
    runs = {r["run_id"]: r for r in store.runs()}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>moee-bench report</title><style>{CSS}</style></head><body>",
             "<h1>moee-bench report</h1><p class='note'>Rendered from the result store. Means over clips with 95% "
             "bootstrap CIs; — = not computed (see notes), never zero.</p>"]
    for rid in run_ids or list(runs):
        r = runs.get(rid)
        if r is None:
            continue
        meta = r["meta"]
        t = method_table(store, rid)
        parts.append(f"<h2>{html.escape(str(meta.get('dataset_name', r['dataset'])))} / split {html.escape(r['split'])}</h2>")
        note = split_note(meta)
        if note:
            parts.append(f"<p class='note'>{html.escape(note.replace('`', ''))}</p>")
        warn = unverified_warning(meta)
        if warn:
            parts.append(f"<p class='warn'>{html.escape(warn.replace('`', ''))}.</p>")
        if t.empty:
            parts.append("<p>No results.</p>")
            continue
        asked = asked_keys(meta)
        keys = [k for k in HEADLINE if (k in t.columns and t[k].notna().any()) or k in asked]
        for k in keys:
            if k not in t.columns:
                t[k] = None
        hdr = "".join(f"<th>{html.escape(column_label(k))}</th>" for k in keys)
        best_of = best_values(t, keys)
        ties = tied_methods(store, rid, t, keys, best_of)
        rows = []
        for _, row in t.iterrows():
            cells = []
            for k in keys:
                v = row.get(k)
                best = best_of[k]
                flags = row.get(f"{k}_flags")
                nc = isinstance(flags, dict) and bool(flags.get("not_comparable"))
                txt = "—" if v is None or (isinstance(v, float) and np.isnan(v)) else KEYS[k].fmt.format(v)
                ci = row.get(f"{k}_ci")
                if isinstance(ci, tuple) and np.isfinite(ci[0]) and ci[0] != ci[1]:
                    txt += f" <span class='note'>[{KEYS[k].fmt.format(ci[0])}, {KEYS[k].fmt.format(ci[1])}]</span>"
                    if isinstance(row.get(f"{k}_ci_tag"), str):
                        txt += f" <span class='note'>{html.escape(row[f'{k}_ci_tag'])}</span>"
                n, n_all = row.get(f"{k}_n"), row.get("n_clips")
                if txt != "—" and isinstance(n, (int, np.integer)) and isinstance(n_all, (int, np.integer)) and n != n_all:
                    txt += f" <span class='note'>(N={n})</span>"       # over fewer clips than the row's N
                if nc:
                    txt = f"n/c <span class='note'>({txt})</span>"
                marks = flag_marks(flags)
                title = "; ".join(str(x) for x in (flags or {}).values()) if isinstance(flags, dict) else ""
                if marks:
                    txt += f"<sup title='{html.escape(title, quote=True)}'>{marks}</sup>"
                tied = ties.tied.get(k)
                is_best = row["method"] in tied if tied is not None else (best is not None and v == best)
                cls = " class='nc'" if nc else (" class='best'" if is_best else "")
                cells.append(f"<td{cls}>{txt}</td>")
            rows.append(f"<tr><td>{html.escape(row['method'])}</td><td>{row['n_clips']}</td><td>{row['n_missing']}</td>"
                        f"<td>{row['n_failed']}</td>{''.join(cells)}</tr>")
        parts.append(f"<table id='leaderboard'><tr><th>method</th><th>N</th><th>missing</th><th>failed</th>{hdr}</tr>{''.join(rows)}</table>")
        parts.append(f"<p class='note'>{html.escape(ties.describe())}</p>")
        statuses = store.status_table(rid)
        cav = [(row["method"], caveat_lines(row, keys, statuses)) for _, row in t.iterrows()]
        refs = meta.get("reference_warnings") or []
        if any(lines for _, lines in cav) or refs:
            every = [m for m, _ in cav]
            items = [f"<li><b>{html.escape(methods_label(ms, every).replace('`', ''))}</b>: {html.escape(line)}</li>"
                     for ms, line in grouped_caveats(cav)]
            items += [f"<li>reference: {html.escape(w)}</li>" for w in refs[:20]]
            parts.append("<h3>Caveats</h3><p class='note'>‡ not comparable (never ranked); † warning or unverified "
                         f"weights</p><ul id='caveats' class='warn'>{''.join(items)}</ul>")
        thr = throughput_rows(store, rid)
        if thr:
            parts.append("<h3>Generation throughput</h3><p class='note'>Peak memory labelled by what was measured; "
                         "\"not measured\" is never 0.</p><table id='throughput'><tr><th>method</th><th>device</th>"
                         "<th>frames/s</th><th>s/clip</th><th>model load s</th><th>peak memory</th></tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(r[k])}</td>" for k in
                                                    ("method", "device", "frames_per_s", "seconds_per_clip",
                                                     "model_load_s", "peak_mem")) + "</tr>" for r in thr)
                         + "</table>")
        for stage, ws in (meta.get("warnings") or {}).items():
            if ws:
                parts.append(f"<p class='warn'>Warnings raised ({html.escape(stage)}): "
                             + "<br>".join(html.escape(w) for w in ws[:10]) + "</p>")
        from moee_bench.reports import plots
        from moee_bench.reports.breakdown import render_html_sections

        bars = plots.headline_bars(t, HEADLINE)
        if bars is not None:
            parts.append(_png(bars))
        clips = store.clip_table(rid)

        parts.extend(render_html_sections(clips))

        for title, fig in (("Emotion accuracy", plots.emotion_heatmap(clips)),
                           ("Emotion confusion", plots.confusion_matrices(clips)),
                           ("Compound emotions", plots.compound_bars(clips)),
                           ("Lip-sync offsets", plots.offset_histograms(clips)),
                           ("Speed vs quality", plots.speed_quality(t, store.throughput(rid), generating_methods(meta)))):
            if fig is not None:
                parts.append(f"<h3>{title}</h3>" + _png(fig))
        if not clips.empty:
            show = [c for c in ["method", "clip_id", "emotion", *[k for k in HEADLINE if k in clips.columns]] if c in clips.columns]
            parts.append("<h3>Per clip</h3>" + clips[show].to_html(index=False, na_rep="—", float_format=lambda x: f"{x:.3f}",
                                                                  table_id="per-clip"))
            ids = sorted(clips.clip_id.unique())[:6]
            parts.append("<h3>Frame strips</h3>" + _frame_strips(store, rid, list(t["method"]), ids))
        unavailable = meta.get("metrics_unavailable") or {}
        if unavailable:
            parts.append("<h3>Not computed</h3><ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                                              for k, v in unavailable.items()) + "</ul>")
        prov = {k: meta.get(k) for k in ("git_commit", "versions", "device", "seed", "suite_hash", "manifest_hash",
                                         "weights", "weights_by_metric", "unverified_weights", "protocol", "ingest",
                                         "references", "precision")}
        parts.append("<h3>Protocol and provenance</h3><pre>" + html.escape(json.dumps(prov, indent=1, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
