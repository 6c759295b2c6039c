"""Frames already in memory as a clip's video: a ``(T, H, W, 3)`` uint8 array stands where a video file would.

The evaluator (:mod:`metrics.core.evaluate`) reads a clip's pred / GT through one reader per side: a file
through :class:`bench.core.media.FrameReader`, an array through :class:`ArrayReader`, which yields the same
chunks. An array is taken as sampled at the evaluation fps (nothing to resample) and is brought to the
evaluation size by the same ingest rule as a decoded file (:func:`bench.core.media.resize_frames`). Its cache
identity is the sha256 of its shape, dtype and bytes, so two arrays with the same pixels share features and an
array never shares a key with a file.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np

from moee_bench.bench.core import media

#: how an in-memory clip becomes the evaluation's frames (part of its protocol note)
ARRAY_DECODE = "in-memory (T, H, W, 3) uint8 RGB frames, taken as sampled at the evaluation fps"


def is_frames(x: object) -> bool:
    """Whether ``x`` is an in-memory clip (a numpy array) rather than a path."""
    return isinstance(x, np.ndarray)


def check_frames(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as a C-contiguous ``(T, H, W, 3)`` uint8 array; ``ValueError`` naming ``what`` otherwise."""
    if x.dtype != np.uint8:
        raise ValueError(f"{what}: frames must be uint8 RGB (0-255), got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{what}: frames must be shaped (T, H, W, 3), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no frames (T = 0)")
    return np.ascontiguousarray(x)


def content_id(x: np.ndarray) -> str:
    """The cache identity of an in-memory array: ``frames:`` + sha256 of its shape, dtype and bytes."""
    a = np.ascontiguousarray(x)
    h = hashlib.sha256(f"{a.shape}{a.dtype}".encode())
    h.update(memoryview(a).cast("B"))
    return f"frames:{h.hexdigest()}"


class ArrayReader:
    """:class:`bench.core.media.FrameReader`'s interface over an in-memory ``(T, H, W, 3)`` uint8 array."""

    def __init__(self, frames: np.ndarray, *, size: tuple[int, int] | None = None, chunk: int = 32) -> None:
        self.frames = frames
        self.size = size
        self.chunk = max(1, int(chunk))
        self.source_fps: float | None = None        # no container rate: taken as the evaluation fps
        self.source_size: tuple[int, int] = (int(frames.shape[1]), int(frames.shape[2]))
        self.source_indices: list[int] = []
        self.n_frames = 0
        self.notes: list[str] = []                   # what the decoder says of a file; nothing for an array

    @property
    def resized(self) -> bool:
        """Whether frames are resized to the evaluation size."""
        return self.size is not None and tuple(self.size) != self.source_size

    @property
    def resampled(self) -> bool:
        """Never: an array is taken as sampled at the evaluation fps."""
        return False

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.frames), self.chunk):
            part = self.frames[i:i + self.chunk]
            self.source_indices.extend(range(i, i + len(part)))
            self.n_frames += len(part)
            yield part if self.size is None else media.resize_frames(part, self.size)
