"""The Python API (``moee_bench.score`` / ``run`` / ``compare``): the path the CLI takes, frames in memory, the
persistent feature cache, errors as the project's exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import moee_bench
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import WeightsOptions
from tests.conftest import write_visual_weights


def _frames(seed: int, n: int = 8, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    noise = rng.integers(-20, 20, (n, size, size, 3))
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    for i in range(2):
        media.write_video(tmp_path / "pred" / f"c{i}.mp4", [_frames(10 + i)], 25.0)
        media.write_video(tmp_path / "gt" / f"c{i}.mp4", [_frames(20 + i)], 25.0)
    return tmp_path / "pred", tmp_path / "gt"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_visual_weights(tmp_path_factory.mktemp("w"))


def _same_numbers(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert [{k: v for k, v in c.items()} for c in a["clips"]] == [{k: v for k, v in c.items()} for c in b["clips"]]


def test_cli_score_and_api_score_give_identical_json(folders, weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", "psnr,ssim,lpips",
               "--weights-dir", str(weights), "--allow-unverified-weights", "--json", str(out)])
    assert rc == 0
    cli = json.loads(out.read_text())
    r = moee_bench.score(folders[0], folders[1], metrics=["psnr", "ssim", "lpips"], progress=False,
                         weights=WeightsOptions(str(weights), allow_unverified=True))
    api = json.loads(r.to_json())
    _same_numbers(cli, api)
    assert set(cli["protocol"]) == set(api["protocol"])
    assert all(api["metrics"][k] is not None for k in ("psnr", "ssim", "lpips"))
    df = r.to_frame()
    assert list(df.index) == ["c0", "c1"] and (df["status.psnr"] == "ok").all()
    assert df["psnr"].tolist() == [c["psnr"] for c in cli["clips"]]
    assert r.statuses == {c["clip"]: c["status"] for c in cli["clips"]} and r.failed == {}


def test_frames_in_memory_score_as_scikit_image_does(tmp_path: Path) -> None:
    """A dict of (T, H, W, 3) uint8 arrays (numpy or torch) is scored without a video: PSNR and SSIM are the
    per-frame means scikit-image gives on those exact pixels."""
    torch = pytest.importorskip("torch")
    pred = {"a": _frames(1), "b": _frames(2, n=6)}
    gt = {"a": _frames(3), "b": _frames(4, n=6)}
    r = moee_bench.score(pred, gt, metrics="psnr,ssim", progress=False)
    assert r.failed == {} and r.protocol["pairing_warnings"] == []
    for c in r.clips:
        p, g = pred[c.clip_id], gt[c.clip_id]
        want_psnr = np.mean([peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(g, p)])
        want_ssim = np.mean([structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                   channel_axis=-1, data_range=255) for x, y in zip(g, p)])
        assert c.values["psnr"] == pytest.approx(want_psnr, rel=1e-9)
        assert c.values["ssim"] == pytest.approx(want_ssim, rel=1e-9)
        assert c.n_frames == len(p)
    t = moee_bench.score({k: torch.from_numpy(v) for k, v in pred.items()}, gt, metrics="psnr,ssim", progress=False)
    assert t.to_dict()["clips"] == r.to_dict()["clips"]


def test_in_memory_frames_equal_the_decoded_file(folders) -> None:
    """The files' frames, decoded up front and scored in memory, give the file path's numbers exactly."""
    pred = {p.stem: media.read_frames(p) for p in sorted(folders[0].glob("*.mp4"))}
    gt = {p.stem: media.read_frames(p) for p in sorted(folders[1].glob("*.mp4"))}
    mem = moee_bench.score(pred, gt, metrics="psnr,ssim", progress=False)
    files = moee_bench.score(folders[0], folders[1], metrics="psnr,ssim", progress=False)
    for a, b in zip(mem.clips, files.clips):
        assert a.values == pytest.approx(b.values, rel=1e-12)


def test_api_errors_are_bench_errors_not_system_exit(folders, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="unknown|not a metric|known"):
        moee_bench.score(folders[0], folders[1], metrics=["psnr", "nope"])
    with pytest.raises(BenchError):
        moee_bench.score(folders[0], folders[1], metrics=["psnr"], params={"no_such_key": 1})
    with pytest.raises(BenchError, match="no such folder"):
        moee_bench.score(tmp_path / "absent", metrics=["psnr"])
    with pytest.raises(BenchError, match=r"\(T, H, W, 3\)"):
        moee_bench.score({"a": np.zeros((4, 8, 8), np.uint8)}, metrics=["psnr"])
    with pytest.raises(BenchError, match="uint8"):
        moee_bench.score({"a": np.zeros((4, 8, 8, 3), np.float32)}, metrics=["psnr"])
    with pytest.raises(BenchError, match="sync_pixels"):
        moee_bench.score({"a": _frames(0)}, metrics=["sync"])
    with pytest.raises(BenchError, match="device"):
        moee_bench.score(folders[0], folders[1], metrics=["psnr"], device="tpu")


def test_feature_cache_persists_across_api_and_cli_calls(folders, weights: Path, tmp_path: Path) -> None:
    cache = tmp_path / "features"
    w = WeightsOptions(str(weights), allow_unverified=True)
    first = moee_bench.score(folders[0], folders[1], metrics="psnr,lpips", weights=w, cache=cache, progress=False)
    assert all(c.extracted and not c.cached for c in first.clips)
    n_files = sorted(p.name for p in cache.rglob("*") if p.is_file())
    again = moee_bench.score(folders[0], folders[1], metrics="psnr,lpips", weights=w, cache=cache, progress=False)
    assert all(c.cached and not c.extracted for c in again.clips)
    assert again.metrics == first.metrics
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", "psnr,lpips",
                 "--weights-dir", str(weights), "--allow-unverified-weights", "--feature-cache", str(cache),
                 "--json", str(out)]) == 0
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == n_files      # nothing new extracted
    assert json.loads(out.read_text())["metrics"] == first.metrics


def test_run_and_compare_through_the_api_match_the_cli(sample_manifest: Path, tmp_path: Path, capsys) -> None:
    """``moee_bench.run`` on a one-method suite, then ``compare`` of the run with itself: no regression, and the
    CLI prints the same table and exits 0."""
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{sample_manifest}"\nsplit = "test"\nmetrics = ["psnr"]\n'
                     '[[methods]]\nname = "static"\n')
    s = moee_bench.run(suite, tmp_path / "out", report=False, log=lambda *a, **k: None)
    assert not s.failures
    c = moee_bench.compare(s.run_id, s.run_id, store=s.store)
    assert c.by_verdict("regressed") == [] and "PSNR" in c.markdown and len(c.verdicts) == 1
    capsys.readouterr()
    assert main(["compare", s.run_id, s.run_id, "--store", str(s.store)]) == 0
    assert c.markdown in capsys.readouterr().out
