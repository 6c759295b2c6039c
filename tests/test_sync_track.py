"""Face tracking / crop vs the syncnet-python pipeline's own ``_track`` and crop arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.metrics.sync import face_track


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


def test_tracks_interpolate_and_filter() -> None:
    """Two faces (one for 20 frames); missed detections are linearly interpolated; short tracks are dropped."""
    dets = _dets()
    tracks = face_track.track_faces(dets, 0, min_track=10)
    assert [t.frames.tolist() for t in tracks] == [list(range(80)), list(range(20, 40))]
    main = tracks[0].boxes
    for i in range(3, 79, 7):          # missed frames: midpoint of the neighbours
        np.testing.assert_allclose(main[i], (dets[i - 1][0, :4] + dets[i + 1][0, :4]) / 2, atol=1e-9)
    assert face_track.track_faces(dets, 0, min_track=30)[0].frames.size == 80  # short face dropped
    assert [t.frames[0] for t in face_track.track_faces(dets[20:], 20, min_track=10)] == [20, 20]  # global frame numbers


def test_tracks_with_the_other_face_listed_first() -> None:
    """A frame listing another face before the tracked one is walked as the reference walks it (no crash)."""
    dets = [d[::-1].copy() for d in _dets()]
    tracks = face_track.track_faces(dets, 0, min_track=10)
    covered = sorted(f for t in tracks for f in t.frames.tolist())
    assert len(tracks) >= 2 and set(range(80)) <= set(covered)


def test_crop_geometry() -> None:
    frames = [np.full((360, 640, 3), 200, np.uint8) for _ in range(15)]
    t = face_track.Track(np.arange(15), np.tile([10.0, 10.0, 110.0, 110.0], (15, 1)))
    crops = face_track.crop_track(frames, t)
    assert crops.shape == (15, 224, 224, 3)
    assert (crops[0, 2, 2] == 110).all()        # grey padding above/left of the face near the frame corner
    assert (crops[0, 200, 200] == 200).all()


def test_crops_equal_pipeline_crop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our crops (cut out without padding the whole frame) are the frames syncnet-python's ``_crop`` hands to its
    VideoWriter, for faces in the middle, at the borders and partly outside the frame."""
    import cv2
    from scipy.io import wavfile
    from syncnet_python import syncnet_pipeline
    from syncnet_python.syncnet_pipeline import SyncNetPipeline

    rng = np.random.default_rng(0)
    n = 20
    frames = [rng.integers(0, 255, (180, 240, 3), dtype=np.uint8) for _ in range(n)]
    files = []
    for i, f in enumerate(frames):
        files.append(str(tmp_path / f"{i:06d}.png"))     # lossless, so imread gives the same frame back
        cv2.imwrite(files[-1], f)
    wavfile.write(tmp_path / "a.wav", 16000, np.zeros(16000, np.int16))
    written: list[np.ndarray] = []

    class Capture:
        def __init__(self, path, *a):
            self.path = path

        def write(self, img):
            written.append(img.copy())

        def release(self):
            Path(self.path).write_bytes(b"")

    monkeypatch.setattr(syncnet_pipeline.cv2, "VideoWriter", Capture)
    monkeypatch.setattr(syncnet_pipeline.subprocess, "run", lambda *a, **k: None)   # audio cut/mux not under test
    pipe = SyncNetPipeline.__new__(SyncNetPipeline)
    pipe.cfg = syncnet_pipeline.PipelineConfig()
    for boxes in (np.array([[60.0 + i, 40.0, 160.0 + i, 150.0] for i in range(n)]),      # inside
                  np.array([[-30.0 + 2 * i, -20.0, 70.0 + 2 * i, 90.0] for i in range(n)]),  # over the top-left corner
                  np.array([[170.0, 100.0 + i, 260.0, 190.0 + i] for i in range(n)])):   # over the bottom-right
        written.clear()
        pipe._crop({"frame": np.arange(n), "bbox": boxes}, files, str(tmp_path / "a.wav"), tmp_path / "c" / "x")
        ours = face_track.crop_track(frames, face_track.Track(np.arange(n), boxes))
        np.testing.assert_array_equal(ours, np.stack(written))


def test_s3fd_batches_equal_detect_faces() -> None:
    """Batched S3FD (NMS over boxes above the threshold only) finds the boxes ``S3FD.detect_faces`` finds per frame."""
    from syncnet_python.detectors.s3fd import S3FD
    from syncnet_python.detectors.s3fd.nets import S3FDNet

    torch.manual_seed(0)
    net = S3FDNet(device="cpu")
    with torch.no_grad():    # a sharp, random face head: many candidate boxes on both sides of 0.9
        for c in net.conf:
            c.weight.mul_(40.0)
    sd = net.state_dict()
    ref = S3FD(net.eval(), device="cpu")
    ours = face_track.S3FDDetector(sd, batch_size=3)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    frames = [np.roll(base, 7 * i, axis=1) for i in range(5)]
    got = ours.detect_batch(frames)
    n_boxes = 0
    for f, g in zip(frames, got):
        r = ref.detect_faces(f[..., ::-1].copy(), conf_th=0.9, scales=[0.25])   # the reference is given RGB
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)
        n_boxes += len(r)
    assert n_boxes > 5


def test_scene_cuts_equal_the_pipelines_scene_list(tmp_path: Path) -> None:
    """Scenes from frames in memory and from the AVI equal what the pipeline's VideoManager/SceneManager calls give."""
    import cv2
    from scenedetect import ContentDetector, SceneManager, StatsManager
    from scenedetect.video_manager import VideoManager

    rng = np.random.default_rng(0)
    a = np.repeat(rng.integers(0, 80, (1, 96, 128, 3), dtype=np.uint8), 30, 0)
    b = np.repeat(rng.integers(150, 255, (1, 96, 128, 3), dtype=np.uint8), 25, 0)
    frames = list(np.concatenate([a, b]))
    avi = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
    for f in frames:
        vw.write(f)
    vw.release()
    vm = VideoManager([str(avi)])      # the pipeline's own calls (syncnet_pipeline.inference step 5)
    sm = SceneManager(StatsManager())
    sm.add_detector(ContentDetector())
    vm.start()
    sm.detect_scenes(frame_source=vm)
    ref = [(x.frame_num, y.frame_num) for x, y in sm.get_scene_list(vm.get_base_timecode())]
    assert ref == [(0, 30), (30, 55)]
    assert face_track.scene_cuts_video(str(avi)) == ref
    assert face_track.scene_cuts(frames) == ref
    assert face_track.scene_cuts(frames[:30]) == [(0, 30)]     # no cut: one scene over all frames (the fallback)


class _FixedBox:
    batch_size = 4

    def detect_batch(self, frames):
        return [np.array([[60.0, 40.0, 200.0, 200.0, 0.99]]) for _ in frames]


def test_tracked_path_scores_each_track(tmp_path: Path) -> None:
    """End to end with a fixed-box detector standing in for S3FD: one track, scored with the real core."""
    from syncnet_python.SyncNetModel import S

    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.metrics.core.base import ClipContext, ClipInput, FrameChunk
    from moee_bench.metrics.core.registry import MetricOptions
    from moee_bench.metrics.sync.metric import Sync

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    (tmp_path / "sfd_face.pth").write_bytes(b"stand-in")   # hash-checked at construction (unverified), never loaded
    m = Sync(MetricOptions(weights=WeightsOptions(str(tmp_path), allow_unverified=True),
                           params={"sync_pixels": "exact", "sync_min_track": 20}))
    m._detector = _FixedBox()
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
    boxes = face_track.RetinaFaceDetector(str(p), conf_th=0.99).detect_batch([np.zeros((120, 160, 3), np.uint8)] * 2)
    assert len(boxes) == 2 and all(b.ndim == 2 and b.shape[1] == 5 for b in boxes)
