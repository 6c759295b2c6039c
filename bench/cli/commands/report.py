"""``moee-bench report``: render LEADERBOARD.md, the HTML report and exports from a result store."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import nonneg_int_arg

    p = sub.add_parser("report", help="write LEADERBOARD.md, report.html and exports from the result store")
    p.add_argument("--store", default="moee_bench_runs/store", help="store folder (default moee_bench_runs/store)")
    p.add_argument("--run", action="append", help="run id (repeatable; default: all runs)")
    p.add_argument("--out", default="moee_bench_runs/report",
                   help="output folder (default moee_bench_runs/report, where `run` writes its report)")
    p.add_argument("--leaderboard", default="", help="also write a copy of the leaderboard at this path (default: none; "
                                                     "the leaderboard is OUT/LEADERBOARD.md)")
    p.add_argument("--set-bootstrap", type=nonneg_int_arg, default=0, metavar="N",
                   help="bootstrap CIs for FID with N resamples from cached features, and FID/FVD significance marks "
                        "(methods not significantly different from the best, paired; slow for large N)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.paths import check_output_dir, check_output_file
    from moee_bench.reports.build import write_reports

    check_output_dir(args.out, "--out")
    if args.leaderboard:
        check_output_file(args.leaderboard, "--leaderboard")
    with open_store(args.store) as store:
        run_ids = pick_runs(store, args.run)
        paths = write_reports(store, Path(args.out), run_ids, Path(args.leaderboard) if args.leaderboard else None,
                              args.set_bootstrap)
    print(f"wrote {len(paths)} files:")
    for k, p in paths.items():
        print(f"  {k}: {p}")
    return 0


def open_store(folder: str):
    """The result store in ``folder``; a :class:`BenchError` when there is none (nothing is created)."""
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.suite.store import ResultStore

    if not (Path(folder) / "results.sqlite").is_file():
        raise BenchError(f"no result store at {folder}; run `moee-bench run` first or pass --store")
    return ResultStore(folder, readonly=True)


def pick_runs(store, wanted: list[str] | None) -> list[str]:
    """The finished runs to report: ``wanted`` (each must be a finished run) or all of them. Unfinished
    (interrupted) runs are named on stderr; a store with no finished run is an error."""
    import sys

    from moee_bench.bench.core.errors import BenchError

    finished = [r["run_id"] for r in store.runs()]
    unfinished = store.unfinished_runs()
    live = store.live_runs()
    hint = "; re-run `moee-bench run` with the same suite to finish it (it resumes)"
    for rid in wanted or []:
        if rid in unfinished and rid in live:
            raise BenchError(f"run {rid!r} is in progress ({live[rid]}; {unfinished[rid]} clip rows so far); "
                             "report it when it has finished")
        if rid in unfinished:
            raise BenchError(f"run {rid!r} was interrupted before it finished ({unfinished[rid]} clip rows, no "
                             f"aggregates){hint}")
        if rid not in finished:
            raise BenchError(f"unknown run id {rid!r}; finished runs in {store.folder}: {', '.join(finished) or 'none'}")
    if not finished:
        if unfinished and set(unfinished) <= set(live):
            raise BenchError(f"store {store.folder} has only runs in progress "
                             f"({', '.join(f'{r}: {n} clip rows so far, {live[r]}' for r, n in unfinished.items())}); "
                             "report them when they have finished")
        what = (f"only interrupted runs ({', '.join(f'{r}: {n} clip rows' for r, n in unfinished.items())}){hint}"
                if unfinished else "no runs")
        raise BenchError(f"store {store.folder} has {what}")
    for rid, n in unfinished.items():
        if not wanted and rid in live:
            print(f"note: run {rid} is in progress ({n} clip rows so far, {live[rid]}) and is not in the report yet",
                  file=sys.stderr)
        elif not wanted:
            print(f"warning: run {rid} was interrupted before it finished ({n} clip rows) and is not in the report{hint}",
                  file=sys.stderr)
    return list(wanted) if wanted else finished
