"""pytest-benchmark cases: our scorer vs SyncNetInstance.evaluate on the same 30-frame crop clip.

Run with ``pytest tests/test_sync_bench.py --benchmark-enable``; compare the two groups' means (no speed is asserted)."""

from __future__ import annotations

import contextlib
import io
import types

import cv2
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from moee_bench.metrics.sync.syncnet_core import SyncNetScorer


@pytest.fixture(scope="module")
def crop_clip(tmp_path_factory: pytest.TempPathFactory):
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(0)
    state = S().state_dict()
    d = tmp_path_factory.mktemp("bench_crop")
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8), (224, 224))
    for i in range(30):
        cv2.imwrite(str(d / f"{i + 1:06d}.jpg"), np.roll(base, i, axis=0))
    frames = np.stack([cv2.imread(str(d / f"{i + 1:06d}.jpg")) for i in range(30)])
    audio = (rng.standard_normal(30 * 640) * 3000).astype(np.int16)
    wavfile.write(d / "audio.wav", 16000, audio)
    return state, d, frames, audio


@pytest.mark.benchmark(group="sync")
def test_bench_sync_ours(benchmark, crop_clip) -> None:
    state, _, frames, audio = crop_clip
    sc = SyncNetScorer.from_state_dict(state)
    r = benchmark(sc.score, frames, audio)
    assert r.n_windows == 25


@pytest.mark.benchmark(group="sync")
def test_bench_sync_reference(benchmark, crop_clip) -> None:
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    state, d, _, _ = crop_clip
    net = S()
    net.load_state_dict(state)
    ref = SyncNetInstance(net, device="cpu")
    opt = types.SimpleNamespace(tmp_dir=str(d), batch_size=20, vshift=15)

    def go():
        with contextlib.redirect_stdout(io.StringIO()):
            return ref.evaluate(opt)

    off, conf, dist = benchmark(go)
    assert -15 <= off <= 15
