import sys

from moee_bench.bench.cli.app import main

sys.exit(main())
