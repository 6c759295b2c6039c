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
from moee_bench.bench.core import exitcodes, faces, media
from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.core.mtcnn_fast import ExactMaxPool2d, FastMTCNN


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
    ref, (boxes, probs, points) = _library(real_frames)
    with faces.torch_threads(1):
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


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2)])
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
    for a, b in zip(fast, lib):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_array_equal(a.landmarks5, b.landmarks5)
            assert a.score == b.score

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
