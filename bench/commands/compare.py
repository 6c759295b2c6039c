"""``moee-bench compare BASE NEW``: regression check between two runs for a method's CI.

BASE and NEW are run ids in ``--store``, or store folders (their latest run). Exit status 1 when any
metric regresses significantly (paired bootstrap CI of the difference entirely on the worse side
beyond ``--threshold``), 0 otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="regression diff of two runs; exit 1 on a significant regression",
                       description=__doc__)
    p.add_argument("base", help="run id, or a store folder (its latest run)")
    p.add_argument("new", help="run id, or a store folder (its latest run)")
    p.add_argument("--store", default="moee_bench_runs/store", help="store holding run ids")
    p.add_argument("--threshold", type=float, default=0.0, help="ignore differences smaller than this (metric units)")
    p.add_argument("--metrics", help="comma list of clip-averaged metric keys (default: all)")
    p.add_argument("--out", help="also write the markdown table here")
    p.set_defaults(func=_run)


def _load(ref: str, store_dir: str):
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.store import ResultStore

    if (Path(ref) / "results.sqlite").exists():
        st = ResultStore(ref)
        runs = st.runs()
        if not runs:
            raise BenchError(f"store {ref} has no runs")
        rid = runs[-1]["run_id"]
    else:
        st = ResultStore(store_dir)
        if ref not in {r["run_id"] for r in st.runs()}:
            raise BenchError(f"run {ref!r} is not in {store_dir} (and {ref} is not a store folder)")
        rid = ref
    from moee_bench.reports.compare import run_caveats

    table = st.clip_table(rid)
    caveats = run_caveats(st.aggregates(rid))
    st.close()
    return rid, table, caveats


def _run(args: argparse.Namespace) -> int:
    from moee_bench.reports.compare import compare_tables, render

    bname, base, bcav = _load(args.base, args.store)
    nname, new, ncav = _load(args.new, args.store)
    verdicts = compare_tables(base, new, threshold=args.threshold,
                              metrics=args.metrics.split(",") if args.metrics else None,
                              base_caveats=bcav, new_caveats=ncav)
    md = render(verdicts, bname, nname, bcav, ncav)
    print(md)
    if args.out:
        Path(args.out).write_text(md)
    regressed = [v for v in verdicts if v.verdict == "regressed"]
    if regressed:
        print(f"{len(regressed)} significant regression(s)")
        return 1
    return 0
