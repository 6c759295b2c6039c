"""``moee-bench run``: run a benchmark suite (the built-in sample suite when no --suite is given)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from moee_bench.bench.cli.commands._metric_flags import add_metric_flags, metric_params
from moee_bench.bench.cli.options import add_weights_arguments, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite: generate missing videos, score, store, report (resumable)",
                       description="Run a benchmark suite. With no arguments: the built-in sample suite "
                                   "(sample dataset generated on first use). Re-running resumes.")
    p.add_argument("--suite", help="suite TOML file (default: the built-in sample suite)")
    p.add_argument("--out", default="moee_bench_runs", help="output folder (default ./moee_bench_runs)")
    add_weights_arguments(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="feature networks' precision (bf16: declared fast mode, a separate run id; see score --help)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed clip")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument("--allow-identity-overlap", action="store_true",
                   help="evaluate a checkpoint on identities it was trained on (refused by default; recorded)")
    add_metric_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench import api
    from moee_bench.bench.core import exitcodes
    from moee_bench.bench.cli.commands.score import print_clip_warnings
    from moee_bench.bench.core.values import check_device, existing_dir

    t = time.perf_counter()
    existing_dir(args.weights_dir, "--weights-dir")
    check_device(args.device)
    s = api.run(args.suite, Path(args.out), params=metric_params(args), weights=options_from_args(args),
                device=args.device, fail_fast=args.fail_fast, report=not args.no_report,
                allow_identity_overlap=args.allow_identity_overlap, precision=args.precision)
    print_clip_warnings(s.warnings)
    print(f"run {s.run_id}: {s.generated} videos generated, {s.reused} reused; store {s.store}")
    if s.notes:
        print(f"{len(s.notes)} clip statuses (not failures: no face, too short, missing...):")
        for f in s.notes[:15]:
            print(f"  {f}")
    if s.failures:
        print(f"{len(s.failures)} clip failures (a generation or a metric errored):")
        for f in s.failures[:30]:
            print(f"  {f}")
    for k, p in s.reports.items():
        print(f"{k}: {p}")
    print(f"done in {time.perf_counter() - t:.1f} s")
    if s.failures:
        print(f"exit code {exitcodes.FAILED_CLIPS}: finished and wrote everything, but some clips failed")
        return exitcodes.FAILED_CLIPS
    return exitcodes.OK
