"""The exit codes of every ``moee-bench`` command (documented in the README)."""

from __future__ import annotations

from moee_bench.bench.core import statuses

OK = 0                 # success
REGRESSION = 1         # ``compare``: a significant regression was found
USAGE = 2              # usage error or bad input (nothing was computed)
FAILED_CLIPS = 3       # finished and wrote everything, but some clip's generation or metric errored
                       # (statuses that are not failures: bench/core/statuses.py); ``score``
                       # whose every clip failed also exits with this code
METRIC_MISSING = 4     # ``compare``: a metric of the base run is missing from the new run
NOT_COMPARABLE = 5     # ``compare``: the runs cannot be compared on some metric (different manifest, split,
                       # decode rule, precision, metric parameters or weights; different clips scored)
INTERRUPTED = 130      # Ctrl-C: finished work is kept and a re-run resumes


# Which per-clip statuses are failures (exit 3): the one table in bench/core/statuses.py
NOT_FAILURES = statuses.NOT_FAILURES
is_failure = statuses.is_failure
