"""The face pass at the libraries' own values, faster and shared (issue 30, point 4).

Every answer here comes from the untouched libraries, computed in the test: facenet-pytorch's own
``MTCNN.detect`` (a fresh instance, not the one our detector patches a copy of), ``nn.MaxPool2d``, dlib's own
``shape_predictor``; and the AKD number ``score`` prints with the library path switched in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import exitcodes, faces, media, mtcnn_fast
from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.core.mtcnn_fast import AreaSampler, ExactMaxPool2d, FastMTCNN
from tests.conftest import write_sample_pairs


@pytest.fixture(scope="module")
def real_frames(sample_manifest: Path) -> np.ndarray:
    """12 real frames of the sample's three faces (256x256), two of them shifted so the face touches the border
    (clipped, non-square candidate crops), and one frame of noise (no face)."""
    m = load_manifest(sample_manifest)
    out = []
    for ident in ("astronaut", "hopper", "lfw12"):
        clip = next(c for c in m.clips if c.identity == ident)
        fr = media.read_frames(m.media_path(clip, "video"))
        out.extend(fr[[0, len(fr) // 3, 2 * len(fr) // 3]])
    out.append(np.roll(out[0], 90, axis=1))
    out.append(np.roll(out[3], -80, axis=0))
    out.append(np.random.default_rng(0).integers(0, 255, out[0].shape, dtype=np.uint8))
    return np.stack(out)


def _library(frames: np.ndarray):
    from facenet_pytorch import MTCNN

    ref = MTCNN(keep_all=True, min_face_size=20, post_process=False)
    with faces.torch_threads(1):
        return ref, ref.detect(frames, landmarks=True)


def test_fast_mtcnn_is_bit_identical_to_facenet_pytorch(real_frames):
    """Against the library called on the chunks ours runs (its own outputs depend in their last bits on how many
    frames share a call: on this sample a 12-frame call and 8 + 4-frame calls differ in 2 frames by ~8e-6 px)."""
    ref, _ = _library(real_frames[:1])
    step = mtcnn_fast.chunk_frames(real_frames.shape)
    assert step < len(real_frames)                        # more than one chunk, on both cores
    boxes, probs, points = [], [], []
    with faces.torch_threads(1):
        for i in range(0, len(real_frames), step):
            b, p, l = ref.detect(real_frames[i:i + step], landmarks=True)
            boxes, probs, points = [*boxes, *b], [*probs, *p], [*points, *l]
        got = FastMTCNN(ref).detect(real_frames)
    n_boxes = 0
    for i, g in enumerate(got):
        if boxes[i] is None:
            assert g is None, i
            continue
        n_boxes += len(boxes[i])
        assert g is not None, i
        for ours, theirs in zip(g, (boxes[i], probs[i], points[i])):
            np.testing.assert_array_equal(ours, np.asarray(np.asarray(theirs).tolist(), np.float64))
    assert got[-1] is None and sum(g is not None for g in got) == len(got) - 1 and n_boxes >= len(got) - 1
    for net in (ref.pnet, ref.rnet, ref.onet):            # the library's networks were not touched
        assert any(isinstance(mod, torch.nn.MaxPool2d) for mod in net.children())


def _nhwc(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float()          # what facenet-pytorch feeds interpolate


@pytest.mark.parametrize("hw,sizes", [((256, 256), [(154, 154), (109, 109), (14, 14)]),
                                      ((97, 130), [(59, 79), (12, 16), (97, 130)]),
                                      ((720, 1280), [(433, 769), (13, 23)])])
@pytest.mark.parametrize("n", [1, 3])
def test_area_sampler_frames_equal_torch_area_resampling(hw, sizes, n):
    """Every pyramid scale equals ``interpolate(mode="area")`` on the permuted NHWC input facenet-pytorch gives it:
    values and the memory layout (the next convolution's bits depend on it)."""
    fr = np.random.default_rng(n).integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    fr[0, :5] = 255                                                   # a saturated band: the largest window sums
    sampler = AreaSampler(fr)
    for size in sizes:
        want = torch.nn.functional.interpolate(_nhwc(fr), size=size, mode="area")
        got = sampler.frames(*size)
        assert got.shape == want.shape and got.stride() == want.stride(), size
        assert torch.equal(got, want), size


def test_area_sampler_crops_equal_the_library_crop_loop():
    """R/O-net crops (boxes clipped at the border, 1-pixel, empty and non-square ones) equal facenet-pytorch's
    own loop: one ``imresample`` per non-empty box, concatenated."""
    from facenet_pytorch.models.utils.detect_face import imresample

    rng = np.random.default_rng(5)
    fr = rng.integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
    imgs = _nhwc(fr)
    k = 40
    y, x = rng.integers(1, 80, k), rng.integers(1, 110, k)
    ey, ex = np.minimum(y + rng.integers(0, 70, k), 90), np.minimum(x + rng.integers(0, 70, k), 120)
    y[0], ey[0], x[1], ex[1] = 5, 3, 9, 7                             # empty boxes, skipped as the library skips them
    ey[2], ex[2] = y[2], x[2]                                         # one pixel
    inds = rng.integers(0, 3, k)
    for size in (24, 48):
        want = torch.cat([imresample(imgs[inds[j], :, y[j] - 1:ey[j], x[j] - 1:ex[j]].unsqueeze(0), (size, size))
                          for j in range(k) if ey[j] > y[j] - 1 and ex[j] > x[j] - 1])
        got = AreaSampler(fr).crops(inds, y, ey, x, ex, size)
        assert got.shape == want.shape == (k - 2, 3, size, size) and got.is_contiguous()
        assert torch.equal(got, want)


def test_fast_mtcnn_per_frame_and_on_threads_equals_the_library(real_frames, monkeypatch):
    """facenet-pytorch's values depend in their last bits on how many frames share a call (its batched
    convolutions), so the answer is the library called as ours calls it: one frame alone equals a one-frame
    ``MTCNN.detect``; a clip on two Python threads equals the library on the same chunks of ``CHUNK`` frames."""
    ref, _ = _library(real_frames[:1])
    fast = FastMTCNN(ref)

    def same(ours, boxes, probs, points) -> None:
        assert (ours is None) == (boxes is None)
        if ours is not None:
            for a, b in zip(ours, (boxes, probs, points)):
                np.testing.assert_array_equal(a, np.asarray(np.asarray(b).tolist(), np.float64))

    with faces.torch_threads(1):
        for f in real_frames[[0, 4, 8, 9, 10, 11]]:
            (b, p, l), ours = ref.detect(f[None], landmarks=True), fast.detect(f[None])
            same(ours[0], b[0], p[0], l[0])
        monkeypatch.setattr(mtcnn_fast, "CHUNK", 4)
        monkeypatch.setattr(mtcnn_fast, "workers", lambda: 2)
        threaded = fast.detect(real_frames)
        for i in range(0, len(real_frames), 4):
            b, p, l = ref.detect(real_frames[i:i + 4], landmarks=True)
            for j in range(len(b)):
                same(threaded[i + j], b[j], p[j], l[j])


def test_windows_too_large_to_sum_exactly_go_to_the_library(real_frames, monkeypatch):
    """Where a window's pixel sum could pass float32's exact integers, the library's own resampling runs: with the
    limit forced down, every stage takes that path and the result is still the library's."""
    monkeypatch.setattr(mtcnn_fast, "_EXACT_SUM", 1)
    assert AreaSampler(real_frames[:1]).frames(20, 20) is None
    ref, (boxes, probs, points) = _library(real_frames[:4])
    with faces.torch_threads(1):
        got = FastMTCNN(ref).detect(real_frames[:4])
    for g, b, p, l in zip(got, boxes, probs, points):
        for ours, theirs in zip(g, (b, p, l)):
            np.testing.assert_array_equal(ours, np.asarray(np.asarray(theirs).tolist(), np.float64))


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 3)])
@pytest.mark.parametrize("hw", [(24, 24), (23, 31), (4, 5), (3, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_exact_max_pool_matches_torch(k, s, hw, channels_last):
    x = torch.randn(3, 10, *hw)
    x[0, 0, 0, 0] = float("nan")
    if channels_last:
        x = torch.nn.functional.prelu(x, torch.rand(10))       # a layer's own output: channels-last kept
        x = x.contiguous(memory_format=torch.channels_last)
    want = torch.nn.MaxPool2d(k, s, ceil_mode=True)(x)
    got = ExactMaxPool2d(k, s)(x)
    assert got.shape == want.shape and got.stride() == want.stride()
    assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))


def test_detector_default_equals_library_path_and_landmarks_equal_dlib(real_frames, monkeypatch):
    import dlib

    from moee_bench.bench.core.faces import _fr_models_dir

    det = faces.FaceDetector()
    faces.DETECTIONS.clear()
    monkeypatch.setattr(faces, "DETECT_PATH", "library")
    lib = det.detect(real_frames)
    faces.DETECTIONS.clear()
    monkeypatch.setattr(faces, "DETECT_PATH", "fast")
    fast = det.detect(real_frames)
    assert len(fast) == len(lib) and fast[-1] is None
    for a, b in zip(fast, lib):                 # the library path detects the whole batch in one call: the same
        assert (a is None) == (b is None)       # faces, within the library's own batch-size rounding
        if a is not None:
            np.testing.assert_array_equal(np.round(a.box), np.round(b.box))          # the box dlib is given
            np.testing.assert_allclose(a.box, b.box, rtol=0, atol=1e-3)
            np.testing.assert_allclose(a.landmarks5, b.landmarks5, rtol=0, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-6)

    predictor = dlib.shape_predictor(str(_fr_models_dir() / "shape_predictor_68_face_landmarks.dat"))
    lm = faces.Landmarks68()
    faces.LANDMARKS.clear()
    for frame, face in zip(real_frames, fast):
        if face is None:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        shape = predictor(np.ascontiguousarray(frame), dlib.rectangle(x1, y1, x2, y2))
        want = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        np.testing.assert_array_equal(lm(frame, face.box), want)
        got = lm(frame, face.box)                              # second time: from the memo, same values
        np.testing.assert_array_equal(got, want)
        got[:] = 0                                             # the caller's copy: the memo keeps its own
        np.testing.assert_array_equal(lm(frame, face.box), want)
    n = len(fast) - 1
    assert (faces.LANDMARKS.misses, faces.LANDMARKS.hits) == (n, 2 * n)


def test_akd_score_identical_to_library_path(sample_manifest, tmp_path, monkeypatch):
    """``score --metrics akd`` prints the same AKD (and skipped-frame count) through the fast detector as through
    facenet-pytorch's own ``MTCNN.detect``, on real sample clips (8 frames each, re-encoded)."""
    m = load_manifest(sample_manifest)
    pairs = {"astronaut": ("astronaut_anger", "astronaut_neutral"), "hopper": ("hopper_happiness", "hopper_neutral")}
    by_id = {c.clip_id: c for c in m.clips}
    for ident, (p, g) in pairs.items():
        for sub, cid in (("pred", p), ("gt", g)):
            fr = media.read_frames(m.media_path(by_id[cid], "video"))[:8]
            media.write_video(tmp_path / sub / f"{ident}.mp4", [fr], 25.0)

    def score(path: str) -> dict:
        monkeypatch.setattr(faces, "DETECT_PATH", path)
        faces.DETECTIONS.clear()
        faces.LANDMARKS.clear()
        out = tmp_path / f"{path}.json"
        rc = main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--metrics", "akd",
                   "--no-cache", "--json", str(out)])
        assert rc == exitcodes.OK
        return json.loads(out.read_text())

    lib, fast = score("library"), score("fast")
    assert lib["metrics"]["akd"] == fast["metrics"]["akd"] and 0 < fast["metrics"]["akd"] < 50
    assert lib["clips"] == fast["clips"] and len(fast["clips"]) == 2


@pytest.fixture(scope="module")
def pair_folders(sample_manifest: Path, tmp_path_factory) -> tuple[Path, Path]:
    """pred/gt folders of two real sample pairs (same identity, other emotion), 8 frames each, re-encoded."""
    return write_sample_pairs(sample_manifest, tmp_path_factory.mktemp("pairs"), 8)


def _score(folders, out: Path, metrics: str, *extra: str) -> dict:
    faces.DETECTIONS.clear()
    faces.LANDMARKS.clear()
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", metrics, "--no-cache",
               "--json", str(out), *extra])
    assert rc == exitcodes.OK
    return json.loads(out.read_text())


def test_one_face_pass_shared_by_akd_flmd_dynamics(pair_folders, tmp_path):
    """AKD, FLMD and dynamics on the same frames: MTCNN and dlib run once per frame (the memos' counters), and
    each metric's numbers are those it gives when run alone."""
    together = _score(pair_folders, tmp_path / "all.json", "akd,flmd,dynamics")
    n = 2 * 2 * 8                                                  # clips x sides x frames, all distinct
    assert (faces.DETECTIONS.misses, faces.LANDMARKS.misses) == (n, n)
    assert faces.DETECTIONS.hits == 2 * n and faces.LANDMARKS.hits == 2 * n      # FLMD and dynamics: memo hits
    for name in ("akd", "flmd", "dynamics"):
        alone = _score(pair_folders, tmp_path / f"{name}.json", name)
        assert faces.LANDMARKS.hits == 0
        keys = [k for k in alone["metrics"] if k in together["metrics"]]
        assert keys and all(alone["metrics"][k] == together["metrics"][k] for k in keys), name


def test_akd_detect_every_is_declared_and_reuses_the_box(pair_folders, sample_manifest, tmp_path, monkeypatch):
    """akd_detect_every=3: MTCNN on landmark frames 0, 3, 6 of each side only; every frame's landmarks are dlib's
    inside the box facenet-pytorch's own detect finds on the last key frame; the protocol names it."""
    import dlib

    from moee_bench.bench.core.faces import _fr_models_dir

    monkeypatch.setattr(faces, "DETECT_PATH", "library")
    fast = _score(pair_folders, tmp_path / "k3.json", "akd", "--param", "akd_detect_every=3")
    assert faces.DETECTIONS.misses == 2 * 2 * 3                   # clips x sides x key frames (0, 3, 6 of 8)
    assert fast["protocol"]["metrics"]["akd"]["detect_every"] == 3
    exact = _score(pair_folders, tmp_path / "k1.json", "akd")
    assert exact["protocol"]["metrics"]["akd"]["detect_every"] == 1
    assert fast["metrics"]["akd"] != exact["metrics"]["akd"]      # values change: a declared mode, not exact

    from facenet_pytorch import MTCNN

    ref = MTCNN(keep_all=True, min_face_size=20, post_process=False)
    predictor = dlib.shape_predictor(str(_fr_models_dir() / "shape_predictor_68_face_landmarks.dat"))

    def dlib_in_key_box(frames: np.ndarray) -> np.ndarray:
        out = []
        for i, f in enumerate(frames):
            if i % 3 == 0:
                b, p = ref.detect(frames[i][None])[:2]
                b, p = np.asarray(b[0], np.float64), np.asarray(p[0], np.float64)
                b = b[p >= 0.9]
                box = b[np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))]
            s = predictor(np.ascontiguousarray(f), dlib.rectangle(*(int(round(v)) for v in box)))
            out.append([[q.x, q.y] for q in s.parts()])
        return np.asarray(out, np.float64)

    per_clip = []
    for name in ("astronaut", "hopper"):
        kp = [dlib_in_key_box(media.read_frames(d / f"{name}.mp4")) for d in pair_folders]
        per_clip.append(np.abs(kp[1] - kp[0]).reshape(len(kp[0]), -1).mean(axis=1))
    assert fast["metrics"]["akd"] == pytest.approx(float(np.concatenate(per_clip).mean()), abs=1e-12)


def test_akd_detect_every_listed_and_refused_with_fan(capsys):
    from moee_bench.metrics.motion.akd import AKD
    from moee_bench.metrics.core.registry import MetricOptions

    assert main(["metrics"]) == exitcodes.OK
    assert "akd_detect_every" in capsys.readouterr().out
    with pytest.raises(ValueError, match="akd_detect_every"):
        AKD(MetricOptions(params={"akd_landmarks": "fan", "akd_detect_every": 2}))
