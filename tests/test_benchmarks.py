"""pytest-benchmark cases for the hot paths (run as plain tests by default; time them with
``pytest -m benchmark --benchmark-enable``). Nothing here asserts a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.core import media

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    return media.write_video(tmp_path_factory.mktemp("b") / "c.mp4", [rng.integers(0, 255, (50, 128, 128, 3), dtype=np.uint8)], 25)


def test_decode(benchmark, clip):
    out = benchmark(lambda: sum(len(c) for c in media.FrameReader(clip, fps=25)))
    assert out == 50


def test_offset_search(benchmark):
    from syncnet_python.SyncNetInstance import calc_pdist

    from moee_bench.metrics.sync.syncnet_core import offset_distances

    a, b = torch.randn(70, 1024), torch.randn(70, 1024)
    d = benchmark(offset_distances, a, b, 15)
    assert torch.allclose(d, torch.stack(calc_pdist(a, b, 15)), atol=1e-5)


def test_store_writes(benchmark, tmp_path):
    from moee_bench.bench.suite.store import ResultStore

    st = ResultStore(tmp_path / "s")
    counter = iter(range(10**6))

    def write():
        i = next(counter)
        st.put_clip("r", "m", f"c{i}", values={"psnr": 30.0, "ssim": 0.9, "lpips": 0.1}, status={"psnr": "ok"})

    benchmark(write)
    assert len(st.done_clips("r", "m")) >= 1


def test_throughput_measures_a_method(sample_manifest):
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.perf.throughput import measure

    r = measure("static", load_manifest(sample_manifest), ["astronaut_happiness"], repeats=1)
    assert r["clips"] == 1 and r["frames_per_s"] > 0 and r["peak_mem_bytes"] > 0
