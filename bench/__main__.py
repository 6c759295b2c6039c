import sys

from moee_bench.bench.cli import main

sys.exit(main())
