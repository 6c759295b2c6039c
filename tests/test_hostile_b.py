"""Hostile cases of issue 31, part B: a tampered feature cache, the estimator a report prints, CSV formula
injection, manifests, suites, stores, audio and resources. Each case goes through the CLI a user runs and
checks a result built with a known answer (the first run's numbers, the file's own bytes, the README)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.suite.store import ResultStore


def _dataset(root: Path, n: int = 2, frames: int = 8, ids: list[str] | None = None) -> Path:
    """GT videos and a noisier `m0` copy of each (PSNR well below the cap), and a manifest."""
    rng = np.random.default_rng(0)
    clips = []
    for i, cid in enumerate(ids or [f"c{i}" for i in range(n)]):
        v = np.kron(rng.integers(0, 255, (frames, 4, 4, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)
        media.write_video(root / "v" / f"c{i}.mp4", [v], 25, audio=(0.1 * rng.standard_normal(frames * 640)).astype(np.float32))
        noisy = np.clip(v.astype(int) + rng.integers(-40, 40, v.shape), 0, 255).astype(np.uint8)
        media.write_video(root / "m0" / f"c{i}.mp4", [noisy], 25)
        clips.append(ClipRecord(cid, f"id{i}", f"v/c{i}.mp4", parse_emotion("happy"), split="test"))
    return Manifest("tiny", root, clips).save(root / "manifest.json")


def _suite(path: Path, manifest: Path, name: str, metrics: tuple[str, ...] = ("psnr",), folder: str | None = None) -> Path:
    folder = folder if folder is not None else str(manifest.parent / "m0")
    path.write_text(f'name = "{name}"\ndataset = "{manifest}"\nsplit = "test"\nmetrics = {json.dumps(list(metrics))}\n'
                    f'seed = 0\n[[methods]]\nname = "precomputed"\nlabel = "m0"\nfolder = "{folder}"\n')
    return path


def _clip_values(store: Path, run_prefix: str, key: str) -> dict[str, float]:
    with ResultStore(store) as st:
        (run,) = [r["run_id"] for r in st.runs() if r["run_id"].startswith(run_prefix)]
        t = st.clip_table(run)
    return dict(zip(t["clip_id"], t[key]))


# 4 -- a tampered feature cache is never served -----------------------------------------------------------
def test_a_tampered_feature_cache_entry_is_recomputed_and_reported(tmp_path: Path, capsys):
    m = _dataset(tmp_path / "ds")
    out = tmp_path / "out"
    assert main(["run", "--suite", str(_suite(tmp_path / "a.toml", m, "a")), "--out", str(out), "--no-report"]) == 0
    first = _clip_values(out / "store", "a-", "psnr")
    assert 15 < first["c0"] < 30
    files = sorted((out / "store" / "features").glob("*/*.npz"))
    assert len(files) == 2
    for f in files:                        # an edited file, written as a valid .npz: MSE divided by 1000
        with np.load(f) as z:
            d = {k: z[k] for k in z.files}
        d["mse"] = d["mse"] / 1000
        np.savez(f, **d)
    capsys.readouterr()
    assert main(["run", "--suite", str(_suite(tmp_path / "b.toml", m, "b")), "--out", str(out), "--no-report"]) == 0
    err = capsys.readouterr()
    second = _clip_values(out / "store", "b-", "psnr")
    assert second == pytest.approx(first, abs=1e-12)           # old code: about 30 dB more
    text = err.out + err.err
    assert "feature cache: 1 cached part(s) not used, recomputed: psnr/pair" in text and "does not match" in text
    assert "clip c0" in text and "clip c1" in text
    # the recomputed entries are trusted again: a third run reads them without a note
    assert main(["run", "--suite", str(_suite(tmp_path / "c.toml", m, "c")), "--out", str(out), "--no-report"]) == 0
    err = capsys.readouterr()
    assert "feature cache" not in err.out + err.err
    assert _clip_values(out / "store", "c-", "psnr") == pytest.approx(first, abs=1e-12)


def test_a_persistent_cache_outside_a_store_checks_digests_too(tmp_path: Path):
    from moee_bench.bench.suite.store import FeatureStore

    cache = FeatureStore(tmp_path / "f")
    cache.put("ab12", {"x": np.arange(3.0)})
    assert np.array_equal(FeatureStore(tmp_path / "f").get("ab12")["x"], np.arange(3.0))
    f = tmp_path / "f" / "ab" / "ab12.npz"
    np.savez(f, x=np.zeros(3))
    again = FeatureStore(tmp_path / "f")
    assert again.get("ab12") is None and "does not match" in again.rejected["ab12"]
    stray = tmp_path / "f" / "cd" / "cd34.npz"               # a file nobody recorded is not trusted either
    stray.parent.mkdir()
    np.savez(stray, x=np.ones(2))
    assert again.get("cd34") is None and "no digest" in again.rejected["cd34"]
    assert not list((tmp_path / "f").glob("*/*.sha256"))      # the digest lives in the index, not beside the file


# 6 -- CSV formula injection --------------------------------------------------------------------------------
HOSTILE_CELLS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "-7", "plain"]


def test_csv_exports_neutralise_formulas_and_leave_numbers_and_parquet_json_alone(tmp_path: Path):
    import csv

    import pandas as pd

    st = ResultStore(tmp_path / "st")
    st.put_run("r", dataset="d", split="test", meta={})
    for i, cid in enumerate(HOSTILE_CELLS):
        st.put_clip("r", "=cmd|' /C calc'!A0", cid, values={"psnr": -1.5 - i}, status={"psnr": "ok"},
                    info={"identity": "@id"})
    st.close()
    for cmd in (["export", "--store", str(tmp_path / "st"), "--out", str(tmp_path / "ex")],
                ["report", "--store", str(tmp_path / "st"), "--out", str(tmp_path / "rep"), "--leaderboard", ""]):
        assert main(cmd) == exitcodes.OK
        out = Path(cmd[4])
        with open(out / "clips.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        by_value = {float(r["psnr"]): r for r in rows}
        for i, cid in enumerate(HOSTILE_CELLS):
            r = by_value[-1.5 - i]                               # numbers untouched, negative ones included
            assert r["clip_id"] == (cid if cid in ("-7", "plain") else "'" + cid)
            assert r["method"] == "'=cmd|' /C calc'!A0" and r["identity"] == "'@id"
        assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for r in rows for v in r.values())
        pq = pd.read_parquet(out / "clips.parquet")
        assert sorted(pq.clip_id) == sorted(HOSTILE_CELLS) and set(pq.method) == {"=cmd|' /C calc'!A0"}
        doc = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
        if doc:
            assert "=cmd|' /C calc'!A0" in doc["r"]


# 5 -- the estimator a report prints ------------------------------------------------------------------------
def _kid_store(folder: Path, n: int = 6) -> tuple[ResultStore, list[str]]:
    """A finished run whose KID aggregate has its SE and whose clips' FID features are cached per part."""
    from moee_bench.metrics.visual.kid import kernel_from_features

    rng = np.random.default_rng(0)
    feats = [{"pred": rng.normal(0.3, 1, (12, 6)), "gt": rng.normal(0, 1, (12, 6))} for _ in range(n)]
    st = ResultStore(folder)
    st.put_run("r", dataset="d", split="test", meta={})
    keys = []
    for i, f in enumerate(feats):
        parts = {side: f"{i:02x}{side[0] == 'p':d}" + "cd" * 10 for side in ("pred", "gt")}
        for side, key in parts.items():
            st.features.put(key, {"x": f[side]})
        st.put_clip("r", "m", f"c{i}", values={}, status={"kid": "ok"})
        st.put_feature_keys("r", "m", f"c{i}", {"kid": parts})
        keys.append(parts["gt"])
    k = kernel_from_features([{"pred": f["pred"], "gt": f["gt"]} for f in feats])
    st.put_aggregates("r", "m", {"kid": k["kid"], "kid_se": k["kid_se"]})
    return st, keys


def _kid_cell(md: str) -> str:
    head, row = [l for l in md.splitlines() if l.startswith("| ")][:2]
    return dict(zip([h.strip() for h in head.split("|")], [c.strip() for c in row.split("|")]))["KID ↓"]


def test_report_names_the_interval_of_each_cell_and_why_no_bootstrap(tmp_path: Path, capsys):
    st, keys = _kid_store(tmp_path / "st")
    st.close()
    rep = ["report", "--store", str(tmp_path / "st"), "--out", str(tmp_path / "rep"), "--set-bootstrap", "20",
           "--leaderboard", ""]
    assert main(rep) == exitcodes.OK
    md = (tmp_path / "rep" / "LEADERBOARD.md").read_text()
    assert _kid_cell(md).endswith("] bootstrap")
    gone = next((tmp_path / "st" / "features").glob(f"*/{keys[3]}.npz"))
    gone.unlink()                                     # one cached feature file lost
    assert main(rep) == exitcodes.OK
    md = (tmp_path / "rep" / "LEADERBOARD.md").read_text()
    assert _kid_cell(md).endswith("] ±1.96 SE")       # old code: the ± SE interval, unnamed, under "bootstrap"
    assert "KID: no bootstrap: the cached kid features of 1 of 6 clips cannot be used (c3 (kid/gt: file missing))" in md
    assert "the interval shown is ±1.96 SE" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "±1.96 SE" in html
