"""Shared fixtures. Every test runs offline; ffmpeg comes from imageio-ffmpeg (put on this process's
PATH through a private temporary folder, for the tests that run the reference tools' ``ffmpeg``)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never download weights: fetch-on-first-use is off for the whole run (the local-server tests of
# tests/test_weights_fetch.py opt back in explicitly), and the weights cache and its weights.lock are
# a throw-away folder, never the user's ~/.cache/moee-bench/weights.
os.environ["MOEE_BENCH_OFFLINE"] = "1"
_WEIGHTS_CACHE = tempfile.mkdtemp(prefix="moee-bench-test-weights-")
os.environ["MOEE_BENCH_WEIGHTS"] = _WEIGHTS_CACHE
atexit.register(shutil.rmtree, _WEIGHTS_CACHE, True)
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
