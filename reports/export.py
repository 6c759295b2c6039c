"""Exports: per-clip CSV and Parquet, and VBench-style JSON (aggregate + per-clip records)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moee_bench.bench.core.paths import atomic_write
from moee_bench.reports.source import ResultSource


def export_all(store: ResultSource, out_dir: Path, run_ids: list[str] | None = None) -> dict[str, Path]:
    clips = store.clip_table()
    agg = store.aggregates()
    if run_ids:
        clips = clips[clips.run_id.isin(run_ids)] if not clips.empty else clips
        agg = agg[agg.run_id.isin(run_ids)] if not agg.empty else agg
    out: dict[str, Path] = {}
    with atomic_write(out_dir / "clips.csv") as tmp:
        clips.to_csv(tmp, index=False)
    out["csv"] = out_dir / "clips.csv"
    with atomic_write(out_dir / "clips.parquet") as tmp:
        clips.to_parquet(tmp, index=False)
    out["parquet"] = out_dir / "clips.parquet"
    doc: dict = {}
    for (rid, method), g in agg.groupby(["run_id", "method"]):
        recs = clips[(clips.run_id == rid) & (clips.method == method)] if not clips.empty else clips
        doc.setdefault(rid, {})[method] = {
            "aggregate": {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                          for k, v in zip(g.key, g.value)},
            "clips": json.loads(recs.drop(columns=["run_id", "method"]).to_json(orient="records")),
        }
    with atomic_write(out_dir / "results.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    out["json"] = out_dir / "results.json"
    return out
