"""``moee-bench throughput --method NAME``: generation speed of one method (warm-up + repeats)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import positive_int_arg

    p = sub.add_parser("throughput", help="measure a method's generation frames/s, s/clip and peak memory")
    p.add_argument("--method", required=True)
    p.add_argument("--manifest", help="dataset manifest (default: the sample dataset under moee_bench_runs/sample)")
    p.add_argument("--split", default="test", help="split of the manifest to take clips from (default test; `all`: every clip)")
    p.add_argument("--clips", default="", help="comma list of clip ids of that split (default: its first two)")
    p.add_argument("--repeats", type=positive_int_arg, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="method config, repeatable")
    p.add_argument("--json", help="also write the measurement here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.baselines.registry import method_class
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic
    from moee_bench.bench.core.values import parse_kv
    from moee_bench.bench.perf.throughput import measure

    try:
        method_class(args.method)
    except KeyError as e:
        raise BenchError(e.args[0]) from None
    if args.json:
        check_output_file(args.json, "--json")
    cfg = parse_kv(args.config, "--config")
    if args.manifest:
        m = load_manifest(args.manifest)
    else:
        from moee_bench.bench.suite.sample import ensure_sample

        m = load_manifest(ensure_sample(Path("moee_bench_runs") / "sample"))
    r = measure(args.method, m, [c for c in args.clips.split(",") if c], split=args.split, config=cfg,
                repeats=args.repeats, device=args.device)
    for k, v in r.items():
        print(f"{k:<26}{v:.4g}" if isinstance(v, float) else f"{k:<26}{'not measured' if v is None else v}")
    if args.json:
        write_text_atomic(args.json, json.dumps(r, indent=1), "--json")
    return 0
