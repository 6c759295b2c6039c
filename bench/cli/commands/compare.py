"""``moee-bench compare BASE NEW``: regression check between two runs for a method's CI.

BASE and NEW are run ids in ``--store``, store folders, or the ``--out`` folder given to ``run`` (their latest
run). Each (method, metric) is a paired bootstrap test (identities then clips when the manifest has enough
identities, ``--resample``); the p-values of all tests are adjusted together (``--correction``, Holm by
default) and a verdict needs the whole ``1 - alpha`` CI beyond ``--threshold`` on one side and the adjusted
p-value below ``--alpha``. Exit status 1 when any metric regresses significantly; 5 when the runs cannot be
compared on some metric (different manifest, split, decode rule, precision, metric parameters or weight
files, or different clips scored: each refused with its reason); 4 when a metric (or method) of the base run
has no value in the new run, unless ``--ignore-missing`` names it; 1 wins over 5, 5 over 4; 0 otherwise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import nonneg_float_arg, positive_int_arg
    from moee_bench.reports.resampling import CORRECTIONS, MIN_IDENTITIES, MODES

    p = sub.add_parser("compare", help="regression diff of two runs; exit 1 on a significant regression",
                       description=__doc__)
    p.add_argument("base", help="run id, a store folder or a `run --out` folder (its latest run)")
    p.add_argument("new", help="run id, a store folder or a `run --out` folder (its latest run)")
    p.add_argument("--store", default="moee_bench_runs/store", help="store holding run ids")
    p.add_argument("--threshold", type=nonneg_float_arg, default=0.0,
                   help="ignore differences smaller than this (metric units)")
    p.add_argument("--metrics", help="comma list of clip-averaged metric keys (default: all)")
    p.add_argument("--ignore-missing", default="", metavar="KEYS",
                   help="comma list of metric keys (or 'all') allowed to be missing from the new run")
    p.add_argument("--alpha", type=_alpha, default=0.05, help="significance level of every verdict (default 0.05)")
    p.add_argument("--correction", choices=sorted(CORRECTIONS), default="holm",
                   help="multiplicity correction over all (method, metric) tests: holm (family-wise error, default), "
                        "bh (Benjamini-Hochberg false discovery rate), none")
    p.add_argument("--resample", choices=MODES, default="auto",
                   help=f"bootstrap unit: auto (identities then clips when >= {MIN_IDENTITIES} identities, else "
                        "clips), cluster, clip")
    p.add_argument("--n-boot", type=positive_int_arg, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--json", help="also write the verdicts as JSON here (for CI tooling)")
    p.set_defaults(func=_run)


def _alpha(text: str) -> float:
    try:
        a = float(text)
    except ValueError:
        a = float("nan")
    if not 0 < a < 1:
        raise argparse.ArgumentTypeError(f"--alpha must be a number between 0 and 1, got {text!r}")
    return a


def _load(ref: str, store_dir: str):
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.suite.store import ResultStore

    if not (Path(ref) / "results.sqlite").is_file() and (Path(ref) / "store" / "results.sqlite").is_file():
        ref = str(Path(ref) / "store")                   # the --out folder given to `run`
    if (Path(ref) / "results.sqlite").is_file():
        st = ResultStore(ref)
        runs = st.runs()
        if not runs:
            st.close()
            raise BenchError(f"store {ref} has no finished runs")
        run = runs[-1]
    else:
        if not (Path(store_dir) / "results.sqlite").is_file():
            raise BenchError(f"{ref!r} is not a store folder, and there is no result store at {store_dir} to look "
                             "it up as a run id (--store)")
        st = ResultStore(store_dir)
        known = [r["run_id"] for r in st.runs()]
        if ref not in known:
            st.close()
            raise BenchError(f"run {ref!r} is not in {store_dir} (and {ref} is not a store folder); known runs: "
                             f"{', '.join(known) or 'none'}")
        run = next(r for r in st.runs() if r["run_id"] == ref)
    rid = run["run_id"]
    table, agg = st.clip_table(rid), st.aggregates(rid)
    st.close()
    return run, table, agg


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.cli import exitcodes
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic
    from moee_bench.metrics.core.keys import KEYS
    from moee_bench.reports.compare import comparability, compare_tables, render, run_caveats
    from moee_bench.reports.resampling import CORRECTIONS

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    ignore = {m.strip() for m in args.ignore_missing.split(",") if m.strip()}
    for given in (metrics or []) + sorted(ignore - {"all"}):
        if given not in KEYS:
            raise BenchError(f"unknown metric key {given!r}; known: {', '.join(KEYS)}")
    for out in (args.out, args.json):
        if out:
            check_output_file(out, "--out" if out == args.out else "--json")
    brun, base, base_agg = _load(args.base, args.store)
    nrun, new, new_agg = _load(args.new, args.store)
    bname, nname = brun["run_id"], nrun["run_id"]
    bcav, ncav = run_caveats(base_agg), run_caveats(new_agg)
    keys = metrics or sorted(set(base.columns) & set(KEYS))
    refused = comparability(brun, nrun, keys)
    verdicts = compare_tables(base, new, threshold=args.threshold, metrics=metrics, base_caveats=bcav,
                              new_caveats=ncav, base_agg=base_agg, new_agg=new_agg, alpha=args.alpha,
                              correction=args.correction, resample=args.resample, refused=refused,
                              n_boot=args.n_boot)
    md = render(verdicts, bname, nname, bcav, ncav, alpha=args.alpha, correction=args.correction,
                threshold=args.threshold)
    print(md)
    if args.out:
        write_text_atomic(args.out, md, "--out")
    regressed = [v for v in verdicts if v.verdict == "regressed"]
    missing = [v for v in verdicts if v.verdict == "missing"]
    gating = [v for v in missing if "all" not in ignore and v.key not in ignore]
    incomparable = [v for v in verdicts if v.refused in ("runs", "data")]
    if missing:
        print(f"{len(missing)} metric(s) of the base run missing from the new run: "
              + ", ".join(f"{v.method}/{v.key}" for v in missing)
              + ("" if gating else " (ignored: --ignore-missing)"))
    if incomparable:
        print(f"{len(incomparable)} metric(s) not comparable between the runs: "
              + "; ".join(f"{v.method}/{v.key}: {v.reason}" for v in incomparable))
    if regressed:
        print(f"{len(regressed)} significant regression(s)")
    rc = (exitcodes.REGRESSION if regressed else exitcodes.NOT_COMPARABLE if incomparable
          else exitcodes.METRIC_MISSING if gating else exitcodes.OK)
    if args.json:
        doc = {"base": bname, "new": nname, "alpha": args.alpha, "threshold": args.threshold,
               "correction": args.correction, "correction_name": CORRECTIONS[args.correction],
               "resample": args.resample, "n_boot": args.n_boot, "n_tests": sum(v.p == v.p for v in verdicts),
               "exit_code": rc, "regressed": len(regressed), "not_comparable": len(incomparable),
               "missing": len(missing), "verdicts": [v.as_dict() for v in verdicts]}
        write_text_atomic(args.json, json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "--json")
    return rc
