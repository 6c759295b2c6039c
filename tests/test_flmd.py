"""FLMD (FVMD's motion histograms on face landmarks): hand-computed histograms of known tracks, the window
rule, and the distance (0 for identical motion, growing with a motion difference)."""

from __future__ import annotations

import numpy as np
import pytest

from moee_bench.metrics.motion.flmd import DIM, clip_windows, window_features
from moee_bench.metrics.motion.landmarks import DLIB68


def test_constant_velocity_histogram_hand_computed():
    # every point moves 1 px right per frame: v_0 = 0, v_t = (1, 0); atan2(1, 0) = pi/2 -> bin (pi/2 + pi) // (pi/4) = 6;
    # weight ceil(log2(1 + 1)) / 8 = 1/8; acceleration is 0 everywhere (weight 0)
    p = np.zeros((16, 68, 2))
    p[:, :, 0] = np.arange(16)[:, None]
    f = window_features(p)
    assert f.shape == (DIM,) == (320,)
    vel = f[:160].reshape(4, 5, 8)
    sizes = [len(v) for v in DLIB68.regions.values()]                # jaw 17, brows 10, nose 9, eyes 12, mouth 20
    expect = np.zeros((4, 5, 8))
    for r, n in enumerate(sizes):
        expect[0, r, 6] = n * 3 / 8                                  # frames 1..3 of the first cube
        expect[1:, r, 6] = n * 4 / 8
    assert np.allclose(vel, expect)
    assert np.allclose(f[160:], 0.0)


def test_log_magnitude_quantisation_and_acceleration():
    # the mouth speeds up: velocity 3 px/frame downwards from frame 8 (atan2(0, 3) = 0 -> bin 4, weight ceil(log2 4)/8 = 2/8),
    # one acceleration spike of 3 px/frame^2 at frame 8 (same bin and weight)
    p = np.zeros((16, 68, 2))
    t = np.arange(16)
    p[:, 48:68, 1] = (3 * np.clip(t - 7, 0, None))[:, None]
    f = window_features(p)
    vel, acc = f[:160].reshape(4, 5, 8), f[160:].reshape(4, 5, 8)
    mouth = 4
    assert vel[2, mouth, 4] == pytest.approx(20 * 4 * 2 / 8) and vel[3, mouth, 4] == pytest.approx(20 * 4 * 2 / 8)
    assert vel[:2].sum() == 0 and vel[:, :mouth].sum() == 0
    assert acc[2, mouth, 4] == pytest.approx(20 * 2 / 8) and acc.sum() == pytest.approx(20 * 2 / 8)


def test_clip_windows_skip_missing_faces_and_scale_the_face():
    p = np.zeros((40, 68, 2))
    p[:, 45, 0] = 128.0                                            # eye corners 128 px apart -> scale 0.5
    p[:, :, 0] += 2 * np.arange(40)[:, None]                       # 2 px/frame at this size = 1 px at 64 px
    p[20] = np.nan                                                 # breaks the second window
    feats, skipped = clip_windows(p)
    assert skipped == 1 and len(feats) == 1                        # 2 complete windows of 16 in 40 frames, one lost
    ref = np.zeros((16, 68, 2))
    ref[:, :, 0] = np.arange(16)[:, None]
    ref[:, 45, 0] += 64.0
    assert np.allclose(feats[0], window_features(ref))


def test_flmd_is_zero_for_identical_motion_and_grows_with_a_difference():
    from moee_bench.metrics.motion.flmd import FLMD

    rng = np.random.default_rng(0)

    def windows(amp: float, n: int) -> np.ndarray:
        out = []
        for _ in range(n):
            p = rng.normal(0, 1, (16, 68, 2)).cumsum(0) * amp
            out.append(window_features(p))
        return np.stack(out)

    m = FLMD.__new__(FLMD)
    m.reset()
    same = windows(1.0, 30)
    m.update(None, {"pred": same, "gt": same, "skipped": np.array([0, 0])})
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert m.compute()["flmd"] == pytest.approx(0.0, abs=1e-4)   # sqrtm of a rank-deficient product
    near, far = FLMD.__new__(FLMD), FLMD.__new__(FLMD)
    gt = windows(1.0, 30)
    for mm, amp in ((near, 1.0), (far, 6.0)):
        mm.reset()
        mm.update(None, {"pred": windows(amp, 30), "gt": gt, "skipped": np.array([0, 0])})
    with pytest.warns(UserWarning):
        assert far.compute()["flmd"] > 2 * near.compute()["flmd"]
