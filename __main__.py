"""``python -m moee_bench ...`` is the ``moee-bench`` command."""

import sys

from moee_bench.bench.cli.app import main

sys.exit(main())
