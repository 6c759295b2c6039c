"""Speed work (#21): the faster exact path keeps the reference numbers, the declared bf16 mode is named in
every result and keyed apart from fp32, and the profiler's lines add up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.core import media
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.evaluate import ClipInput, evaluate
from moee_bench.metrics.core.registry import MetricOptions


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from moee_bench.bench.perf.visual import random_weights

    d = tmp_path_factory.mktemp("speedw")
    random_weights(d)
    return d


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[ClipInput]:
    from moee_bench.bench.perf.visual import make_clips

    return make_clips(tmp_path_factory.mktemp("speedv"), 2, 4, size=64)


def _opts(wdir: Path, precision: str = "fp32") -> MetricOptions:
    return MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True), precision=precision)


def test_folded_channels_last_inception_matches_pytorch_fid_model(weights):
    """The inference-prepared network (BatchNorm folded, channels_last) gives pytorch-fid's own model's features."""
    from unittest import mock

    import pytorch_fid.inception as pfi

    from moee_bench.metrics.visual.fid import build_inception, inception_features

    ours, _ = build_inception(WeightsOptions(str(weights), allow_unverified=True))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())
    sd = torch.load(weights / "pt_inception-2015-12-05-6726825d.pth", weights_only=True)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: sd):
        ref = pfi.InceptionV3([3]).eval()
    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        want = ref(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)[0].reshape(3, -1).numpy()
    got = inception_features(ours, frames)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_fused_conv_relu_inception_gives_the_unfused_features_bit_for_bit(weights, monkeypatch):
    """Conv + ReLU as one oneDNN call (#30 point 2) and the CPU batch of 8 move no number: fp32 features equal the
    unfused folded model's (the path before the change) in a batch of 20, bf16 features equal that model's under
    autocast at any batch; the fused network's features do not depend on the batch (the unfused fp32 convolution
    takes another oneDNN kernel under 16 frames: last float32 bit); the bf16 network holds bf16 weights."""
    from moee_bench.metrics.core import fusion
    from moee_bench.metrics.core.precision import autocast
    from moee_bench.metrics.visual import fid

    if not fusion.available():
        pytest.skip("torch has no mkldnn::_convolution_pointwise here")
    w = WeightsOptions(str(weights), allow_unverified=True)
    frames = np.random.default_rng(1).integers(0, 255, (20, 40, 40, 3), dtype=np.uint8)
    fused = {p: fid.build_inception(w, "cpu", p)[0] for p in ("fp32", "bf16")}
    with monkeypatch.context() as m:
        m.setattr(fusion, "available", lambda device="cpu": False)
        plain, _ = fid.build_inception(w)
    kinds = {type(m).__name__ for m in fused["fp32"].modules()}
    assert "ConvReLU" in kinds and "ConvReLU" not in {type(m).__name__ for m in plain.modules()}
    assert {p.dtype for p in fused["bf16"].parameters()} == {torch.bfloat16}
    want32 = fid.inception_features(plain, frames, batch=50)
    got32 = fid.inception_features(fused["fp32"], frames)
    assert np.array_equal(got32, want32)
    assert np.array_equal(fid.inception_features(fused["fp32"], frames[:11], batch=1), got32[:11])
    with autocast("bf16"):
        want16 = fid.inception_features(plain, frames, batch=50)
        got16 = fid.inception_features(fused["bf16"], frames)
        ac32 = fid.inception_features(fused["fp32"], frames)   # an enclosing autocast still runs fp32 weights in bf16
    assert np.array_equal(got16, want16) and np.array_equal(ac32, want16) and not np.array_equal(want16, want32)
    assert np.array_equal(fid.inception_features(fused["bf16"], frames[:11], batch=3), got16[:11])


def test_precision_is_in_config_and_every_part_cache_key(weights):
    """bf16 features never serve an fp32 score (nor the reverse): precision is in each part's cache key,
    the GT part included (GT features are shared across methods and runs)."""
    from moee_bench.metrics.core.base import ClipContext
    from moee_bench.metrics.visual.fid import FID
    from moee_bench.metrics.visual.lpips import LPIPS

    ctx = ClipContext(ClipInput("c", Path("p.mp4"), Path("g.mp4")), 25.0, None,
                      inputs={"pred": "p" * 16, "gt": "g" * 16})
    for cls in (FID, LPIPS):
        a, b = cls(_opts(weights)), cls(_opts(weights, "bf16"))
        assert a.config()["precision"] == "fp32" and b.config()["precision"] == "bf16"
        assert a.feature_id() != b.feature_id()
        parts = list(a.feature_parts())
        assert parts and all(a.cache_key(p, ctx) != b.cache_key(p, ctx) for p in parts)
        with pytest.raises(ValueError):
            a.merge(b)
    with pytest.raises(ValueError, match="precision"):
        MetricOptions(precision="fp16")


def test_bf16_mode_is_close_to_fp32_and_named(clips, weights):
    from moee_bench.metrics.visual.fid import build_inception, inception_features
    from moee_bench.metrics.visual.lpips import LPIPS
    from moee_bench.metrics.core.precision import autocast

    res = {p: evaluate(clips, [LPIPS(_opts(weights, p))], progress=False) for p in ("fp32", "bf16")}
    for p, r in res.items():
        assert r.protocol["metrics"]["lpips"]["precision"] == p
    f32, b16 = res["fp32"].metrics["lpips"], res["bf16"].metrics["lpips"]
    assert f32 != b16 and b16 == pytest.approx(f32, rel=0.05)       # bf16 really ran, and stays close
    net, _ = build_inception(WeightsOptions(str(weights), allow_unverified=True))
    frames = media.read_frames(clips[0].gt)
    a = inception_features(net, frames)
    with autocast("bf16"):
        b = inception_features(net, frames)
    assert a.dtype == b.dtype == np.float32 and not np.array_equal(a, b)
    assert np.abs(a - b).max() <= 0.05 * np.abs(a).max()


def test_syncnet_bf16_distances_close_to_fp32():
    from syncnet_python.SyncNetModel import S

    from moee_bench.metrics.sync import syncnet_core as core

    torch.manual_seed(0)
    sd = S().state_dict()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 224, 224, 3), dtype=np.uint8)
    audio = (rng.standard_normal(12 * 640) * 3000).astype(np.int16)
    d32 = core.SyncNetScorer.from_state_dict(sd).distances(frames, audio)
    d16 = core.SyncNetScorer.from_state_dict(sd, precision="bf16").distances(frames, audio)
    assert d16.dtype == torch.float32 and not torch.equal(d16, d32)
    assert torch.allclose(d16, d32, rtol=0.05, atol=0.05 * float(d32.abs().max()))


def test_score_names_the_precision_in_its_json(clips, weights, tmp_path):
    from moee_bench.bench.cli.app import main

    out = tmp_path / "s.json"
    pred = clips[0].pred.parent
    rc = main(["score", "--pred", str(pred), "--gt", str(clips[0].gt.parent), "--metrics", "psnr,lpips",
               "--json", str(out), "--weights-dir", str(weights), "--allow-unverified-weights", "--precision", "bf16"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["protocol"]["precision"] == "bf16"
    assert res["protocol"]["metrics"]["lpips"]["precision"] == "bf16"
    assert res["metrics"]["lpips"] is not None


def test_lines_time_exclusively_and_restore():
    import types

    from moee_bench.bench.perf.lines import Lines

    now = [0.0]
    ns = types.SimpleNamespace()

    def inner():
        now[0] += 5.0

    def outer():
        now[0] += 2.0
        ns.inner()
        now[0] += 1.0

    def gen():
        for i in range(3):
            now[0] += 0.5
            yield i
            now[0] += 100.0             # runs inside the following next(): the generator's time

    ns.inner, ns.outer, ns.gen = inner, outer, gen
    with Lines(clock=lambda: now[0]) as lines:
        lines.wrap(ns, "inner", "inner")
        lines.wrap(ns, "outer", "outer")
        lines.wrap(ns, "gen", "gen")
        ns.outer()
        for _ in ns.gen():
            now[0] += 7.0               # the consumer's time: not counted
    assert ns.inner is inner and ns.outer is outer and ns.gen is gen
    assert lines.seconds == {"inner": 5.0, "outer": 3.0, "gen": 301.5}


def test_drift_networks_get_their_batchnorm_statistics_from_the_clips():
    """bench drift's random networks normalise the real clips' activations (else random Inception/I3D
    features collapse and FID/FVD drift means nothing): after calibration each BN output has mean 0, var 1."""
    from moee_bench.bench.perf.drift import calibrate_bn

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, affine=False))
    x = torch.rand(8, 3, 16, 16) * 5 + 3
    calibrate_bn(net, x)
    assert not net.training
    with torch.no_grad():
        y = net(x)
    assert y.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=2e-3)


def test_run_in_bf16_is_a_separate_run_named_in_meta_and_report(weights, tmp_path):
    from moee_bench.bench.cli.app import main
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest
    from moee_bench.bench.suite.store import ResultStore

    rng = np.random.default_rng(0)
    recs = []
    for i in range(2):
        audio = (0.1 * rng.standard_normal(6 * 640)).astype(np.float32)
        media.write_video(tmp_path / "ds" / f"c{i}.mp4", [rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)], 25,
                          audio=audio)
        recs.append(ClipRecord(f"c{i}", f"id{i}", f"c{i}.mp4", parse_emotion("happy"), split="test"))
    m = Manifest("tiny", tmp_path / "ds", recs).save(tmp_path / "ds" / "manifest.json")
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{m}"\nsplit = "test"\nmetrics = ["lpips"]\nseed = 0\n'
                     '[[methods]]\nname = "static"\n')
    args = ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--weights-dir", str(weights),
            "--allow-unverified-weights"]
    assert main(args) == 0
    assert main(args + ["--precision", "bf16"]) == 0             # the report shows the latest run
    with ResultStore(tmp_path / "out" / "store") as st:
        runs = {r["run_id"]: r for r in st.runs()}
        agg = {rid: st.aggregates(rid).set_index(["method", "key"])["value"][("static", "lpips")] for rid in runs}
    (bf,) = [rid for rid in runs if rid.endswith("-bf16")]
    (fp,) = [rid for rid in runs if rid != bf]
    assert runs[bf]["meta"]["precision"] == "bf16" and runs[fp]["meta"]["precision"] == "fp32"
    assert runs[bf]["meta"]["protocol"]["lpips"]["precision"] == "bf16"
    assert agg[bf] != agg[fp] and agg[bf] == pytest.approx(agg[fp], rel=0.05)   # not served from fp32's cache
    assert "feature networks bf16" in (tmp_path / "out" / "report" / "LEADERBOARD.md").read_text()
