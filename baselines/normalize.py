"""Bring a method's raw output to the suite's convention: 25 fps by timestamps, the requested
resolution, the driving audio muxed (trimmed or padded to the video length). Returns a record of
what was changed, stored with the generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from moee_bench.bench.core import media


def normalize_video(src: Path, dst: Path, *, audio: Path | None, fps: float = 25.0,
                    size: tuple[int, int] | None = None, clip_id: str | None = None,
                    crop: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """Re-encode ``src`` into ``dst`` at ``fps`` and ``size`` (H, W) with ``audio``'s track; describe the changes.

    ``crop`` = (top, left, height, width) is cut from every frame first (e.g. one panel of a grid video)."""
    info = media.probe(src, clip_id=clip_id)
    rec: dict[str, Any] = {"source_fps": info.fps, "source_size": [info.height, info.width], "fps": fps}
    reader = media.FrameReader(src, fps=fps, clip_id=clip_id)
    frames = np.concatenate(list(reader))
    if abs(info.fps - fps) > 1e-3:
        rec["fps_conversion"] = f"{info.fps:g} -> {fps:g} fps by nearest timestamp"
    if crop is not None:
        top, left, h, w = crop
        frames = np.ascontiguousarray(frames[:, top:top + h, left:left + w])
        rec["crop_region"] = f"rows {top}:{top + h}, cols {left}:{left + w} of {info.height}x{info.width}"
    if size is not None and tuple(frames.shape[1:3]) != tuple(size):
        h, w = size
        rec["resize"] = f"{frames.shape[1]}x{frames.shape[2]} -> {h}x{w} (area)"
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    a = None
    if audio is not None:
        a = media.read_audio(audio, clip_id=clip_id)
        want = int(round(len(frames) / fps * media.AUDIO_RATE))
        rec["audio"] = f"driving audio muxed ({len(a)} samples -> {want})"
        a = np.pad(a[:want], (0, max(0, want - len(a))))
    media.write_video(dst, [frames], fps, audio=a, clip_id=clip_id)
    rec["n_frames"] = int(len(frames))
    return rec
