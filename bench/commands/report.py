"""``moee-bench report``: render LEADERBOARD.md, the HTML report and exports from a result store."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write LEADERBOARD.md, report.html and exports from the result store")
    p.add_argument("--store", default="moee_bench_runs/store", help="store folder (default moee_bench_runs/store)")
    p.add_argument("--run", action="append", help="run id (repeatable; default: all runs)")
    p.add_argument("--out", default="moee_bench_runs/report", help="output folder")
    p.add_argument("--leaderboard", default="LEADERBOARD.md", help="also write the leaderboard here ('' to skip)")
    p.add_argument("--set-bootstrap", type=int, default=0, metavar="N",
                   help="bootstrap CIs for FID with N resamples from cached features (slow for large N)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.store import ResultStore
    from moee_bench.reports.build import write_reports

    if not (Path(args.store) / "results.sqlite").exists():
        raise BenchError(f"no result store at {args.store}; run `moee-bench run` first")
    with ResultStore(args.store) as store:
        paths = write_reports(store, Path(args.out), args.run, Path(args.leaderboard) if args.leaderboard else None,
                              args.set_bootstrap)
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0
