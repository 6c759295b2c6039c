"""Entry point for multi-process runs:
``torchrun --nproc_per_node N -m moee_bench.bench.cli.torchrun [--suite FILE] [--out DIR] ...``
(the old path, ``-m moee_bench.bench.run``, still works).

Takes the same options as ``moee-bench run``. Each rank generates and scores a round-robin shard of the clips; metric states are merged on rank 0 (gloo on CPU, nccl on CUDA), so N processes give the
single-process numbers. Multi-node works the same way (torchrun's --nnodes/--rdzv options).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as td

from moee_bench.bench.cli.app import run_command
from moee_bench.bench.cli.commands import run as run_cmd


def main(argv: list[str] | None = None) -> int:
    """``moee-bench run`` on this rank's shard; process group set up and torn down around it."""
    parser = argparse.ArgumentParser(prog="torchrun -m moee_bench.bench.cli.torchrun")
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
        return run_command(args)
    finally:
        if world > 1 and td.is_initialized():
            td.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
