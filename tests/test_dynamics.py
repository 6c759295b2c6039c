"""Landmark dynamics (THEval definitions): hand-computed cases on synthetic landmark tracks and audio,
the head-pose estimator on a projected 3D face, the verified VAD, and the metric's state and merge."""

from __future__ import annotations

import numpy as np
import pytest

from moee_bench.metrics.motion import dynamics_defs as D
from moee_bench.metrics.motion.landmarks import DLIB68, FACE_3D, head_pose


def track(n: int) -> np.ndarray:
    """``(n, 68, 2)`` zeros (a face everywhere, all points at the origin)."""
    return np.zeros((n, 68, 2))


def test_lip_dynamics_hand_computed():
    # lip points on a line x = 0..19, scaled by s = 1 then 2: every pairwise distance d_ij doubles, so
    # std over time = 0.5 d_ij and the mean over pairs = 0.5 * mean|i - j| = 0.5 * (20 + 1) / 3 = 3.5
    p = track(3)
    p[0, 48:68, 0] = np.arange(20)
    p[1, 48:68, 0] = 2 * np.arange(20)
    p[2] = np.nan                                            # a frame without a face is ignored
    assert D.lip_dynamics(p, DLIB68, (256, 256)) == pytest.approx(3.5)
    assert D.lip_dynamics(p, DLIB68, (512, 512)) == pytest.approx(1.75)   # THEval measures on 256x256 frames
    assert np.isnan(D.lip_dynamics(p[:1], DLIB68, (256, 256)))


def test_head_motion_dynamics_hand_computed():
    ang = np.zeros((4, 3))
    ang[:, 0] = [0, 1, 0, 1]          # std 0.5 -> mean std 1/6; diff [1,-1,1] var 8/9 -> mean 8/27
    ctr = np.zeros((4, 2))
    assert D.head_motion_dynamics(ang, ctr) == pytest.approx(2 / 9)        # sqrt(1/6 * 8/27)
    ctr[:, 0] = [0, 2, 0, 2]          # var 1 -> mean translation variance 0.5
    assert D.head_motion_dynamics(ang, ctr) == pytest.approx(np.sqrt(4 / 81 + 0.5))
    ang[1] = np.nan                   # frames without a pose are dropped (3 left: [0, 0, 1])
    assert D.head_motion_dynamics(ang, ctr) == pytest.approx(
        np.sqrt(np.std([0, 0, 1]) / 3 * np.var([0, 1]) / 3 + np.var([0, 0, 2]) / 2))


def test_eyebrow_dynamics_hand_computed():
    p = track(3)
    p[:, 42:48] = [100.0, 0.0]        # subject's left eye centre at x = 100, right eye at 0: scale 100
    p[:, 36:42] = [0.0, 0.0]
    p[:, 22:27, 1] = np.array([-10.0, -20.0, -10.0])[:, None]   # left brow 10, 20, 10 px above: 0.1, 0.2, 0.1
    p[:, 22:27, 0] = 100.0
    p[:, 17:22] = [0.0, -10.0]        # right brow fixed
    # left |changes| 0.1 + 0.1, right 0 + 0, over 4 transitions
    assert D.eyebrow_dynamics(p, DLIB68) == pytest.approx(0.05)


def test_speech_and_silence_frames():
    segs = [(0.0, 0.5), (1.0, 2.0)]
    sp = D.speech_frames(segs, 10, 30)
    assert np.flatnonzero(sp).tolist() == list(range(0, 6)) + list(range(10, 21))
    sil = D.silent_frames(segs, 10, 30)
    assert np.flatnonzero(sil).tolist() == [6, 7, 8, 9] + list(range(21, 30))
    # a 2-frame gap at 10 fps (0.2 s) is shorter than THEval's 0.3 s and is dropped
    assert not D.silent_frames([(0.0, 0.5), (0.8, 2.9)], 10, 30)[:8].any()


def test_silent_lip_stability_hand_computed():
    p = track(5)
    p[:, 36] = [0.0, 0.0]
    p[:, 45] = [100.0, 0.0]                        # eye distance 100
    gaps = [10.0, 10.0, 10.0, 40.0, 99.0]          # openings 0.1, 0.1, 0.1, 0.4 (+ one speech frame)
    for i, g in enumerate(gaps):
        p[i, [61, 62, 63], 1] = 0.0
        p[i, [67, 66, 65], 1] = g
    silent = np.array([True, True, True, True, False])
    # mean 0.175, |x - mean| = 0.075, 0.075, 0.075, 0.225 -> median 0.075
    assert D.silent_lip_stability(p, DLIB68, (256, 256), silent) == pytest.approx(0.075)
    assert np.isnan(D.silent_lip_stability(p, DLIB68, (256, 256), np.eye(5, dtype=bool)[0]))


def test_mouth_openness_and_lip_loudness_distance():
    p = track(1)
    p[0, [61, 62, 63], 1] = 100.0
    p[0, [67, 66, 65], 1] = 110.0
    p[0, [36, 39], 0] = [50.0, 70.0]
    p[0, [42, 45], 0] = [130.0, 150.0]
    assert D.mouth_openness(p, DLIB68)[0] == pytest.approx(10 / 80)
    o = np.array([0.0, 1.0, 2.0, 3.0])
    speech = np.ones(4, bool)
    assert D.lip_loudness_distance(o, o * 5 + 1, speech) == pytest.approx(0.0, abs=1e-8)
    assert D.lip_loudness_distance(o, o[::-1], speech) == pytest.approx(2 / 3, rel=1e-6)
    assert np.isnan(D.lip_loudness_distance(np.arange(20.0), np.arange(20.0), np.eye(20, dtype=bool)[0]))  # 5 % speech


def test_frame_rms_matches_librosa_definition():
    # 1 s of constant 0.5 at 16 kHz: 50 ms frames (800 samples), centred with 400 zeros of padding on both sides:
    # frame 0 holds 400 zeros + 400 samples -> 0.5 * sqrt(0.5); frames 1..19 -> 0.5; frame 20 -> 0.5 * sqrt(0.5)
    x = np.full(16000, 0.5)
    r = D.frame_rms(x, 16000, 25.0, 25)
    half = 0.5 * np.sqrt(0.5)
    assert r[0] == pytest.approx(half)
    assert r[1] == pytest.approx(half + 0.8 * (0.5 - half))        # t = 0.04 s between frame times 0 and 0.05
    assert r[10] == pytest.approx(0.5)
    assert D.frame_rms(x, 16000, 25.0, 30)[-1] == pytest.approx(half)  # t = 1.16 s beyond the last frame (1.0 s)


def test_closeness_is_theval_eq12():
    assert D.closeness(1.2, 1.0) == pytest.approx(0.8)
    assert D.closeness(0.5, -1.0) == pytest.approx(1 - 1.5)
    assert np.isnan(D.closeness(1.0, 0.0))


def test_head_pose_recovers_a_known_rotation():
    import cv2

    size = (480, 640)
    cam = np.array([[640, 0, 320], [0, 640, 240], [0, 0, 1]], np.float64)
    pts = np.full((3, 68, 2), np.nan)
    for i, yaw in enumerate([0.0, 10.0, -15.0]):
        rvec = cv2.Rodrigues(_rot_y(yaw))[0]
        img, _ = cv2.projectPoints(FACE_3D, rvec, np.array([0.0, 0.0, 2500.0]), cam, np.zeros(4))
        pts[i, list(DLIB68.pose)] = img.reshape(-1, 2)
    ang = head_pose(pts, DLIB68, size)
    assert np.allclose(ang[:, 1], [0.0, 10.0, -15.0], atol=0.5)
    assert np.allclose(ang[:, [0, 2]], 0.0, atol=0.5)


def _rot_y(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


def test_vad_is_the_verified_package_model_and_finds_speech():
    from silero_vad import get_speech_timestamps, load_silero_vad

    from moee_bench.bench.suite.sample.speech import synthesize
    from moee_bench.metrics.motion.vad import SileroVAD

    speech = np.asarray(synthesize("Hello there, this is a short test of speech detection."), np.float32)
    x = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(16000, np.float32)])
    segs = SileroVAD().segments(x)
    assert segs and segs[0][0] >= 0.8 and segs[-1][1] <= 1.0 + len(speech) / 16000 + 0.2
    import torch

    ref = get_speech_timestamps(torch.from_numpy(x), load_silero_vad(), return_seconds=True)
    assert segs == [(t["start"], t["end"]) for t in ref]


def test_vad_refuses_an_unverified_torchscript(monkeypatch):
    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.metrics.emotion import classifiers as emotion_classifiers
    from moee_bench.metrics.motion import vad
    real = emotion_classifiers.resolve_package_weights

    def tampered(name, options=None):
        r = real(name, options)
        return type(r)(r.spec, r.path, "0" * 64, False)

    monkeypatch.setattr(emotion_classifiers, "resolve_package_weights", tampered)
    with pytest.raises(WeightsError, match="only loaded when verified"):
        vad.resolve_vad_weights(WeightsOptions(None, True))


def _synthetic_feats(scale: float, with_gt: bool = True) -> dict:
    """Features of a 60-frame clip whose lips breathe with amplitude ``scale`` (GT: amplitude 1)."""
    n = 60

    def side(a: float):
        p = track(n)
        p[:, 36:42] = [60.0, 100.0]
        p[:, 42:48] = [140.0, 100.0]
        p[:, 36, 0], p[:, 45, 0] = 50.0, 150.0
        p[:, 17:22] = [60.0, 80.0]
        p[:, 22:27] = [140.0, 80.0]
        p[:, 22:27, 1] -= (a * 3 * np.sin(np.arange(n) / 4))[:, None]
        w = 1 + a * 0.5 * (1 + np.sin(np.arange(n) / 3))
        p[:, 48:68, 0] = 100 + np.arange(20)[None] * w[:, None]
        p[:, [61, 62, 63], 1] = 150.0
        p[:, [67, 66, 65], 1] = (150 + 10 * w)[:, None]
        pose = np.zeros((n, 3))
        pose[:, 1] = a * np.sin(np.arange(n) / 5)
        ctr = np.tile([100.0, 100.0], (n, 1))
        return p.astype(np.float32), ctr.astype(np.float32), pose.astype(np.float32)

    f = {"size": np.array([256, 256]), "fps": np.array(25.0),
         "speech_segments": np.array([[0.0, 1.6]]), "rms": np.abs(np.sin(np.arange(n) / 3))}
    f["pred_points"], f["pred_centres"], f["pred_pose"] = side(scale)
    if with_gt:
        f["gt_points"], f["gt_centres"], f["gt_pose"] = side(1.0)
    return f


def _bare_metric():
    from moee_bench.metrics.motion.dynamics import Dynamics

    m = Dynamics.__new__(Dynamics)
    m.backend = type("B", (), {"scheme": DLIB68})()
    m.config = lambda: {"bare": True}       # what merge() checks two instances agree on
    m.reset()
    return m


def test_dynamics_metric_closeness_and_exact_merge():
    from moee_bench.metrics.motion.dynamics import THEVAL_KEYS

    feats = [_synthetic_feats(1.0), _synthetic_feats(2.0), _synthetic_feats(0.5, with_gt=False)]
    one = _bare_metric()
    vals = [one.update(None, f) for f in feats]
    assert vals[0]["lip_dynamics"] == pytest.approx(vals[0]["lip_dynamics_gt"])   # identical sides
    assert "lip_dynamics_gt" not in vals[2] and "lip_dynamics" in vals[2]
    assert "silent_lip_mad" in vals[0]              # frames 41..59 are silent (>= 0.3 s)
    a, b = _bare_metric(), _bare_metric()
    a.update(None, feats[0])
    b.update(None, feats[1])
    b.update(None, feats[2])
    a.merge(b)
    out, ref = a.compute(), one.compute()
    for k in THEVAL_KEYS:
        assert out[f"{k}_closeness"] == ref[f"{k}_closeness"]
        # closeness over the paired clips only (the third clip has no GT)
        pm = (vals[0][k] + vals[1][k]) / 2
        gm = (vals[0][f"{k}_gt"] + vals[1][f"{k}_gt"]) / 2
        assert ref[f"{k}_closeness"] == pytest.approx(1 - abs(pm - gm) / abs(gm))
        assert ref[k] == pytest.approx((vals[0][k] + vals[1][k] + vals[2][k]) / 3)
    assert ref["dynamics_score"] == pytest.approx(np.mean([ref[f"{k}_closeness"] for k in THEVAL_KEYS]))
    assert ref["lip_dynamics_n"] == 3 and ref["lip_dynamics_n_paired"] == 2


@pytest.mark.slow
def test_score_path_on_a_real_face_with_speech(tmp_path):
    """The user path: video + driving audio through the evaluator, real MTCNN + dlib + Silero VAD weights.
    GT = the same video, so every defined closeness is exactly 1 and the per-clip values match their GT twins."""
    import cv2
    import skimage.data

    from moee_bench.bench.core import media
    from moee_bench.bench.suite.sample.speech import synthesize
    from moee_bench.metrics.core.evaluate import ClipInput, evaluate
    from moee_bench.metrics.core.registry import build_metrics

    img = skimage.data.astronaut()[::2, ::2]
    frames = []
    for t in range(40):
        z = 1 + 0.06 * np.sin(t / 3)
        m = cv2.getRotationMatrix2D((128, 128), 3 * np.sin(t / 5), z)
        frames.append(cv2.warpAffine(img, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    speech = np.asarray(synthesize("Hello, a short test."), np.float32)[:16000]
    audio = np.concatenate([speech, np.zeros(16000 * 2, np.float32)])[: 16000 * 40 // 25]
    vid = media.write_video(tmp_path / "v.mp4", [np.stack(frames)], 25, audio=audio)
    (m,), unavailable = build_metrics(["dynamics"])
    assert not unavailable
    res = evaluate([ClipInput("c", vid, vid)], [m], progress=False)
    out = res.clips[0]
    assert out.status["dynamics"] == "ok", out.messages
    for k in ("lip_dynamics", "head_dynamics", "eyebrow_dynamics", "lip_loudness_dist"):
        assert np.isfinite(out.values[k]) and out.values[k] == out.values[f"{k}_gt"]
    assert out.values["head_dynamics"] > 0
    assert res.metrics["lip_dynamics_closeness"] == 1.0
    assert all(v == 1.0 for k, v in res.metrics.items() if k.endswith("_closeness") and v is not None)
    proto = res.protocol["metrics"]["dynamics"]
    assert proto["vad"]["verified"] and "dlib" in proto["landmarks"]
