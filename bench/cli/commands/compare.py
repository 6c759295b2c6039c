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


def _run(args: argparse.Namespace) -> int:
    """Parse, call :func:`moee_bench.api.compare` (the one comparing path), print and write its verdicts."""
    from moee_bench import api
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    for out in (args.out, args.json):
        if out:
            check_output_file(out, "--out" if out == args.out else "--json")
    res = api.compare(args.base, args.new, store=args.store, threshold=args.threshold, metrics=metrics,
                      alpha=args.alpha, correction=args.correction, resample=args.resample, n_boot=args.n_boot,
                      ignore_missing=[m.strip() for m in args.ignore_missing.split(",") if m.strip()])
    print(res.markdown)
    if args.out:
        write_text_atomic(args.out, res.markdown, "--out")
    if res.missing:
        print(f"{len(res.missing)} metric(s) of the base run missing from the new run: "
              + ", ".join(f"{v.method}/{v.key}" for v in res.missing)
              + ("" if res.gating_missing else " (ignored: --ignore-missing)"))
    if res.not_comparable:
        print(f"{len(res.not_comparable)} metric(s) not comparable between the runs: "
              + "; ".join(f"{v.method}/{v.key}: {v.reason}" for v in res.not_comparable))
    if res.regressed:
        print(f"{len(res.regressed)} significant regression(s)")
    if args.json:
        write_text_atomic(args.json, json.dumps(res.to_dict(), indent=1, ensure_ascii=False) + "\n", "--json")
    return res.exit_code
