"""Face tracking / crop vs the syncnet-python pipeline's own ``_track`` and crop arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.metrics import face_track


def _dets(n: int = 80, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        boxes = []
        if i % 7 != 3:  # missed detections to interpolate over
            x = 100 + 0.5 * i + rng.normal(0, 1)
            boxes.append([x, 80, x + 150, 240, 0.99])
        if 20 <= i < 40:  # a second, short-lived face elsewhere
            boxes.append([400, 50, 520, 190, 0.95])
        out.append(np.array(boxes).reshape(-1, 5))
    return out


def test_tracks_match_pipeline_track() -> None:
    from syncnet_python.syncnet_pipeline import SyncNetPipeline

    dets = _dets()
    pipe = SyncNetPipeline.__new__(SyncNetPipeline)
    pipe.cfg = type("C", (), {"num_failed_det": 25, "min_track": 10, "min_face_size": 100})()
    ref_in = [[{"frame": i, "bbox": b[:4].tolist()} for b in fr] for i, fr in enumerate(dets)]
    ref = pipe._track(ref_in)
    ours = face_track.track_faces(dets, 0, min_track=10)
    assert len(ours) == len(ref) == 2
    for o, r in zip(ours, ref):
        np.testing.assert_array_equal(o.frames, r["frame"])
        np.testing.assert_allclose(o.boxes, r["bbox"], atol=1e-9)
    assert face_track.track_faces(dets, 0, min_track=30)[0].frames.size == 80  # short face dropped


def test_crop_geometry() -> None:
    frames = [np.full((360, 640, 3), 200, np.uint8) for _ in range(15)]
    t = face_track.Track(np.arange(15), np.tile([10.0, 10.0, 110.0, 110.0], (15, 1)))
    crops = face_track.crop_track(frames, t)
    assert crops.shape == (15, 224, 224, 3)
    assert (crops[0, 2, 2] == 110).all()        # grey padding above/left of the face near the frame corner
    assert (crops[0, 200, 200] == 200).all()


def test_scene_cuts_split_at_content_change() -> None:
    a = np.zeros((30, 64, 64, 3), np.uint8)
    b = np.full((30, 64, 64, 3), 255, np.uint8)
    b[..., 0] = 0
    scenes = face_track.scene_cuts(list(np.concatenate([a, b])))
    assert scenes[-1][1] == 60 and any(s == 30 for s, _ in scenes)


def test_tracked_path_scores_each_track(tmp_path: Path) -> None:
    """End to end with a fixed-box detector standing in for S3FD: one track, scored with the real core."""
    from syncnet_python.SyncNetModel import S

    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.metrics.base import ClipContext, ClipInput, FrameChunk
    from moee_bench.metrics.registry import MetricOptions
    from moee_bench.metrics.sync import Sync

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    (tmp_path / "sfd_face.pth").write_bytes(b"stand-in")   # hash-checked at construction (unverified), never loaded
    m = Sync(MetricOptions(weights=WeightsOptions(str(tmp_path), allow_unverified=True),
                           params={"sync_pixels": "exact", "sync_min_track": 20}))
    m._detector = lambda rgb: np.array([[60.0, 40.0, 200.0, 200.0, 0.99]])
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (40, 30, 40, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    ctx = ClipContext(ClipInput("c", Path("x.mp4")), 25.0, None, audio=(0.1 * rng.standard_normal(40 * 640)).astype(np.float32),
                      audio_source="driving")
    ex = m.extractor(ctx)
    ex.add(FrameChunk(0, frames))
    r = m.update(ctx, ex.finish())
    assert len(r["sync_tracks"]) == 1 and r["sync_tracks"][0]["length"] == 40
    assert np.isfinite(r["sync_c"]) and -15 <= r["offset"] <= 15
    m2 = Sync(MetricOptions(weights=WeightsOptions(str(tmp_path), allow_unverified=True),
                            params={"sync_pixels": "exact", "sync_min_track": 50}))
    m2._detector = m._detector
    ex = m2.extractor(ctx)
    ex.add(FrameChunk(0, frames))
    from moee_bench.bench.core.errors import ClipError

    with pytest.raises(ClipError) as e:
        m2.update(ctx, ex.finish())
    assert e.value.status == "too_short"


def test_retinaface_alternative_runs(tmp_path: Path) -> None:
    """The facexlib RetinaFace detector loads a state dict in facexlib's format and returns (n, 5) boxes."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    p = tmp_path / "detection_Resnet50_Final.pth"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, p)
    boxes = face_track.RetinaFaceDetector(str(p), conf_th=0.99)(np.zeros((120, 160, 3), np.uint8))
    assert boxes.ndim == 2 and boxes.shape[1] == 5
