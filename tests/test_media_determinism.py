"""A written video has the same bits on every machine: x264 takes its thread count from the cores it sees unless
told, and its output depends on that count (measured: 1 core and 2 cores gave other bits for the same frames),
so the built-in sample and everything scored from it would differ between machines."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import media

_CHILD = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})     # one core, before the encoder looks
import numpy as np
from moee_bench.bench.core import media
frames = np.load(sys.argv[1])
media.write_video(sys.argv[2], [frames], 25.0)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity (Linux)")
def test_written_video_bits_do_not_depend_on_the_cores(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    frames = np.clip(base.astype(int) + rng.integers(-20, 21, (30, 256, 256, 3)), 0, 255).astype(np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    here = media.write_video(tmp_path / "here.mp4", [frames], 25.0)
    subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "frames.npy"), str(tmp_path / "one_core.mp4")],
                   check=True, timeout=120)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (here, tmp_path / "one_core.mp4")]
    assert digest[0] == digest[1]
