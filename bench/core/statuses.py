"""The one table of per-clip statuses: what each means and whether it is a failure.

Every per-clip, per-metric (or per-generation) status that moee-bench stores or prints is one of
:data:`STATUSES`. ``run``, ``score``, ``compare``, the exit codes (``bench/cli/exitcodes.py``), the
runner's summary and the reports read :func:`is_failure` from here; nothing else keeps a list. A
status not in the table (a bug, or a newer store) counts as a failure, never silently as an outcome.
The README's status table is :func:`markdown_table` (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    """One clip status: its name, whether it makes a command exit 3 (a failure), and what it means."""

    name: str
    is_failure: bool
    meaning: str


STATUSES: dict[str, Status] = {s.name: s for s in (
    Status("ok", False, "scored"),
    Status("no_face", False, "no face was found in the frames the metric reads"),
    Status("too_short", False, "fewer frames than the metric needs (e.g. 16 for FVD, 5 for Sync)"),
    Status("no_audio", False, "no driving audio and no audio track in the video"),
    Status("no_gt", False, "the metric needs a GT video and the clip has none"),
    Status("no_label", False, "the metric needs a target emotion and the clip has none"),
    Status("outside_taxonomy", False, "the target emotion is outside the 6+1 taxonomy (counted, not scored)"),
    Status("skipped", False, "the method cannot render the clip's label (counted in n_skipped)"),
    Status("missing", False, "a manifest clip with no generated video (counted in n_missing)"),
    Status("unavailable", False, "the metric is not computed on this machine (weights or package missing; reason "
                                 "in the notes)"),
    Status("error", True, "generation or a metric raised an error on this clip (reason stored)"),
    Status("empty", True, "the video or image has no decodable frame"),
    Status("too_small", True, "frames smaller than the metric can score"),
    Status("length_mismatch", True, "pred and GT lengths differ under --strict"),
    Status("excluded", False, "the source's label is excluded by the dataset's aliases (at import)"),
)}

NOT_FAILURES: frozenset[str] = frozenset(n for n, s in STATUSES.items() if not s.is_failure)


def is_failure(status: str) -> bool:
    """Whether a per-clip status is a failed clip (exit code 3); an unknown status is a failure."""
    s = STATUSES.get(status)
    return True if s is None else s.is_failure


def markdown_table() -> str:
    """The README's table of statuses, from :data:`STATUSES`."""
    lines = ["| status | failure? | meaning |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {'yes' if s.is_failure else 'no'} | {s.meaning} |" for s in STATUSES.values()]
    return "\n".join(lines)
