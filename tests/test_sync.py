"""Sync-C/D: parity with syncnet_python's SyncNetInstance.evaluate, shift behaviour, statuses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from bench import media
from bench.weights import WeightsOptions
from metrics.evaluate import ClipInput, evaluate
from metrics.registry import MetricOptions
from metrics.syncnet_core import load_syncnet, offset_distances, score


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from syncnet_python.SyncNetModel import S

    d = tmp_path_factory.mktemp("syncw")
    torch.manual_seed(0)
    torch.save(S().state_dict(), d / "syncnet_v2.model")
    return d


def _face_frames(n: int) -> np.ndarray:
    from skimage.data import astronaut

    face = cv2.resize(astronaut()[40:300, 150:410], (224, 224))
    rng = np.random.default_rng(0)
    out = []
    for t in range(n):
        f = face.copy()
        f[150:190, 80:150] = (f[150:190, 80:150] * (0.5 + 0.5 * np.sin(t / 2))).astype(np.uint8)
        out.append(np.clip(f.astype(int) + rng.integers(-5, 5, f.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_vectorised_offsets_equal_reference_loop():
    from syncnet_python.SyncNetInstance import calc_pdist

    rng = torch.Generator().manual_seed(1)
    a, b = torch.randn(30, 1024, generator=rng), torch.randn(30, 1024, generator=rng)
    ref = torch.stack(calc_pdist(a, b, vshift=15), 0)
    assert torch.allclose(offset_distances(a, b, 15), ref, atol=1e-6)


def test_parity_with_syncnet_instance_evaluate(weights, tmp_path):
    from scipy.io import wavfile
    from syncnet_python.SyncNetInstance import SyncNetInstance

    frames = _face_frames(40)
    audio = (np.random.default_rng(2).standard_normal(25723) * 3000).astype(np.int16)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i + 1:06d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    wavfile.write(tmp_path / "audio.wav", 16000, audio)
    sd = torch.load(weights / "syncnet_v2.model", weights_only=True)
    ref_net = load_syncnet(sd)
    ref = SyncNetInstance(ref_net, device="cpu").evaluate(SimpleNamespace(tmp_dir=str(tmp_path), batch_size=20, vshift=15))
    decoded = np.stack([cv2.imread(str(tmp_path / f"{i + 1:06d}.jpg")) for i in range(40)])
    ours = score(load_syncnet(sd), decoded, audio)
    assert ours.offset == ref[0]
    assert ours.conf == pytest.approx(ref[1], abs=1e-4) and ours.dist == pytest.approx(ref[2], abs=1e-4)
    assert ours.n_windows == min(40, 25723 // 640) - 5


def test_audio_shift_moves_the_distance_curve(weights):
    sd = torch.load(weights / "syncnet_v2.model", weights_only=True)
    net = load_syncnet(sd)
    frames = cv2.cvtColor(np.ascontiguousarray(_face_frames(60).reshape(-1, 224, 3)), cv2.COLOR_RGB2BGR).reshape(60, 224, 224, 3)
    audio = (np.random.default_rng(3).standard_normal(60 * 640) * 3000).astype(np.int16)
    base = score(net, frames, audio)
    k = 3
    shifted = np.concatenate([np.zeros(k * 640, np.int16), audio])[: len(audio)]   # audio delayed by k frames
    moved = score(net, frames, shifted)
    # moved.dists[i, o] compares v_i with a'_{i+o-15} = a_{i+o-15-k}: base.dists[i, o-k] wherever both
    # audio windows are real (not zero padding). The whole distance surface moves by exactly k offsets.
    n, checked = base.n_windows, 0
    for i in range(n):
        for o in range(k, 31):
            j = i + o - 15
            if 0 <= j < n and 0 <= j - k < n:
                assert moved.dists[i, o] == pytest.approx(base.dists[i, o - k], rel=1e-4, abs=1e-4)
                checked += 1
    assert checked > n * 20
    assert not np.allclose(moved.dists, base.dists)


def test_metric_statuses_and_face_cropped_scoring(weights, tmp_path):
    from metrics.sync import Sync

    opts = MetricOptions(weights=WeightsOptions(str(weights), allow_unverified=True), params={"face_cropped": "1"})
    audio = (0.1 * np.random.default_rng(4).standard_normal(int(1.6 * 16000))).astype(np.float32)
    crop = media.write_video(tmp_path / "crop.mp4", [_face_frames(40)], 25, audio=audio)
    short = media.write_video(tmp_path / "short.mp4", [_face_frames(4)], 25, audio=audio[:2560])
    silent = media.write_video(tmp_path / "silent.mp4", [_face_frames(10)], 25)
    res = evaluate([ClipInput("crop", crop), ClipInput("short", short), ClipInput("silent", silent)], [Sync(opts)],
                   progress=False)
    by = {c.clip_id: c for c in res.clips}
    assert by["crop"].status["sync"] == "ok" and -15 <= by["crop"].values["offset"] <= 15
    assert by["short"].status["sync"] == "too_short" and by["silent"].status["sync"] == "no_audio"
    assert res.metrics["sync_n"] == 1 and res.metrics["sync_c"] == by["crop"].values["sync_c"]


def test_no_face_video_is_status_no_face_not_zero(weights, tmp_path):
    from metrics.sync import Sync

    opts = MetricOptions(weights=WeightsOptions(str(weights), allow_unverified=True), params={"sync_detector": "mtcnn"})
    audio = np.zeros(16000, np.float32)
    blank = media.write_video(tmp_path / "blank.mp4", [np.full((25, 128, 128, 3), 100, np.uint8)], 25, audio=audio)
    res = evaluate([ClipInput("blank", blank)], [Sync(opts)], progress=False)
    assert res.clips[0].status["sync"] == "no_face" and "sync_c" not in res.clips[0].values
    assert res.metrics["sync_c"] is None and "no clip" in res.metrics["sync_c_reason"]


def test_tracked_crop_on_the_sample_dataset(weights, sample_manifest):
    from bench.manifest import load_manifest
    from metrics.sync import Sync

    m = load_manifest(sample_manifest)
    c = m.by_id()["astronaut_happiness"]
    opts = MetricOptions(weights=WeightsOptions(str(weights), allow_unverified=True), params={"sync_detector": "mtcnn"})
    res = evaluate([ClipInput(c.clip_id, m.media_path(c), audio=m.media_path(c, "audio"))], [Sync(opts)], progress=False)
    assert res.clips[0].status["sync"] == "ok", res.clips[0].messages
    assert res.metrics["sync_d"] > 0
