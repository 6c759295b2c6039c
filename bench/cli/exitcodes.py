"""The exit codes of every ``moee-bench`` command (documented in the README)."""

from __future__ import annotations

OK = 0                 # success
REGRESSION = 1         # ``compare``: a significant regression was found
USAGE = 2              # usage error or bad input (nothing was computed)
FAILED_CLIPS = 3       # finished and wrote everything, but some clip's generation or metric errored
                       # (``no_face``/``too_short``/``no_audio`` statuses are not failures); ``score``
                       # whose every clip failed also exits with this code
METRIC_MISSING = 4     # ``compare``: a metric of the base run is missing from the new run
NOT_COMPARABLE = 5     # ``compare``: the runs cannot be compared on some metric (different manifest, split,
                       # decode rule, precision, metric parameters or weights; different clips scored)
INTERRUPTED = 130      # Ctrl-C: finished work is kept and a re-run resumes

# Per-clip statuses that are outcomes, not failures: the clip was read and the metric says why it has no
# value (no face found, too short, no audio, no GT given, metric not computed on this machine).
NOT_FAILURES = frozenset({"ok", "no_face", "too_short", "no_audio", "no_gt", "unavailable"})


def is_failure(status: str) -> bool:
    """Whether a per-clip status counts as a failed clip for :data:`FAILED_CLIPS`."""
    return status not in NOT_FAILURES
