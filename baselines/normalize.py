"""Bring a method's raw output into the suite's store: the method's own frames, untouched, with the
driving audio muxed (trimmed or padded to the video length). Returns a record of what was done,
stored with the generation.

The video stream is copied, not re-encoded (:func:`bench.core.media.remux`), and its frame rate and
size are left as the method made them: the evaluator brings every video to the evaluation fps and
size once, by the one rule of :mod:`bench.core.media`, exactly as ``moee-bench score`` does for the same
file. A video that already has the evaluation fps and size is therefore scored as decoded, and
``run`` and ``score`` give identical values for the same file. Only a crop (one panel of a grid
video) needs the frames decoded and encoded again; that is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from moee_bench.bench.core import media


def _fit_audio(audio: Path, n_frames: int, fps: float, clip_id: str | None) -> tuple[np.ndarray, str]:
    a = media.read_audio(audio, clip_id=clip_id)
    want = int(round(n_frames / fps * media.AUDIO_RATE))
    return np.pad(a[:want], (0, max(0, want - len(a)))), f"driving audio muxed ({len(a)} samples -> {want})"


def normalize_video(src: Path, dst: Path, *, audio: Path | None, fps: float = 25.0,
                    size: tuple[int, int] | None = None, clip_id: str | None = None,
                    crop: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """Store ``src`` as ``dst`` with ``audio``'s track and describe what the evaluator will do to it.

    ``fps`` and ``size`` (H, W) are the evaluation's: a source that differs is recorded here and converted
    once at scoring (not here). ``crop`` = (top, left, height, width) is cut from every frame (e.g. one
    panel of a grid video); only then are the frames re-encoded."""
    info = media.probe(src, clip_id=clip_id)
    src_size = [info.height, info.width]
    rec: dict[str, Any] = {"source_fps": info.fps, "source_size": src_size, "fps": info.fps,
                           "kernel": media.RESIZE_KERNEL}
    if abs(info.fps - fps) > 1e-3:
        rec["fps_conversion"] = (f"{info.fps:g} -> {fps:g} fps by nearest timestamp, once, at scoring "
                                 "(the stored file keeps the method's frames)")
    if crop is None:
        out_size = src_size
        a = media.read_audio(audio, clip_id=clip_id) if audio is not None else None
        n, seconds = media.remux(src, dst, audio=a, keep_audio=audio is None, clip_id=clip_id)
        rec["video"] = "stream copy of the method's output (not decoded, not re-encoded)"
        if a is not None:
            rec["audio"] = f"driving audio muxed ({len(a)} samples -> {int(round(seconds * media.AUDIO_RATE))})"
    else:
        frames = np.concatenate(list(media.FrameReader(src, clip_id=clip_id)))
        top, left, h, w = crop
        frames = np.ascontiguousarray(frames[:, top:top + h, left:left + w])
        out_size = [h, w]
        rec["crop_region"] = f"rows {top}:{top + h}, cols {left}:{left + w} of {info.height}x{info.width}"
        rec["video"] = "decoded, cropped and re-encoded (H.264 crf 18) at the source frame rate"
        a = None
        if audio is not None:
            a, rec["audio"] = _fit_audio(audio, len(frames), info.fps, clip_id)
        media.write_video(dst, [frames], info.fps, audio=a, clip_id=clip_id)
        n = len(frames)
    if size is not None and list(size) != out_size:
        rec["resize"] = f"{out_size[0]}x{out_size[1]} -> {size[0]}x{size[1]} ({media.RESIZE_KERNEL}), once, at scoring"
    rec["n_frames"] = int(n)
    return rec
