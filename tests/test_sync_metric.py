"""Sync metric: audio-shift behaviour, no-face status, JPEG round trip, merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.sync import syncnet_core as core
from moee_bench.metrics.core.base import ClipContext, ClipInput, FrameChunk
from moee_bench.metrics.core.registry import MetricOptions
from moee_bench.metrics.sync.metric import Sync


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    from syncnet_python.SyncNetModel import S
    from syncnet_python.detectors.s3fd.nets import S3FDNet

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    zero = {k: torch.zeros_like(v) for k, v in S3FDNet(device="cpu").state_dict().items()}
    torch.save(zero, tmp_path / "sfd_face.pth")  # a detector that finds nothing (all scores 0.5 < 0.9)
    return tmp_path


def _opts(wd: Path, **params) -> MetricOptions:
    return MetricOptions(weights=WeightsOptions(weights_dir=str(wd), allow_unverified=True), params=params)


def _clip(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8).repeat(28, 1).repeat(28, 2)
    audio = (0.2 * rng.standard_normal(n * 640)).astype(np.float32)
    return frames, audio


def _ctx(audio: np.ndarray | None, cid: str = "c", pred: Path = Path("x.mp4")) -> ClipContext:
    return ClipContext(ClipInput(cid, pred), fps=25.0, size=None, audio=audio, audio_source="driving")


def _score(m: Sync, frames: np.ndarray, audio: np.ndarray | None, cid: str = "c", pred: Path = Path("x.mp4")) -> dict:
    ctx = _ctx(audio, cid, pred)
    ex = m.extractor(ctx)
    ex.add(FrameChunk(0, frames[:17]))
    ex.add(FrameChunk(17, frames[17:]))
    return m.update(ctx, ex.finish())


def _check_shift(sc: core.SyncNetScorer, frames_bgr: np.ndarray, a16: np.ndarray, k: int) -> None:
    """Delay the audio by k frames (k*640 samples = 4k MFCC hops): every distance moves k offset indices.

    With random weights the curve has no meaningful minimum, so the test is on the structure itself:
    D'[i, j] == D[i, j - k] wherever neither side touches the zero padding, and on windows whose all 31
    offsets are real the mean curve shifts exactly, so its argmin moves by k (offset = vshift - index)."""
    n = len(frames_bgr)
    audio = np.pad(a16, (0, max(0, n * 640 - len(a16))))[: n * 640]   # sample audio may end < 20 ms early
    delayed = np.concatenate([np.zeros(k * 640, np.int16), audio])[: n * 640]
    d0, d1 = sc.distances(frames_bgr, audio), sc.distances(frames_bgr, delayed)
    nw, v = d0.shape[0], core.VSHIFT
    # audio feature index used by D[i, j] is i + j - v; delayed features t >= k+1 equal original t - k
    # (the first MFCC columns after the delay see the zeros through the 25 ms window / pre-emphasis).
    rows = np.arange(nw)
    checked = 0
    for j in range(k, 2 * v + 1):
        t = rows + j - v
        ok = (t - k >= 0) & (t - k < nw) & (t >= k + 1) & (t < nw)
        torch.testing.assert_close(d1[ok, j], d0[ok, j - k], atol=2e-3, rtol=1e-4)
        checked += int(ok.sum())
    assert checked > nw
    inner = slice(v + k + 1, nw - v)           # windows with every offset inside real (non-delay) features
    m0, m1 = d0[inner].mean(0), d1[inner].mean(0)
    torch.testing.assert_close(m1[k:], m0[: 2 * v + 1 - k], atol=2e-3, rtol=1e-4)
    j0 = int(torch.argmin(m0[: 2 * v + 1 - k]))
    assert int(torch.argmin(m1[k:])) + k == j0 + k  # best offset index moves by exactly k


def _scorer(weights_dir: Path) -> core.SyncNetScorer:
    return core.SyncNetScorer.from_state_dict(torch.load(weights_dir / "syncnet_v2.model", weights_only=True))


def test_audio_shift_moves_offset_synthetic(weights_dir: Path) -> None:
    frames, audio = _clip(70)
    _check_shift(_scorer(weights_dir), np.ascontiguousarray(frames[:, :, :, ::-1]), core.float_to_int16(audio), k=3)


def test_audio_shift_moves_offset_on_sample(weights_dir: Path, request: pytest.FixtureRequest) -> None:
    """Same check on the built-in sample data (first clip, whole frame resized to 224, its driving audio)."""
    pytest.importorskip("moee_bench.bench.suite.sample")
    sample_manifest = request.getfixturevalue("sample_manifest")
    import cv2

    from moee_bench.bench.core import media
    from moee_bench.bench.core.manifest import load_manifest

    man = load_manifest(sample_manifest)
    clip = man.clips[0]
    video = man.media_path(clip, "video")
    frames = media.read_frames(video, fps=25.0)
    audio = media.read_audio(man.media_path(clip, "audio") if clip.audio else video)
    bgr = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), (224, 224)) for f in frames])
    if len(bgr) < 40:
        pytest.skip("sample clip shorter than 40 frames")
    _check_shift(_scorer(weights_dir), bgr, core.float_to_int16(audio), k=2)


def test_no_face_video_is_no_face_not_zero(weights_dir: Path, write_clip) -> None:
    """The tracked path (the reference's file steps) on a faceless video: status no_face, never a number."""
    from moee_bench.bench.core.errors import ClipError

    m = Sync(_opts(weights_dir))
    frames, audio = _clip(30)
    pred = write_clip("noface", frames=frames)
    with pytest.raises(ClipError) as e:
        _score(m, frames, audio, pred=pred)
    assert e.value.status == "no_face"
    out = m.compute()
    assert out["sync_c"] is None and out["sync_n_no_face"] == 1


def test_no_audio_status(weights_dir: Path) -> None:
    from moee_bench.bench.core.errors import ClipError

    m = Sync(_opts(weights_dir, face_cropped=True))
    with pytest.raises(ClipError) as e:
        _score(m, *_clip(20)[:1], None)
    assert e.value.status == "no_audio"


def test_face_cropped_exact_matches_core_and_merge(weights_dir: Path) -> None:
    frames, audio = _clip(30)
    m = Sync(_opts(weights_dir, face_cropped="true", sync_pixels="exact"))
    r = _score(m, frames, audio)
    sc = m.scorer()
    ref = sc.score(np.ascontiguousarray(frames[:, :, :, ::-1]), core.float_to_int16(audio))
    assert r["offset"] == ref.offset and r["sync_c"] == pytest.approx(ref.conf) and r["sync_d"] == pytest.approx(ref.dist)
    m2 = Sync(_opts(weights_dir, face_cropped="true", sync_pixels="exact"))
    f2, a2 = _clip(30, seed=5)
    _score(m2, f2, a2, "d")
    both = Sync(_opts(weights_dir, face_cropped="true", sync_pixels="exact"))
    both.load_state_dict(m.state_dict())
    both.merge(m2)
    one = Sync(_opts(weights_dir, face_cropped="true", sync_pixels="exact"))
    _score(one, frames, audio)
    _score(one, f2, a2, "d")
    assert both.compute()["sync_c"] == pytest.approx(one.compute()["sync_c"], abs=1e-12)


def test_through_evaluator(weights_dir: Path, write_clip) -> None:
    """The metric plugs into moee_bench.metrics.core.evaluate: driving audio by default, the video's own track as the option."""
    from moee_bench.metrics.core.evaluate import evaluate

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (30, 8, 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    pred = write_clip("p", frames=frames)
    drv = write_clip("drv", frames=frames, seed=9)
    res = {}
    for src in ("driving", "video"):
        m = Sync(_opts(weights_dir, face_cropped=True, sync_audio=src))
        r = evaluate([ClipInput("p", pred, audio=drv)], [m], progress=False)
        o = r.clips[0]
        assert o.status.get("sync", "ok") == "ok", o.messages
        assert o.values["sync_audio"] == src and -15 <= o.values["offset"] <= 15
        res[src] = r.metrics["sync_c"]
    assert res["driving"] != res["video"]  # different noise tracks give different curves
