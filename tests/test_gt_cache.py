"""A test set embedded once (issue 30, point 3): ``score --gt DIR`` keeps the features read from GT videos alone in
a persistent, content-keyed cache (``$XDG_CACHE_HOME/moee-bench/features``); a later ``score`` against the same GT
embeds only the predictions and gives identical numbers; ``--no-cache`` opts out; ``moee-bench cache info|prune``
shows and trims it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gtc")
    rng = np.random.default_rng(0)
    for i in range(2):
        g = rng.integers(0, 255, (5, 48, 48, 3), dtype=np.uint8)
        for sub, amp in (("pred", 40), ("pred2", 20)):
            p = np.clip(g.astype(int) + rng.integers(-amp, amp, g.shape), 0, 255).astype(np.uint8)
            media.write_video(d / sub / f"c{i}.mp4", [p], 25.0)
        media.write_video(d / "gt" / f"c{i}.mp4", [g], 25.0)
    return d


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """FID's network replaced by a cheap deterministic function of the pixels (64 values a frame, so the distance is
    cheap too: the cache, not the network, is under test); the number of frames of each call recorded."""
    from moee_bench.metrics.visual import fid

    calls: list[int] = []

    def features(model, frames, *a, **k):
        calls.append(len(frames))
        return frames[:, ::6, ::6, 0].reshape(len(frames), -1)[:, :64].astype(np.float32) / 255.0

    monkeypatch.setattr(fid, "inception_features", features)
    monkeypatch.setattr(fid, "DIM", 64)          # the moments state is built with fid.DIM dimensions
    return calls


def _score(videos: Path, weights: Path, out: Path, *extra: str, pred: str = "pred") -> dict:
    rc = main(["score", "--pred", str(videos / pred), "--gt", str(videos / "gt"), "--metrics", "psnr,fid", "--json",
               str(out), "--weights-dir", str(weights), "--allow-unverified-weights", *extra])
    assert rc == exitcodes.OK
    return json.loads(out.read_text())


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "moee-bench" / "features").glob("??/*.npz"))


def test_gt_embedded_once_and_numbers_identical_cold_and_warm(videos, reference_format_weights, counted, tmp_path,
                                                            _private_feature_cache):
    cold = _score(videos, reference_format_weights, tmp_path / "cold.json")
    assert sum(counted) == 20                                   # 2 clips x 5 frames x (pred + GT)
    rec = cold["protocol"]["feature_cache"]
    assert rec["persistent"] == str(_private_feature_cache / "moee-bench" / "features")
    assert (rec["gt_parts_extracted"], rec["gt_parts_cached"], rec["entries"]) == (2, 0, 2)    # the two GT videos only
    assert len(_cache_files(_private_feature_cache)) == 2

    counted.clear()
    warm = _score(videos, reference_format_weights, tmp_path / "warm.json")
    assert sum(counted) == 10                                   # the predictions only
    assert (warm["protocol"]["feature_cache"]["gt_parts_cached"], warm["protocol"]["feature_cache"]["gt_parts_extracted"]) == (2, 0)
    assert warm["metrics"] == cold["metrics"]                   # identical, not approximately equal
    assert warm["clips"] == cold["clips"]

    counted.clear()                                             # another checkpoint against the same test set
    other = _score(videos, reference_format_weights, tmp_path / "other.json", pred="pred2")
    assert sum(counted) == 10 and other["metrics"]["fid"] != cold["metrics"]["fid"]
    assert other["metrics"]["psnr"] > cold["metrics"]["psnr"]   # paired metrics still read the GT frames (less noise)


def test_a_damaged_entry_is_recomputed_not_trusted(videos, reference_format_weights, counted, tmp_path,
                                                   _private_feature_cache):
    cold = _score(videos, reference_format_weights, tmp_path / "cold.json")
    for f in _cache_files(_private_feature_cache):
        f.write_bytes(f.read_bytes()[:50])                      # truncated by a full disk, say
    counted.clear()
    again = _score(videos, reference_format_weights, tmp_path / "again.json")
    assert sum(counted) == 20 and again["protocol"]["feature_cache"]["gt_parts_extracted"] == 2
    assert again["metrics"] == cold["metrics"]


def test_no_cache_keeps_nothing(videos, reference_format_weights, counted, tmp_path, _private_feature_cache):
    for _ in range(2):
        out = _score(videos, reference_format_weights, tmp_path / "n.json", "--no-cache")
    assert sum(counted) == 40                                   # both runs embed both sides
    assert out["protocol"]["feature_cache"] == {"persistent": None, "reason": "--no-cache"}
    assert _cache_files(_private_feature_cache) == []


def test_cache_info_and_prune(videos, reference_format_weights, tmp_path, capsys, _private_feature_cache):
    _score(videos, reference_format_weights, tmp_path / "s.json")
    files = _cache_files(_private_feature_cache)
    size = sum(f.stat().st_size for f in files)
    capsys.readouterr()
    assert main(["cache", "info"]) == exitcodes.OK
    assert f"2 feature files, {size / 1024:.1f} KiB" in capsys.readouterr().out
    old = files[0]
    os.utime(old, (0, 0))                                      # unused since 1970
    assert main(["cache", "prune", "--older-than", "1"]) == exitcodes.OK
    assert "pruned 1 feature files" in capsys.readouterr().out and not old.exists() and files[1].exists()
    assert main(["cache", "prune", "--max-size", "0"]) == exitcodes.OK
    assert _cache_files(_private_feature_cache) == []
    assert main(["cache", "prune", "--max-size", "-1"]) == exitcodes.USAGE
