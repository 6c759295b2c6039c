"""The old multi-process entry point, kept so ``torchrun -m moee_bench.bench.run`` still works:
the successor is :mod:`moee_bench.bench.cli.torchrun`."""

import sys

from moee_bench.bench.cli.torchrun import main

if __name__ == "__main__":
    sys.exit(main())
