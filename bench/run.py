"""Entry point for multi-process runs: ``torchrun --nproc_per_node N -m moee_bench.bench.run [--suite FILE] [--out DIR] ...``.

Takes the same options as ``moee-bench run``. Each rank generates and scores a round-robin shard of
the clips; metric states are merged on rank 0 (gloo on CPU, nccl on CUDA), so N processes give the
single-process numbers. Multi-node works the same way (torchrun's --nnodes/--rdzv options).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as td

    from moee_bench.bench.commands import run as run_cmd

    parser = argparse.ArgumentParser(prog="python -m moee_bench.bench.run")
    sub = parser.add_subparsers(dest="command")
    run_cmd.register(sub)
    args = parser.parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if args.device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        td.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        from moee_bench.bench import exitcodes
        from moee_bench.bench.cli import BenchError

        try:
            return int(args.func(args) or 0)
        except BenchError as e:
            print(f"moee-bench: error: {e}", file=sys.stderr)
            return exitcodes.USAGE
        except KeyboardInterrupt:
            print("moee-bench: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
            return exitcodes.INTERRUPTED
    finally:
        if world > 1 and td.is_initialized():
            td.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
