"""Exports: per-clip CSV and Parquet, and VBench-style JSON (aggregate + per-clip records)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from moee_bench.bench.core.paths import atomic_write
from moee_bench.reports.source import ResultSource

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")         # OWASP's CSV injection list
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for CSV/spreadsheet files whose string cells a spreadsheet cannot run as a formula:
    a string starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` (OWASP's CSV injection
    advice). Numbers, and strings that are plain numbers (``-3.5``), are left as they are; Parquet and JSON
    exports keep the raw ids (join keys)."""
    def cell(v: object) -> object:
        if isinstance(v, str) and v.startswith(FORMULA_START) and not _NUMBER.fullmatch(v):
            return "'" + v
        return v

    out = df.copy()
    for col in out.columns:
        if not (is_numeric_dtype(out[col]) or is_bool_dtype(out[col])):
            out[col] = out[col].map(cell).astype(object)
    return out


def export_all(store: ResultSource, out_dir: Path, run_ids: list[str] | None = None) -> dict[str, Path]:
    clips = store.clip_table()
    agg = store.aggregates()
    if run_ids:
        clips = clips[clips.run_id.isin(run_ids)] if not clips.empty else clips
        agg = agg[agg.run_id.isin(run_ids)] if not agg.empty else agg
    out: dict[str, Path] = {}
    with atomic_write(out_dir / "clips.csv") as tmp:
        spreadsheet_safe(clips).to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)   # a CR inside a cell stays in it
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
