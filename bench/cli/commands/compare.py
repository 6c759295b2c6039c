"""``moee-bench compare BASE NEW``: regression check between two runs for a method's CI.

BASE and NEW are run ids in ``--store``, or store folders (their latest run). Exit status 1 when any
metric regresses significantly (paired bootstrap CI of the difference entirely on the worse side
beyond ``--threshold``); 4 when a metric (or method) of the base run has no value in the new run,
unless ``--ignore-missing`` names it (1 wins when both happen); 0 otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import nonneg_float_arg

    p = sub.add_parser("compare", help="regression diff of two runs; exit 1 on a significant regression",
                       description=__doc__)
    p.add_argument("base", help="run id, or a store folder (its latest run)")
    p.add_argument("new", help="run id, or a store folder (its latest run)")
    p.add_argument("--store", default="moee_bench_runs/store", help="store holding run ids")
    p.add_argument("--threshold", type=nonneg_float_arg, default=0.0,
                   help="ignore differences smaller than this (metric units)")
    p.add_argument("--metrics", help="comma list of clip-averaged metric keys (default: all)")
    p.add_argument("--ignore-missing", default="", metavar="KEYS",
                   help="comma list of metric keys (or 'all') allowed to be missing from the new run")
    p.add_argument("--out", help="also write the markdown table here")
    p.set_defaults(func=_run)


def _load(ref: str, store_dir: str):
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.suite.store import ResultStore

    if (Path(ref) / "results.sqlite").is_file():
        st = ResultStore(ref, readonly=True)
        runs = st.runs()
        if not runs:
            st.close()
            raise BenchError(f"store {ref} has no finished runs")
        rid = runs[-1]["run_id"]
    else:
        if not (Path(store_dir) / "results.sqlite").is_file():
            raise BenchError(f"{ref!r} is not a store folder, and there is no result store at {store_dir} to look "
                             "it up as a run id (--store)")
        st = ResultStore(store_dir, readonly=True)
        known = [r["run_id"] for r in st.runs()]
        if ref not in known:
            st.close()
            raise BenchError(f"run {ref!r} is not in {store_dir} (and {ref} is not a store folder); known runs: "
                             f"{', '.join(known) or 'none'}")
        rid = ref
    table, agg = st.clip_table(rid), st.aggregates(rid)
    st.close()
    return rid, table, agg


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.cli import exitcodes
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic
    from moee_bench.metrics.core.keys import KEYS
    from moee_bench.reports.compare import compare_tables, render, run_caveats

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    ignore = {m.strip() for m in args.ignore_missing.split(",") if m.strip()}
    for given in (metrics or []) + sorted(ignore - {"all"}):
        if given not in KEYS:
            raise BenchError(f"unknown metric key {given!r}; known: {', '.join(KEYS)}")
    if args.out:
        check_output_file(args.out, "--out")
    bname, base, base_agg = _load(args.base, args.store)
    nname, new, new_agg = _load(args.new, args.store)
    bcav, ncav = run_caveats(base_agg), run_caveats(new_agg)
    verdicts = compare_tables(base, new, threshold=args.threshold, metrics=metrics, base_caveats=bcav,
                              new_caveats=ncav, base_agg=base_agg, new_agg=new_agg)
    md = render(verdicts, bname, nname, bcav, ncav)
    print(md)
    if args.out:
        write_text_atomic(args.out, md, "--out")
    regressed = [v for v in verdicts if v.verdict == "regressed"]
    missing = [v for v in verdicts if v.verdict == "missing"]
    gating = [v for v in missing if "all" not in ignore and v.key not in ignore]
    if missing:
        print(f"{len(missing)} metric(s) of the base run missing from the new run: "
              + ", ".join(f"{v.method}/{v.key}" for v in missing)
              + ("" if gating else " (ignored: --ignore-missing)"))
    if regressed:
        print(f"{len(regressed)} significant regression(s)")
        return exitcodes.REGRESSION
    if gating:
        return exitcodes.METRIC_MISSING
    return exitcodes.OK
