"""SyncNet core parity: our vectorised scorer vs syncnet_python.SyncNetInstance.evaluate (same random weights)."""

from __future__ import annotations

import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from moee_bench.metrics.sync import syncnet_core as core


def _random_net_file(tmp_path: Path, seed: int = 0) -> Path:
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(seed)
    net = S()
    for m in net.modules():  # non-trivial BN running stats so eval mode is exercised
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    p = tmp_path / "syncnet_v2.model"
    torch.save(net.state_dict(), p)  # the package's format: a plain state dict
    return p


def _crop_clip(tmp_path: Path, n: int = 30, seed: int = 1) -> tuple[Path, np.ndarray, np.ndarray]:
    """Random smooth 224x224 frames written as JPEG + s16 wav; returns dir, decoded BGR frames, int16 audio."""
    rng = np.random.default_rng(seed)
    d = tmp_path / "crop"
    d.mkdir()
    base = cv2.resize(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8), (224, 224))
    frames = []
    for i in range(n):
        f = np.roll(base, 3 * i, axis=1)
        cv2.imwrite(str(d / f"{i + 1:06d}.jpg"), f)
        frames.append(cv2.imread(str(d / f"{i + 1:06d}.jpg")))
    audio = (rng.standard_normal(int(16000 * n / 25) + 123) * 3000).astype(np.int16)
    wavfile.write(d / "audio.wav", 16000, audio)
    return d, np.stack(frames), audio


def test_parity_with_syncnet_instance(tmp_path: Path) -> None:
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    wfile = _random_net_file(tmp_path)
    ref_net = S()
    ref = SyncNetInstance(ref_net, device="cpu")
    ref.loadParameters(str(wfile))
    d, frames, audio = _crop_clip(tmp_path)
    opt = types.SimpleNamespace(tmp_dir=str(d), batch_size=20, vshift=15)
    r_off, r_conf, r_dist = ref.evaluate(opt)

    for fast in (True, False):
        ours = core.SyncNetScorer.from_state_dict(torch.load(wfile, weights_only=True), batch_size=7, fast=fast)
        res = ours.score(frames, audio)
        assert res.offset == r_off
        assert abs(res.conf - r_conf) < 1e-4
        assert abs(res.dist - r_dist) < 1e-4
        assert res.n_windows == min(30, len(audio) // 640) - 5
        assert res.mdist.shape == (31,)


def test_fast_net_equals_syncnet_s(tmp_path: Path) -> None:
    from syncnet_python.SyncNetModel import S

    from moee_bench.metrics.sync.syncnet_fast import FastSyncNet

    net = S()
    net.load_state_dict(torch.load(_random_net_file(tmp_path), weights_only=True))
    net.eval()
    fast = FastSyncNet(net)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 5, 224, 224, generator=g) * 255
    a = torch.randn(3, 1, 13, 20, generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(fast.forward_lip(x.permute(0, 2, 1, 3, 4).reshape(3, 15, 224, 224)),
                                   net.forward_lip(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(fast.forward_aud(a), net.forward_aud(a), atol=1e-5, rtol=1e-4)


def test_vectorised_offsets_equal_loop() -> None:
    g = torch.Generator().manual_seed(0)
    im, cc = torch.randn(17, 64, generator=g), torch.randn(17, 64, generator=g)
    vec = core.offset_distances(im, cc)
    loop = core.offset_distances_loop(im, cc)
    assert vec.shape == (17, 31)
    torch.testing.assert_close(vec, loop, atol=1e-5, rtol=0)
    # zero-padded edge: the first window at the most negative offset compares with a zero vector
    assert torch.isclose(vec[0, 0], torch.linalg.vector_norm(im[0] + 1e-6), atol=1e-5)


def test_median_is_lower_middle_and_offset_sign() -> None:
    d = torch.ones(5, 31)
    d[:, 10] = 0.25  # index 10 -> offset vshift - 10 = 5
    r = core.summarise(d)
    assert r.offset == 5 and r.dist == pytest.approx(0.25) and r.conf == pytest.approx(0.75)


def test_window_count_and_int16() -> None:
    assert core.n_windows(40, 25723) == 35
    assert core.n_windows(100, 6400) == 5
    assert core.float_to_int16(np.array([1.0, -1.0, 0.5, 2.0])).tolist() == [32767, -32768, 16384, 32767]
