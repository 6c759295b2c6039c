"""``moee-bench export``: a run's per-clip rows and aggregates as CSV, Parquet and JSON (no report rendering)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export per-clip results and aggregates (CSV, Parquet, JSON) from the store")
    p.add_argument("--store", default="moee_bench_runs/store", help="store folder (default moee_bench_runs/store)")
    p.add_argument("--run", action="append", help="run id (repeatable; default: all runs)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.cli.commands.report import open_store, pick_runs
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.paths import check_output_dir
    from moee_bench.reports.export import export_all

    check_output_dir(args.out, "--out")
    with open_store(args.store) as store:
        known = {r["run_id"] for r in store.runs()}
        bad = sorted(set(args.run or []) - known - set(store.unfinished_runs()))
        if bad:
            raise BenchError(f"unknown run ids {bad}; known: {sorted(known)}")
        paths = export_all(store, Path(args.out), pick_runs(store, args.run))
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0
