"""KID / KVD: the estimator against clean-fid's explicit formula and a Monte-Carlo check of its standard
error; through the evaluator, features come from FID's single extraction and are read back from the cache."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

from moee_bench.metrics.visual.kid import kernel_distance, mmd2_unbiased, polynomial_kernel


def cleanfid_kernel_distance(feats1, feats2, subsets):
    """clean-fid's ``kernel_distance`` (cleanfid/fid.py) restated, on given subset index pairs:
    per subset t += (sum offdiag of K_xx + K_yy) / (m - 1) - 2 sum K_xy / m; kid = t / n_subsets / m."""
    n = feats1.shape[1]
    t = 0.0
    for ix, iy in subsets:
        x, y = feats2[ix], feats1[iy]
        m = len(ix)
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return t / len(subsets) / m


def test_kid_matches_cleanfid_formula_on_random_features():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 64))
    fake = rng.normal(0.3, 1.1, size=(250, 64))
    ours = kernel_distance(real, fake, n_subsets=7, subset_size=100, seed=3)
    # the same subsets: our draw order is fake then real for each subset, from default_rng(seed)
    g = np.random.default_rng(3)
    subsets = []
    for _ in range(7):
        ix = g.choice(250, 100, replace=False)
        iy = g.choice(300, 100, replace=False)
        subsets.append((ix, iy))
    ref = cleanfid_kernel_distance(real, fake, subsets)
    assert ours["mean"] == pytest.approx(ref, rel=1e-12)
    assert ours["m"] == 100
    # full sets (m = N on both sides): every subset is the whole sample, std 0
    full = kernel_distance(real[:250], fake, n_subsets=3, subset_size=1000)
    assert full["std"] == pytest.approx(0.0, abs=1e-15)
    assert full["mean"] == pytest.approx(cleanfid_kernel_distance(real[:250], fake, [(np.arange(250), np.arange(250))]),
                                         rel=1e-12)


def test_mmd2_is_unbiased_and_its_variance_estimate_matches_monte_carlo():
    rng = np.random.default_rng(0)
    m, d, reps = 40, 6, 300
    est, var = [], []
    for _ in range(reps):
        x = rng.normal(size=(m, d))
        y = rng.normal(0.4, 1.0, size=(m, d))
        e, v = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
        est.append(e)
        var.append(v)
    est = np.array(est)
    # Monte-Carlo variance of the estimator vs the mean of its variance estimates (within sampling error)
    assert np.mean(var) == pytest.approx(est.var(ddof=1), rel=0.25)
    # unbiased: with equal distributions the estimates average to ~0 (no positive bias)
    null = [mmd2_unbiased(*(lambda x, y: (polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y)))(
        rng.normal(size=(m, d)), rng.normal(size=(m, d))))[0] for _ in range(200)]
    assert abs(np.mean(null)) < 3 * np.std(null) / np.sqrt(len(null))


def _fake_inception(monkeypatch, calls: list):
    """FID without a network: 'activations' are the frames at 32x32x2 (2048 values), counted per call."""
    from moee_bench.bench.core.weights import ResolvedWeights, get_spec
    from moee_bench.metrics.visual import fid

    def feats(model, frames, device="cpu", batch=50):
        calls.append(len(frames))
        small = frames[:, ::2, ::2, :2].astype(np.float32) / 255.0
        return small.reshape(len(frames), -1)[:, :2048]

    spec = get_spec("fid_inception")
    monkeypatch.setattr(fid, "build_inception", lambda *a, **k: (None, ResolvedWeights(spec, Path("x"), "0" * 64, True)))
    monkeypatch.setattr(fid, "inception_features", feats)
    monkeypatch.setattr(fid, "frechet_distance", lambda *a, **k: 0.0)     # FID's own value is tested elsewhere


@pytest.fixture
def clip_pairs(tmp_path):
    from moee_bench.bench.core import media
    from moee_bench.metrics.core.evaluate import ClipInput

    rng = np.random.default_rng(0)
    clips = []
    for i in range(3):
        g = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
        p = np.clip(g.astype(int) + rng.integers(-40, 40, g.shape), 0, 255).astype(np.uint8)
        clips.append(ClipInput(f"c{i}", media.write_video(tmp_path / "p" / f"c{i}.mp4", [p], 25),
                               media.write_video(tmp_path / "g" / f"c{i}.mp4", [g], 25)))
    return clips


def test_kid_reads_fid_features_from_the_cache_with_one_extraction(monkeypatch, tmp_path, clip_pairs):
    from moee_bench.bench.suite.store import FeatureStore
    from moee_bench.metrics.core.evaluate import evaluate
    from moee_bench.metrics.visual.fid import FID
    from moee_bench.metrics.visual.kid import KID, kernel_from_features
    from moee_bench.metrics.core.registry import MetricOptions

    calls: list = []
    _fake_inception(monkeypatch, calls)
    opts = MetricOptions(params={"kid_subsets": 5})
    cache = FeatureStore(tmp_path / "cache")
    fid_m, kid_m = FID(opts), KID(opts)
    with pytest.warns(UserWarning):
        res = evaluate(clip_pairs, [fid_m, kid_m], cache=cache, progress=False)
    assert sum(calls) == 2 * 18                      # one Inception pass per side for FID and KID together
    keys = [c.feature_keys["kid"] for c in res.clips]
    assert keys == [c.feature_keys["fid"] for c in res.clips]
    # per clip, the FID parts (pred, GT) read back and paired; clips in the metric's canonical order (sorted keys)
    order = sorted(keys, key=lambda ks: json.dumps(ks, sort_keys=True))
    feats = [FID.combine({part: cache.get(k) for part, k in ks.items()}) for ks in order]
    ref = kernel_from_features(feats, "kid", n_subsets=5)
    assert res.metrics["kid"] == ref["kid"] and res.metrics["kid_se"] == ref["kid_se"]
    assert res.metrics["kid_n_real"] == 18
    # the state is the keys only, and merging two halves (any order) gives the same value
    a, b = KID(opts), KID(opts)
    evaluate(clip_pairs[2:], [a], cache=cache, progress=False)
    evaluate(clip_pairs[:2], [b], cache=cache, progress=False)
    assert sum(calls) == 36                          # everything was cached
    a.merge(b)
    assert a.state_dict() == {"feature_keys": keys[2:] + keys[:2]}
    assert a.compute()["kid"] == res.metrics["kid"]
    with pytest.raises(ValueError, match="feature cache"):
        evaluate(clip_pairs[:1], [KID(opts)], progress=False)
