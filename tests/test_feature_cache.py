"""Feature caches that cannot go stale (issue 14.4) and GT features once per dataset (issue 21.4).

A feature's identity is computed in one place (``Metric.cache_key``): config, weight sha256s, extractor
version and the inputs the part read. Swapping a weight file or the reference recomputes; nothing
else does. GT-side features are keyed apart from the pred side, so a suite of K methods extracts them
once; a later run extracts nothing and decodes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.bench.suite.store import FeatureStore, ResultStore
from moee_bench.metrics.core.evaluate import ClipInput, evaluate
from moee_bench.metrics.core.registry import MetricOptions

I3D = "i3d_torchscript.pt"
FRAMES = 16          # one FVD clip per video


@pytest.fixture(scope="module")
def i3d_files(tmp_path_factory, save_standin_i3d) -> tuple[Path, Path]:
    """Two different random detectors in the reference (TorchScript) format. (FVD rather than FID: FID's
    2048-d Fréchet distance costs scipy ~10 s per compute, FVD's 400-d one little; both extract per side.)"""
    d = tmp_path_factory.mktemp("i3d")
    return save_standin_i3d(d / "0.pt", seed=0), save_standin_i3d(d / "1.pt", seed=1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[list[ClipInput], list[ClipInput]]:
    """Two clips against their GT, for two methods (two pred folders)."""
    d = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    a, b = [], []
    for i in range(2):
        g = rng.integers(0, 255, (FRAMES, 32, 32, 3), dtype=np.uint8)
        gt = media.write_video(d / "gt" / f"c{i}.mp4", [g], 25)
        for folder, out in (("m1", a), ("m2", b)):
            p = np.clip(g.astype(int) + rng.integers(-25, 25, g.shape), 0, 255).astype(np.uint8)
            out.append(ClipInput(f"c{i}", media.write_video(d / folder / f"c{i}.mp4", [p], 25), gt))
    return a, b


class _Readers:
    """Counts the videos the evaluator opens (by path)."""

    def __init__(self, monkeypatch) -> None:
        self.opened: list[Path] = []
        real = media.FrameReader

        def reader(path, *a, **k):
            self.opened.append(Path(path))
            return real(path, *a, **k)

        monkeypatch.setattr(media, "FrameReader", reader)


def _metrics(wdir: Path, names: tuple[str, ...] = ("fvd", "psnr")):
    from moee_bench.metrics.core.registry import build_metrics

    from moee_bench.bench.core.weights import sha256_file

    pins = {"i3d_styleganv": sha256_file(wdir / I3D)} if (wdir / I3D).is_file() else {}   # TorchScript: pinned
    ms, unavailable = build_metrics(list(names), MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True,
                                                                                      trust=pins)))
    assert not unavailable
    return ms


def _weights(tmp_path: Path, i3d: Path) -> Path:
    wdir = tmp_path / "w"
    wdir.mkdir(exist_ok=True)
    shutil.copy(i3d, wdir / I3D)
    return wdir


def _extracted(res) -> list[str]:
    return sorted(f"{c.clip_id}:{p}" for c in res.clips for p in c.extracted)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gt_features_once_weight_swap_recomputes_nothing_else_does(tmp_path, pairs, i3d_files, monkeypatch):
    m1, m2 = pairs
    wdir = _weights(tmp_path, i3d_files[0])
    cache = FeatureStore(tmp_path / "features")
    fresh = evaluate(m1, _metrics(wdir), progress=False)                     # no cache: the reference values
    first = evaluate(m1, _metrics(wdir), cache=cache, progress=False)
    assert _extracted(first) == ["c0:fvd/gt", "c0:fvd/pred", "c0:psnr/pair", "c1:fvd/gt", "c1:fvd/pred", "c1:psnr/pair"]
    assert first.metrics == fresh.metrics and [c.values for c in first.clips] == [c.values for c in fresh.clips]
    assert [c.n_frames for c in first.clips] == [FRAMES, FRAMES]
    # a second method against the same GT: its pred features and its pairs only, the GT's I3D features reused
    second = evaluate(m2, _metrics(wdir), cache=cache, progress=False)
    assert _extracted(second) == ["c0:fvd/pred", "c0:psnr/pair", "c1:fvd/pred", "c1:psnr/pair"]
    assert sorted(p for c in second.clips for p in c.cached) == ["fvd/gt", "fvd/gt"]
    assert second.metrics == evaluate(m2, _metrics(wdir), progress=False).metrics
    # the same scoring again (new metric objects, a later run): nothing extracted, nothing decoded, same numbers
    readers = _Readers(monkeypatch)
    again = evaluate(m1, _metrics(wdir), cache=cache, progress=False)
    assert _extracted(again) == [] and readers.opened == []
    assert again.metrics == fresh.metrics and [c.n_frames for c in again.clips] == [FRAMES, FRAMES]
    assert [c.values for c in again.clips] == [c.values for c in fresh.clips]
    # another weight file under the same name: FVD recomputes both sides, PSNR (no weights) does not
    shutil.copy(i3d_files[1], wdir / I3D)
    swapped = evaluate(m1, _metrics(wdir), cache=cache, progress=False)
    assert _extracted(swapped) == ["c0:fvd/gt", "c0:fvd/pred", "c1:fvd/gt", "c1:fvd/pred"]
    assert swapped.metrics["fvd"] != fresh.metrics["fvd"]
    assert swapped.metrics == evaluate(m1, _metrics(wdir), progress=False).metrics


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cached_lengths_keep_the_pairing_rule(tmp_path, pairs, i3d_files, monkeypatch):
    """Frame counts travel with the features: with every part cached (nothing decoded) a length mismatch is
    still reported, --strict still refuses it, and the pairs are still the first frames of both."""
    wdir = _weights(tmp_path, i3d_files[0])
    clip = pairs[0][0]
    frames = media.read_frames(clip.pred)
    longer = ClipInput(clip.clip_id, media.write_video(tmp_path / "long.mp4", [np.concatenate([frames, frames[:8]])], 25),
                       clip.gt)
    cache = FeatureStore(tmp_path / "f")
    cold = evaluate([longer], _metrics(wdir), progress=False)
    assert cold.clips[0].warnings == ["truncated: length mismatch at 25 fps: pred has 24 frames, GT has 16; truncated to 16"]
    assert cold.clips[0].n_frames == 16 and cold.metrics["psnr_n_frames"] == 16 and cold.metrics["fvd_n_fake"] == 1
    evaluate([longer], _metrics(wdir), cache=cache, progress=False)
    readers = _Readers(monkeypatch)
    warm = evaluate([longer], _metrics(wdir), cache=cache, progress=False)
    assert readers.opened == [] and warm.clips[0].warnings == cold.clips[0].warnings
    assert warm.metrics == cold.metrics and warm.clips[0].values == cold.clips[0].values
    strict = evaluate([longer], _metrics(wdir), cache=cache, strict=True, progress=False)
    assert strict.clips[0].status == {"fvd": "length_mismatch", "psnr": "length_mismatch"}


def test_sync_identity_covers_its_weights(tmp_path):
    """Sync's features are keyed by the SyncNet weights and, when tracking, the face detector's."""
    from syncnet_python.SyncNetModel import S

    from moee_bench.metrics.sync.metric import Sync

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    (tmp_path / "sfd_face.pth").write_bytes(b"detector A")

    def ids() -> tuple[str, str]:
        def opts(**p) -> MetricOptions:
            return MetricOptions(weights=WeightsOptions(str(tmp_path), allow_unverified=True), params=p)

        return Sync(opts(face_cropped=True)).feature_id(), Sync(opts()).feature_id()

    cropped, tracked = ids()
    assert ids() == (cropped, tracked)
    (tmp_path / "sfd_face.pth").write_bytes(b"detector B")
    c1, t1 = ids()
    assert c1 == cropped and t1 != tracked          # the detector matters only when tracking
    torch.manual_seed(1)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    c2, t2 = ids()
    assert c2 != cropped and t2 != t1


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict[str, Path]:
    from skimage import data
    from facexlib.recognition.arcface_arch import Backbone

    d = tmp_path_factory.mktemp("faces")
    torch.manual_seed(0)
    torch.save(Backbone(50, 0.6, "ir_se").eval().state_dict(), d / "recognition_arcface_ir_se50.pth")
    img = data.astronaut()[::2, ::2]
    rng = np.random.default_rng(0)
    jitter = lambda: np.clip(img.astype(int) + rng.integers(-8, 8, (4, *img.shape)), 0, 255).astype(np.uint8)  # noqa: E731
    return {"weights": d, "pred": media.write_video(d / "pred.mp4", [jitter()], 25),
            "gt": media.write_video(d / "gt.mp4", [jitter()], 25),
            "ref": media.write_image(d / "ref.png", np.ascontiguousarray(img[:, ::-1]))}


def test_csim_reference_change_recomputes_the_reference_only(tmp_path, faces):
    """A GT added later changes CSIM's default reference (its first frame), and a new reference image
    re-embeds that image only; the frames' embeddings are reused, the values equal a cold evaluation."""
    from moee_bench.metrics.visual.csim import CSIM

    def csim() -> CSIM:
        return CSIM(MetricOptions(weights=WeightsOptions(str(faces["weights"]), allow_unverified=True)))

    cache = FeatureStore(tmp_path / "f")
    alone = ClipInput("a", faces["pred"])
    r1 = evaluate([alone], [csim()], cache=cache, progress=False)
    assert r1.clips[0].status == {"csim": "ok"} and _extracted(r1) == ["a:csim/pred", "a:csim/ref"]
    assert _extracted(evaluate([alone], [csim()], cache=cache, progress=False)) == []
    with_gt = ClipInput("a", faces["pred"], faces["gt"])
    r2 = evaluate([with_gt], [csim()], cache=cache, progress=False)
    assert _extracted(r2) == ["a:csim/ref"]
    assert r2.clips[0].values == evaluate([with_gt], [csim()], progress=False).clips[0].values
    assert r2.clips[0].values["csim"] != r1.clips[0].values["csim"]
    with_ref = ClipInput("a", faces["pred"], faces["gt"], ref_image=faces["ref"])
    r3 = evaluate([with_ref], [csim()], cache=cache, progress=False)
    assert _extracted(r3) == ["a:csim/ref"]
    assert r3.clips[0].values == evaluate([with_ref], [csim()], progress=False).clips[0].values


# ------------------------------------------------------------------------------------------------ the runner
def _dataset(root: Path, n: int = 2, frames: int = FRAMES) -> Path:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        v = rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8)
        media.write_video(root / "v" / f"c{i}.mp4", [v], 25,
                          audio=(0.1 * rng.standard_normal(frames * 640)).astype(np.float32))
        for k in range(4):
            noisy = np.clip(v.astype(int) + rng.integers(-30, 30, v.shape), 0, 255).astype(np.uint8)
            media.write_video(root / f"m{k}" / f"c{i}.mp4", [noisy], 25)
        clips.append(ClipRecord(f"c{i}", f"id{i}", f"v/c{i}.mp4", parse_emotion("happy"), split="test"))
    return Manifest("tiny", root, clips).save(root / "manifest.json")


def _suite(path: Path, manifest: Path, name: str, methods: list[str]) -> Path:
    body = "".join(f'[[methods]]\nname = "precomputed"\nlabel = "{m}"\nfolder = "{manifest.parent / m}"\n' for m in methods)
    path.write_text(f'name = "{name}"\ndataset = "{manifest}"\nsplit = "test"\nmetrics = ["fvd", "psnr"]\nseed = 0\n{body}')
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_suite_extracts_gt_features_once_and_a_later_run_nothing(tmp_path, i3d_files, monkeypatch):
    from moee_bench.bench.suite.runner import run_suite
    from moee_bench.bench.suite.spec import load_suite
    from moee_bench.metrics.visual.fvd import FVD
    from moee_bench.reports.bootstrap import set_metric_ci

    wdir = _weights(tmp_path, i3d_files[0])
    m = _dataset(tmp_path / "ds")
    embedded: list[int] = []
    real = FVD.embed

    def counting(self, clip):
        embedded.append(len(clip))
        return real(self, clip)

    monkeypatch.setattr(FVD, "embed", counting)
    out = tmp_path / "out"

    def run(name: str, methods: list[str]) -> None:
        from moee_bench.bench.core.weights import WeightsOptions, sha256_file

        weights = WeightsOptions(str(wdir), allow_unverified=True, trust={"i3d_styleganv": sha256_file(wdir / I3D)})
        run_suite(load_suite(_suite(tmp_path / f"{name}.toml", m, name, methods)), out, weights=weights,
                  report=False, log=lambda *a, **k: None)

    run("a", ["m0", "m1", "m2"])
    assert len(embedded) == (3 + 1) * 2        # 3 methods' preds + the GT once, for 2 clips (was 3 + 3)
    with ResultStore(out / "store") as st:
        (r,) = st.runs()
        agg = st.aggregates(r["run_id"]).set_index(["method", "key"])["value"]
        keys = {meth: st.feature_keys(r["run_id"], meth, "fvd") for meth in ("m0", "m1", "m2")}
        assert all(set(parts) == {"pred", "gt"} for k in keys.values() for parts in k.values())
        assert len({k["c0"]["gt"] for k in keys.values()}) == 1 and len({k["c0"]["pred"] for k in keys.values()}) == 3
        # the bootstrap recombines each clip's parts from the store
        ci = set_metric_ci(st, r["run_id"], "m0", "fvd", n_boot=5)
        assert ci is not None and np.isfinite(ci).all() and ci[0] <= ci[1]
    # each method's FVD equals a cold score of the videos it stored against the GT
    for meth in ("m0", "m2"):
        clips = [ClipInput(f"c{i}", out / "videos" / meth / f"c{i}.mp4", m.parent / "v" / f"c{i}.mp4") for i in range(2)]
        assert agg[(meth, "fvd")] == evaluate(clips, _metrics(wdir, ("fvd",)), progress=False).metrics["fvd"]
    # a later run of another suite with one more method: only the new method's preds; the GT is decoded for
    # PSNR's pairs, never embedded again. The same run once more: nothing embedded, nothing decoded.
    embedded.clear()
    readers = _Readers(monkeypatch)
    run("b", ["m0", "m1", "m2", "m3"])
    assert len(embedded) == 2
    assert sorted({p.parent.name for p in readers.opened}) == ["m3", "v"]
    embedded.clear()
    readers.opened.clear()
    run("b", ["m0", "m1", "m2", "m3"])
    assert embedded == [] and readers.opened == []


def test_runner_merge_refuses_a_rank_with_other_metrics(tmp_path):
    """The cross-rank merge checks config and identity like Metric.merge (it used to add any state)."""
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.suite.runner import SuiteRunner
    from moee_bench.bench.suite.spec import load_suite
    from moee_bench.metrics.visual.ssim import SSIM

    m = _dataset(tmp_path / "ds", n=1)
    suite = load_suite(_suite(tmp_path / "s.toml", m, "s", ["m0"]))
    r = SuiteRunner(suite, tmp_path / "out", report=False, log=lambda *a, **k: None)
    r.metrics = [SSIM()]
    r.metrics[0].frames.add(0.30)

    class TwoRanks:
        rank, world = 0, 2

        def __init__(self, other) -> None:
            self.other = other

        def gather(self, obj):
            return [obj, self.other]

    same = SSIM()
    same.frames.add(0.40)
    r.dist = TwoRanks([same.snapshot()])
    assert r.merge() and r.metrics[0].compute()["ssim"] == pytest.approx(0.35)
    other = SSIM()
    other.frames.add(0.50)
    snap = other.snapshot()
    snap["config"] = {**snap["config"], "sigma": 2.0}          # a rank that scored with another window
    r.dist = TwoRanks([snap])
    with pytest.raises(BenchError, match="config"):
        r.merge()
    assert r.metrics[0].compute()["ssim"] == pytest.approx(0.35)     # nothing was added


def test_a_clip_without_a_face_is_an_outcome_read_from_the_cache(tmp_path):
    """Grey frames hold no face: the emotion metric gives the clip status no_face with the reason, and a second
    evaluation against the same cache reads that outcome back instead of decoding and detecting again (before, the
    no-face clip raised inside extraction, was never cached, and a resumed run decoded it every time)."""
    from moee_bench.metrics.emotion.metric import Emotion

    grey = media.write_video(tmp_path / "grey.mp4", [np.full((10, 64, 64, 3), 128, np.uint8)], 25)
    clip = ClipInput("g", grey, emotion=parse_emotion("happiness"))
    cache = FeatureStore(tmp_path / "f")
    first = evaluate([clip], [Emotion()], cache=cache, progress=False)
    assert first.clips[0].status == {"emotion": "no_face"} and _extracted(first) == ["g:emotion/pred"]
    assert "no face found by MTCNN" in first.clips[0].messages["emotion"]
    again = evaluate([clip], [Emotion()], cache=cache, progress=False)
    assert _extracted(again) == [] and again.clips[0].status == {"emotion": "no_face"}
    assert again.clips[0].messages["emotion"] == first.clips[0].messages["emotion"]
