"""``moee-bench run``: run a benchmark suite (the built-in sample suite when no --suite is given)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite: generate missing videos, score, store, report (resumable)",
                       description="Run a benchmark suite. With no arguments: the built-in sample suite "
                                   "(sample dataset generated on first use). Re-running resumes.")
    p.add_argument("--suite", help="suite TOML file (default: the built-in sample suite)")
    p.add_argument("--out", default="moee_bench_runs", help="output folder (default ./moee_bench_runs)")
    p.add_argument("--weights-dir", help="folder searched first for weight files")
    p.add_argument("--allow-unverified-weights", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="feature networks' precision (bf16: declared fast mode, a separate run id; see score --help)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed clip")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.runner import run_suite
    from moee_bench.bench.suite import load_suite

    t = time.perf_counter()
    suite = load_suite(args.suite)
    s = run_suite(suite, Path(args.out), weights_dir=args.weights_dir, allow_unverified=args.allow_unverified_weights,
                  device=args.device, fail_fast=args.fail_fast, report=not args.no_report, precision=args.precision)
    print(f"run {s.run_id}: {s.generated} videos generated, {s.reused} reused; store {s.store}")
    if s.failures:
        print(f"{len(s.failures)} clip failures:")
        for f in s.failures[:30]:
            print(f"  {f}")
    for k, p in s.reports.items():
        print(f"{k}: {p}")
    print(f"done in {time.perf_counter() - t:.1f} s")
    return 0
