"""Shared fixtures. Every test runs offline; ffmpeg comes from imageio-ffmpeg (put on this process's
PATH through a private temporary folder, for the tests that run the reference tools' ``ffmpeg``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from moee_bench.bench.core.ffmpeg import ensure_ffmpeg_on_path  # noqa: E402

ensure_ffmpeg_on_path()


@pytest.fixture(scope="session")
def sample_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sample dataset, generated once per test session; returns the manifest path."""
    from moee_bench.bench.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture
def write_clip(tmp_path: Path):
    """Write a small synthetic H.264+AAC clip: ``write_clip(name, frames=..., fps=..., audio=True)``."""
    from moee_bench.bench.core.media import write_video

    def _write(name: str = "clip", *, frames: np.ndarray | None = None, n: int = 30, size: int = 64, fps: float = 25.0,
               audio: bool = True, seed: int = 0, folder: Path | None = None) -> Path:
        rng = np.random.default_rng(seed)
        if frames is None:
            frames = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        a = (0.1 * rng.standard_normal(int(16000 * len(frames) / fps))).astype(np.float32) if audio else None
        path = (folder or tmp_path) / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(path, [frames], fps, audio=a)

    return _write
