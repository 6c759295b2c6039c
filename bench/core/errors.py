"""Error types. Every error about one clip names that clip."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

#: code bugs: never a clip's status, never "metric not computed"; they propagate
BUG_ERRORS = (AttributeError, TypeError, NameError)


def outcome(fn: Callable[[], T]) -> T | Exception:
    """``fn()``'s result, or the exception it raised (one item of a batch failing leaves the others); bugs
    (:data:`BUG_ERRORS`) propagate."""
    try:
        return fn()
    except BUG_ERRORS:
        raise
    except Exception as e:
        return e


class BenchError(Exception):
    """Base class for every error moee-bench raises on purpose."""


class ClipError(BenchError):
    """A problem with one clip: the message always starts with the clip id."""

    def __init__(self, clip_id: str | None, message: str, *, status: str = "error") -> None:
        self.clip_id = clip_id
        self.reason = message
        self.status = status
        super().__init__(f"clip {clip_id}: {message}" if clip_id else message)


class MediaError(ClipError):
    """A video or audio file cannot be read or written."""


class ManifestError(BenchError):
    """A manifest or split file is malformed, tampered with, or inconsistent."""


class EmotionLabelError(ClipError):
    """An emotion label is not in the taxonomy (nor an alias of one)."""


class PathEscapeError(ClipError):
    """A path in a manifest points outside the dataset root."""


class WeightsError(BenchError):
    """A checkpoint is missing, has the wrong hash, or cannot be loaded safely."""

