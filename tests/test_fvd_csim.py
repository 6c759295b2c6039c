"""FVD (both variants) and CSIM: preprocessing, distance parity with independent references, merging,
statuses, and the score command, with random-initialised networks saved in the reference formats."""

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
def fvd_weights(tmp_path_factory, save_standin_i3d) -> Path:
    d = tmp_path_factory.mktemp("fvdw")
    save_standin_i3d(d / "i3d_torchscript.pt", seed=0)
    from moee_bench.metrics.visual.i3d import InceptionI3d

    torch.save(InceptionI3d().state_dict(), d / "i3d_pretrained_400.pt")
    return d


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("fvdv")
    rng = np.random.default_rng(1)
    for i in range(3):
        gt = rng.integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(int) + rng.integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
        media.write_video(d / "gt" / f"c{i}.mp4", [gt], 25)
        media.write_video(d / "pred" / f"c{i}.mp4", [pred], 25)
    media.write_video(d / "short" / "c0.mp4", [rng.integers(0, 255, (10, 48, 64, 3), dtype=np.uint8)], 25)
    return d / "pred", d / "gt"


def _pins(wdir: Path) -> dict[str, str]:
    """``--trust NAME=SHA256`` for the random files in ``wdir``: random weights are pinned, never just allowed
    (the TorchScript I3D runs code, so it loads only from a verified file)."""
    from moee_bench.bench.core.weights import get_spec, sha256_file

    names = ("i3d_styleganv", "i3d_tats", "arcface_ir_se50")
    return {n: sha256_file(wdir / get_spec(n).file) for n in names if (wdir / get_spec(n).file).is_file()}


def _opts(wdir: Path, **params) -> MetricOptions:
    return MetricOptions(weights=WeightsOptions(str(wdir), trust=_pins(wdir)), params=params)


def test_fvd_refuses_an_unverified_torchscript_file(fvd_weights):
    """--allow-unverified-weights does not reach torch.jit.load: the random I3D is refused unless pinned."""
    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.metrics.visual.fvd import FVD

    with pytest.warns(UserWarning, match="unverified"), pytest.raises(WeightsError, match="refusing to run TorchScript"):
        FVD(MetricOptions(weights=WeightsOptions(str(fvd_weights), allow_unverified=True)))
    m = FVD(_opts(fvd_weights))
    assert m.weights.trust == "pinned" and m.protocol()["verified"] is True


def _clips(pred: Path, gt: Path) -> list[ClipInput]:
    return [ClipInput(p.stem, p, gt / p.name) for p in sorted(pred.glob("*.mp4"))]


def test_preprocess_matches_an_independent_bilinear():
    """align_corners=False bilinear (half-pixel centres, edge clamp) written out in numpy."""
    from moee_bench.metrics.visual.fvd import SIZE, preprocess

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 30, 50, 3), dtype=np.uint8)
    got = preprocess(frames).numpy()                          # (3, 2, 224, 224)

    def axis_weights(n_in: int) -> np.ndarray:
        pos = np.clip((np.arange(SIZE) + 0.5) * n_in / SIZE - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        w = np.zeros((SIZE, n_in))
        w[np.arange(SIZE), lo] += 1 - (pos - lo)
        w[np.arange(SIZE), hi] += pos - lo
        return w

    wy, wx = axis_weights(30), axis_weights(50)
    want = np.einsum("yh,thwc,xw->cty x".replace(" ", ""), wy, frames.astype(np.float64), wx) * 2 / 255 - 1
    assert got.shape == (3, 2, SIZE, SIZE)
    assert np.abs(got - want).max() < 1e-4
    assert got.min() >= -1.0001 and got.max() <= 1.0001


def test_frechet_variants_match_numpy_and_torch_references():
    from moee_bench.metrics.core.frechet import Moments
    from moee_bench.metrics.visual.fvd import frechet_styleganv, frechet_tfgan

    rng = np.random.default_rng(2)
    a = rng.standard_normal((60, 400)) @ rng.standard_normal((400, 400)) * 0.05
    b = rng.standard_normal((70, 400)) * 0.3 + 0.1
    ma, mb = Moments(400), Moments(400)
    ma.add(a)
    mb.add(b)
    # StyleGAN-V: biased covariance, scipy sqrtm, real part
    import scipy.linalg

    ca, cb = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    ref = np.real(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb)))
    got = frechet_styleganv(*ma.mean_cov(unbiased=False), *mb.mean_cov(unbiased=False))
    assert abs(got - ref) <= 1e-6 * abs(ref)
    # TATS: unbiased covariance, SVD square roots (torch, float64)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def sqrt_psd(m):
        u, s, v = torch.svd(m)
        return u @ torch.diag(torch.where(s < 1e-10, s, s.sqrt())) @ v.t()

    sa, sb = torch.cov(ta.t()), torch.cov(tb.t())
    r = sqrt_psd(sa)
    ref2 = float(torch.trace(sa + sb) - 2 * torch.trace(sqrt_psd(r @ sb @ r)) + ((ta.mean(0) - tb.mean(0)) ** 2).sum())
    got2 = frechet_tfgan(*ma.mean_cov(unbiased=True), *mb.mean_cov(unbiased=True))
    assert abs(got2 - ref2) <= 1e-6 * abs(ref2)


def test_fvd_styleganv_features_merge_and_statuses(videos, fvd_weights):
    from moee_bench.metrics.visual.fvd import FVD, preprocess

    pred, gt = videos
    m = FVD(_opts(fvd_weights))
    res = evaluate(_clips(pred, gt), [m])
    # default clip rule (StyleGAN-V): one 16-frame clip per video, 3 videos
    assert res.metrics["fvd_n_real"] == 3 and res.metrics["fvd_variant"] == "styleganv"
    assert res.metrics["fvd_clip_rule"] == "styleganv"
    assert np.isfinite(res.metrics["fvd"]) and res.metrics["fvd"] > 0
    # the features are the detector on our preprocessing of exactly those frames
    det = torch.jit.load(str(fvd_weights / "i3d_torchscript.pt")).eval()
    frames = media.read_frames(pred / "c1.mp4")
    with torch.no_grad():
        want = det(preprocess(frames[16:32])[None], rescale=False, resize=False, return_features=True)[0].double().numpy()
    assert np.allclose(m.embed(frames[16:32]), want, atol=1e-6)
    # merging two halves equals one pass
    clips = _clips(pred, gt)
    one = FVD(_opts(fvd_weights))
    evaluate(clips, [one])
    h1, h2 = FVD(_opts(fvd_weights)), FVD(_opts(fvd_weights))
    evaluate(clips[:1], [h1])
    evaluate(clips[1:], [h2])
    h1.merge(h2)
    assert h1.compute()["fvd"] == pytest.approx(one.compute()["fvd"], rel=1e-9)
    # the bootstrap's recomputation from cached features gives the same number
    from moee_bench.metrics.core.base import FrameChunk
    from moee_bench.metrics.visual.fvd import fvd_from_features

    feats = []
    for c in clips:
        ex = m.extractor(type("Ctx", (), {"clip_id": c.clip_id})())
        ex.add(FrameChunk(0, media.read_frames(c.pred), media.read_frames(c.gt)))
        feats.append(ex.finish())
    assert fvd_from_features(feats) == pytest.approx(one.compute()["fvd"], rel=1e-6)
    # "first" keeps one clip per video; "windows" pools every non-overlapping window (40 frames -> 2 per video)
    first = FVD(_opts(fvd_weights, fvd_clips="first"))
    assert evaluate(clips, [first]).metrics["fvd_n_real"] == 3
    windows = FVD(_opts(fvd_weights, fvd_clips="windows"))
    assert evaluate(clips, [windows]).metrics["fvd_n_real"] == 6
    # a 10-frame video is too_short, never 0
    short = FVD(_opts(fvd_weights))
    r = evaluate([ClipInput("c0", pred.parent / "short" / "c0.mp4", pred.parent / "short" / "c0.mp4")], [short])
    assert r.clips[0].status["fvd"] == "too_short"
    assert short.compute()["fvd"] is None and "at least 2 clips" in short.compute()["fvd_reason"]


def test_fvd_videogpt_variant_runs_the_pytorch_i3d(videos, fvd_weights):
    from moee_bench.metrics.visual.fvd import FVD

    pred, gt = videos
    m = FVD(_opts(fvd_weights, fvd_variant="videogpt", fvd_clips="first"))
    res = evaluate(_clips(pred, gt)[:2], [m])
    assert res.metrics["fvd_variant"] == "videogpt" and res.metrics["fvd_n_fake"] == 2
    assert np.isfinite(res.metrics["fvd"])
    assert m.config()["covariance"] == "unbiased (N-1)"


def test_i3d_layout_matches_the_upstream_checkpoint_names():
    from moee_bench.metrics.visual.i3d import InceptionI3d

    sd = InceptionI3d().state_dict()
    for k in ("Conv3d_1a_7x7.conv3d.weight", "Mixed_3b.b1b.bn.running_var", "Mixed_5c.b3b.conv3d.weight",
              "logits.conv3d.bias"):
        assert k in sd
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert 12_000_000 < sum(v.numel() for k, v in sd.items() if "running" not in k and "tracked" not in k) < 13_000_000


def test_score_reports_null_with_reason_when_weights_are_missing(videos, tmp_path: Path):
    from moee_bench.bench.cli.app import main

    pred, gt = videos
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr,fvd,csim", "--json", str(out),
                 "--weights-dir", str(tmp_path)]) == 0
    r = json.loads(out.read_text())
    assert r["metrics"]["fvd"] is None and "i3d_torchscript.pt" in r["metrics"]["fvd_reason"]
    assert r["metrics"]["csim"] is None and "recognition_arcface_ir_se50.pth" in r["metrics"]["csim_reason"]
    assert r["metrics"]["psnr"] is not None


# ------------------------------------------------------------------------------------------------ CSIM
@pytest.fixture(scope="module")
def arcface_weights(tmp_path_factory) -> Path:
    from facexlib.recognition.arcface_arch import Backbone

    d = tmp_path_factory.mktemp("arc")
    torch.manual_seed(0)
    net = Backbone(50, 0.6, "ir_se").eval()
    for mod in net.modules():                      # non-trivial BN statistics
        if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), d / "recognition_arcface_ir_se50.pth")
    return d


def test_alignment_identity_and_scaling():
    from moee_bench.metrics.visual.csim import ARCFACE_TEMPLATE, align_face, alignment_matrix

    assert np.allclose(alignment_matrix(ARCFACE_TEMPLATE), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    assert np.array_equal(align_face(img, ARCFACE_TEMPLATE), img)
    m = alignment_matrix(ARCFACE_TEMPLATE * 2 + [10, 20])       # face twice as big, shifted
    assert np.allclose(m, [[0.5, 0, -5], [0, 0.5, -10]], atol=1e-9)


def test_csim_embedding_parity_and_sample_faces(arcface_weights, sample_manifest: Path):
    from facexlib.recognition.arcface_arch import Backbone

    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.metrics.visual.csim import CSIM, align_face, embed
    from moee_bench.bench.core.faces import FaceDetector

    m = CSIM(_opts(arcface_weights, csim_stride=8))
    ref_net = Backbone(50, 0.6, "ir_se").eval()
    ref_net.load_state_dict(torch.load(arcface_weights / "recognition_arcface_ir_se50.pth", weights_only=True))
    man = load_manifest(sample_manifest)
    clip = man.by_id()["astronaut_happiness"]
    frame = media.first_frame(man.media_path(clip, "video"))
    face = FaceDetector().detect(frame)[0]
    assert face is not None                                     # real MTCNN weights find the sample's face
    crop = align_face(frame, face.landmarks5)
    x = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        want = ref_net(x).double().numpy()
    assert np.abs(embed(m.net, crop[None]) - want).max() < 1e-6
    # same identity scores higher than another identity against the astronaut reference
    ref = man.media_path(clip, "ref_image")
    same = ClipInput("same", man.media_path(clip, "video"), ref_image=ref)
    other = ClipInput("other", man.media_path(man.by_id()["hopper_happiness"], "video"), ref_image=ref)
    res = evaluate([same, other], [m])
    by = {c.clip_id: c.values for c in res.clips}
    assert by["same"]["csim"] > by["other"]["csim"]
    assert by["same"]["csim_frames"] == 9 and by["same"]["csim_noface_frames"] == 0
    # merging two halves equals one pass
    a, b = CSIM(_opts(arcface_weights, csim_stride=8)), CSIM(_opts(arcface_weights, csim_stride=8))
    evaluate([same], [a])
    evaluate([other], [b])
    a.merge(b)
    assert a.compute()["csim"] == pytest.approx(m.compute()["csim"], rel=1e-12)


def test_csim_no_face_is_a_status(arcface_weights, tmp_path: Path):
    from moee_bench.metrics.visual.csim import CSIM

    flat = media.write_video(tmp_path / "flat.mp4", [np.full((8, 64, 64, 3), 128, np.uint8)], 25)
    m = CSIM(_opts(arcface_weights))
    res = evaluate([ClipInput("flat", flat, ref_image=None)], [m])
    assert res.clips[0].status["csim"] == "no_face"
    assert m.compute()["csim"] is None
