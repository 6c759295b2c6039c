"""Parity of the visual metrics with their reference implementations on identical inputs and weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.core import media
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.evaluate import ClipInput, evaluate
from moee_bench.metrics.core.registry import MetricOptions


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[list[ClipInput], list[tuple[np.ndarray, np.ndarray]]]:
    d = tmp_path_factory.mktemp("vis")
    rng = np.random.default_rng(0)
    clips, frames = [], []
    for i in range(2):
        base = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
        noisy = np.clip(base.astype(int) + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
        p = media.write_video(d / "pred" / f"c{i}.mp4", [noisy], 25)
        g = media.write_video(d / "gt" / f"c{i}.mp4", [base], 25)
        clips.append(ClipInput(f"c{i}", p, g))
        frames.append((media.read_frames(p), media.read_frames(g)))
    return clips, frames


@pytest.fixture(scope="module")
def random_weights(reference_format_weights) -> Path:
    """Random-initialised backbones saved under the registry file names (as their reference code saves them)."""
    return reference_format_weights


def _opts(wdir: Path) -> MetricOptions:
    return MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True))


def test_ssim_matches_skimage(pairs):
    from skimage.metrics import structural_similarity

    from moee_bench.metrics.visual.ssim import SSIM

    clips, frames = pairs
    res = evaluate(clips, [SSIM()], progress=False)
    ref = np.mean([structural_similarity(g[t], p[t], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=255, channel_axis=-1) for p, g in frames for t in range(len(p))])
    assert res.metrics["ssim"] == pytest.approx(ref, abs=1e-6)


def test_lpips_matches_lpips_package(pairs, random_weights):
    import lpips

    from moee_bench.metrics.visual.lpips import LPIPS

    clips, frames = pairs
    m = LPIPS(_opts(random_weights))
    res = evaluate(clips, [m], progress=False)
    ref_model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = torch.load(random_weights / "alexnet-owt-7be5be79.pth", weights_only=True)
    for name, mod in ref_model.net.named_children():
        for idx, layer in mod.named_children():
            if hasattr(layer, "weight"):
                layer.weight.data = sd[f"features.{idx}.weight"]
                layer.bias.data = sd[f"features.{idx}.bias"]
    vals = []
    with torch.no_grad():
        for p, g in frames:
            t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
            vals.extend(ref_model(t(p), t(g)).reshape(-1).tolist())
    assert res.metrics["lpips"] == pytest.approx(float(np.mean(vals)), abs=1e-6)
    assert m.config()["verified"] is False


def test_fid_matches_pytorch_fid_and_merges(pairs, random_weights, tmp_path, monkeypatch):
    import pytorch_fid.fid_score as fs

    from moee_bench.metrics.visual.fid import FID

    clips, frames = pairs
    opts = _opts(random_weights)
    whole = FID(opts)
    with pytest.warns(UserWarning, match="rank-deficient"):
        res = evaluate(clips, [whole], progress=False)
    # reference chain: frames dumped to PNG, pytorch-fid's own loader and model from TORCH_HOME
    for side, k in (("pred", 0), ("gt", 1)):
        for ci, fr in enumerate(frames):
            for t, img in enumerate(fr[k]):
                media.write_image(tmp_path / side / f"{ci}_{t:03d}.png", img)
    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "pt_inception-2015-12-05-6726825d.pth").symlink_to(random_weights / "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ref = fs.calculate_fid_given_paths([str(tmp_path / "pred"), str(tmp_path / "gt")], batch_size=50, device="cpu",
                                       dims=2048, num_workers=0)
    assert res.metrics["fid"] == pytest.approx(ref, rel=1e-4)
    a, b = FID(opts), FID(opts)
    with pytest.warns(UserWarning):
        evaluate(clips[:1], [a], progress=False)
        evaluate(clips[1:], [b], progress=False)
        a.merge(b)
        assert a.compute()["fid"] == pytest.approx(res.metrics["fid"], rel=1e-9)


def test_frechet_matches_pytorch_fid_function():
    from pytorch_fid.fid_score import calculate_frechet_distance

    from moee_bench.metrics.core.frechet import Moments, frechet_distance

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((400, 16)), rng.standard_normal((300, 16)) + 0.3
    mx, my = Moments(16), Moments(16)
    mx.add(x[:150]); mx.add(x[150:]); my.add(y)
    a = frechet_distance(*mx.mean_cov(), *my.mean_cov())
    b = calculate_frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert a == pytest.approx(b, abs=1e-6)


def test_akd_hand_computed_and_no_face(tmp_path):
    from moee_bench.bench.core.errors import ClipError
    from moee_bench.metrics.motion.akd import AKD, akd_per_frame

    kp_gt = np.zeros((2, 68, 2))
    kp_pred = np.zeros((2, 68, 2))
    kp_pred[0, :, 0] = 2.0          # x off by 2 px -> mean over 136 coords = 1.0
    kp_pred[1] = np.nan
    per = akd_per_frame(kp_pred, kp_gt)
    assert per[0] == pytest.approx(1.0) and np.isnan(per[1])
    m = AKD()
    out = m.update(None, {"pred": kp_pred, "gt": kp_gt})
    assert out == {"akd": 1.0, "akd_skipped_frames": 1, "akd_nframes": 1}     # nframes: the frame-weighted CI
    with pytest.raises(ClipError) as ei:
        m.update(None, {"pred": np.full((3, 68, 2), np.nan), "gt": kp_gt[:1].repeat(3, 0)})
    assert ei.value.status == "no_face"


def test_akd_on_a_real_face_moves_with_the_landmarks(tmp_path):
    from skimage.data import astronaut

    from moee_bench.metrics.motion.akd import AKD

    img = np.ascontiguousarray(astronaut()[:, :, :])
    shifted = np.roll(img, 8, axis=1)       # 8 px at 512 -> 4 px at 256
    p = media.write_video(tmp_path / "p.mp4", [np.stack([shifted] * 2)], 25)
    g = media.write_video(tmp_path / "g.mp4", [np.stack([img] * 2)], 25)
    res = evaluate([ClipInput("a", p, g)], [AKD()], progress=False)
    assert 1.0 < res.metrics["akd"] < 4.0, res.metrics       # x moves 4 px, y ~0: mean |d| over x,y ~2 px
