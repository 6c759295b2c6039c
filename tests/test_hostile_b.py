"""Hostile cases of issue 31, part B: a tampered feature cache, the estimator a report prints, CSV formula
injection, manifests, suites, stores, audio and resources. Each case goes through the CLI a user runs and
checks a result built with a known answer (the first run's numbers, the file's own bytes, the README)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
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
    assert "feature cache: " not in err.out + err.err
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


# manifests -------------------------------------------------------------------------------------------------
BAD_CLIP_FIELDS = {
    "emotion": ({"kind": "mixture", "weights": {"happiness": 0.25, "surprise": 0.25}}, "mixture weights sum to 0.5, not 1"),
    "identity": (["a"], "identity must be a non-empty string"),
    "split": (3, "split must be a string, got 3"),
    "aus": ({"AU1": "high"}, "aus must be an object of AU name -> finite number"),
    "text": (5, "text must be a string, got 5"),
    "extra": ("s", "extra must be a JSON object"),
    "video": ("v/c\n0.mp4", "contains a newline"),
}


@pytest.mark.parametrize("field", sorted(BAD_CLIP_FIELDS))
def test_wrong_clip_fields_are_named_by_validate_and_refused_by_score(tmp_path: Path, field: str, capsys):
    m = _dataset(tmp_path / "ds")
    body = json.loads(m.read_text())
    value, msg = BAD_CLIP_FIELDS[field]
    body["clips"][0][field] = value
    bad = tmp_path / "ds" / "bad.json"
    bad.write_text(json.dumps(body))
    assert main(["data", "validate", str(bad), "--strict"]) == exitcodes.FAILED_CLIPS
    out = capsys.readouterr().out
    assert msg in out and "clip c0: " in out
    assert main(["score", "--pred", str(tmp_path / "ds" / "m0"), "--manifest", str(bad), "--split", "test",
                 "--metrics", "psnr", "--json", str(tmp_path / "s.json")]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and not (tmp_path / "s.json").exists()


def test_mixture_overflow_is_refused_not_zeroed():
    from moee_bench.bench.core.emotions import EmotionSpec
    from moee_bench.bench.core.errors import EmotionLabelError

    with pytest.raises(EmotionLabelError, match="overflow"):
        EmotionSpec.from_dict({"kind": "mixture", "weights": [1e308, 1e308, 0, 0, 0, 0]})
    spec = EmotionSpec.from_dict({"kind": "mixture", "weights": {"happiness": 0.8, "surprise": 0.2}})
    assert max(spec.weights) == 0.8 and sum(spec.weights) == 1.0       # a normalised mixture is kept as written


@pytest.mark.parametrize("change, msg", [({"schema_version": "1"}, "schema_version must be a whole number, got '1'"),
                                         ({"schema_version": 1.5}, "schema_version must be a whole number, got 1.5"),
                                         ({"compounds": {"x": "ab"}}, "'compounds' must be an object of name -> [emotion"),
                                         ({"compounds": ["a"]}, "'compounds' must be an object of name -> [emotion"),
                                         ({"compounds": {"x": ["happiness", "nope"]}}, "compound 'x' must name two"),
                                         ({"meta": [1]}, "'meta' must be a JSON object")])
def test_malformed_manifest_headers_are_one_line_errors(tmp_path: Path, change: dict, msg: str, capsys):
    m = _dataset(tmp_path / "ds")
    body = json.loads(m.read_text())
    body.update(change)
    m.write_text(json.dumps(body))
    assert main(["data", "validate", str(m)]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_folder_import_reads_an_excel_bom_csv_and_refuses_a_newline_path(tmp_path: Path, capsys):
    root = tmp_path / "ds"
    _dataset(root)
    csv_path = tmp_path / "list.csv"
    csv_path.write_bytes("path,emotion,identity\r\nv/c0.mp4,happy,p0\r\nv/c1.mp4,sad,p1\r\n".encode("utf-8-sig"))
    out = tmp_path / "m.json"
    assert main(["data", "import", "folder", str(root), "--csv", str(csv_path), "--out", str(out)]) == exitcodes.OK
    clips = json.loads(out.read_text())["clips"]
    assert [c["video"] for c in clips] == ["v/c0.mp4", "v/c1.mp4"]     # old code: "missing columns ['path']"
    odd = root / "v" / "c\n2.mp4"
    odd.write_bytes((root / "v" / "c0.mp4").read_bytes())
    csv_path.write_text('path,emotion\n"v/c\n2.mp4",happy\n')
    out2 = tmp_path / "m2.json"
    assert main(["data", "import", "folder", str(root), "--csv", str(csv_path), "--out", str(out2)]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "contains a newline" in err and not out2.exists()


# suites ----------------------------------------------------------------------------------------------------
def test_a_relative_precomputed_folder_is_relative_to_the_suite_file(tmp_path: Path, monkeypatch, capsys):
    m = _dataset(tmp_path / "ds")
    suite = _suite(tmp_path / "ds" / "rel.toml", m, "rel", folder="m0")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--no-report"]) == exitcodes.OK
    got = _clip_values(out / "store", "rel-", "psnr")
    assert set(got) == {"c0", "c1"} and all(15 < v < 30 for v in got.values())   # old code: both clips missing
    for body, msg in (("", "`precomputed` needs `folder"), ('folder = "nosuch"', "does not exist")):
        bad = tmp_path / "ds" / "bad.toml"
        bad.write_text(f'name = "bad"\ndataset = "{m}"\nsplit = "test"\nmetrics = ["psnr"]\n'
                       f'[[methods]]\nname = "precomputed"\nlabel = "m0"\n{body}\n')
        capsys.readouterr()
        assert main(["run", "--suite", str(bad), "--out", str(tmp_path / "out2")]) == exitcodes.USAGE
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()


# stores ----------------------------------------------------------------------------------------------------
def test_a_full_disk_during_run_is_one_line_and_a_rerun_completes_identically(tmp_path: Path, monkeypatch, capsys):
    m = _dataset(tmp_path / "ds", n=3)
    out = tmp_path / "out"
    assert main(["run", "--suite", str(_suite(tmp_path / "a.toml", m, "a")), "--out", str(out), "--no-report"]) == 0
    with ResultStore(out / "store") as st:
        pages = st.conn.execute("PRAGMA page_count").fetchone()[0]
    real = sqlite3.connect

    def full(*a, **k):                 # the database file may not grow: SQLite's own SQLITE_FULL, as on a full disk
        c = real(*a, **k)
        c.execute(f"PRAGMA max_page_count = {pages}")
        return c

    monkeypatch.setattr(sqlite3, "connect", full)
    capsys.readouterr()
    rc = main(["run", "--suite", str(_suite(tmp_path / "b.toml", m, "b")), "--out", str(out), "--no-report"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == exitcodes.USAGE                                   # old code: sqlite3.OperationalError traceback
    assert err.count("moee-bench: error:") == 1
    line = err[err.index("moee-bench: error:"):].splitlines()[0]
    assert "the disk is full" in line and "Traceback" not in err
    assert main(["run", "--suite", str(_suite(tmp_path / "b.toml", m, "b")), "--out", str(out), "--no-report"]) == 0
    assert _clip_values(out / "store", "b-", "psnr") == pytest.approx(_clip_values(out / "store", "a-", "psnr"), abs=0)


def _finished_store(folder: Path) -> Path:
    st = ResultStore(folder)
    st.put_run("r", dataset="d", split="test", meta={})
    for i in range(40):
        st.put_clip("r", "m", f"c{i}", values={"psnr": 30.0 + i}, status={"psnr": "ok"}, info={"identity": "x" * 200})
    st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    st.close()
    return folder


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_or_truncated_store_is_one_line(tmp_path: Path, damage: str, capsys):
    store = _finished_store(tmp_path / "st")
    db = store / "results.sqlite"
    data = db.read_bytes()
    db.write_bytes(b"not sqlite at all " * 100 if damage == "garbage" else data[: len(data) // 2])
    for cmd in (["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--leaderboard", ""],
                ["export", "--store", str(store), "--out", str(tmp_path / "ex")],
                ["compare", str(store), str(store)]):
        assert main(cmd) == exitcodes.USAGE, cmd
        err = capsys.readouterr().err
        assert "is corrupt or truncated" in err and str(db) in err and len(err.strip().splitlines()) == 1


def test_read_only_stores_are_read_by_report_export_and_compare(tmp_path: Path, monkeypatch, capsys):
    store = _finished_store(tmp_path / "st")
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    real = sqlite3.connect

    def read_only_media(database, *a, **k):    # as on a read-only mount (root ignores permission bits)
        if not (k.get("uri") and ("mode=ro" in str(database) or "immutable=1" in str(database))):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *a, **k)

    monkeypatch.setattr(sqlite3, "connect", read_only_media)
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--leaderboard", ""]) == exitcodes.OK
    assert main(["export", "--store", str(store), "--out", str(tmp_path / "ex")]) == exitcodes.OK
    assert main(["compare", str(store), str(store), "--metrics", "psnr"]) == exitcodes.OK
    assert "c39" in (tmp_path / "ex" / "clips.csv").read_text()
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file() and p.name in before} == before


def test_a_store_of_a_newer_schema_is_not_written_into(tmp_path: Path, capsys):
    store = _finished_store(tmp_path / "out" / "store")
    with sqlite3.connect(store / "results.sqlite") as c:
        c.execute("UPDATE store_info SET value='99' WHERE key='schema_version'")
    m = _dataset(tmp_path / "ds")
    assert main(["run", "--suite", str(_suite(tmp_path / "a.toml", m, "a")), "--out", str(tmp_path / "out"),
                 "--no-report"]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "has schema version 99, newer than the 1 this moee-bench writes" in err and len(err.strip().splitlines()) == 1
    with ResultStore(store, readonly=True) as st:
        assert [r["run_id"] for r in st.runs()] == ["r"] and st.unfinished_runs() == {}


def test_report_during_a_live_run_says_in_progress(tmp_path: Path, capsys):
    st = ResultStore(tmp_path / "st")
    st.put_run("done", dataset="d", split="test", meta={})
    st.put_clip("done", "m", "c0", values={"psnr": 1.0}, status={"psnr": "ok"})
    st.mark_live("live")                                       # this process writes `live` now
    st.put_clip("live", "m", "c0", values={"psnr": 1.0}, status={"psnr": "ok"})
    with st.transaction() as c:                                # a writer killed with -9: its process is gone
        c.execute("INSERT INTO store_info VALUES('writer:dead:' || ? || ':999999999', ?)", (__import__("socket").gethostname(), "0"))
    st.put_clip("dead", "m", "c0", values={"psnr": 1.0}, status={"psnr": "ok"})
    rep = ["report", "--store", str(tmp_path / "st"), "--out", str(tmp_path / "rep"), "--leaderboard", ""]
    assert main(rep) == exitcodes.OK
    err = capsys.readouterr().err
    assert "run live is in progress (1 clip rows so far, process" in err       # old code: "was interrupted"
    assert "run dead was interrupted" in err
    assert main(rep + ["--run", "live"]) == exitcodes.USAGE
    assert "is in progress" in capsys.readouterr().err
    st.clear_live()
    st.close()
    assert main(rep) == exitcodes.OK and "run live was interrupted" in capsys.readouterr().err


# audio -----------------------------------------------------------------------------------------------------
def test_silent_or_short_audio_is_named_by_sync_and_data_validate(tmp_path: Path, capsys):
    import torch
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (50, 8, 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    pred = tmp_path / "p"
    media.write_video(pred / "silent.mp4", [frames], 25, audio=np.zeros(50 * 640, np.float32))
    media.write_video(pred / "short.mp4", [frames], 25, audio=(0.2 * rng.standard_normal(12 * 640)).astype(np.float32))
    media.write_video(pred / "fine.mp4", [frames], 25, audio=(0.2 * rng.standard_normal(50 * 640)).astype(np.float32))
    js = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--metrics", "sync", "--param", "face_cropped=true", "--weights-dir",
                 str(tmp_path), "--allow-unverified-weights", "--json", str(js)]) == exitcodes.OK
    clips = {c["clip"]: c for c in json.loads(js.read_text())["clips"]}
    assert clips["silent"]["status"]["sync"] == "no_audio"             # old code: ok, with a Sync-C
    assert "digital silence" in clips["silent"]["messages"]["sync"] and "sync_c" not in clips["silent"]
    assert clips["short"]["status"]["sync"] == "ok"
    assert "sync: the audio lasts 0.51 s and the video 2.00 s; scored over the 0.51 s both cover" in clips["short"]["warnings"]
    assert not any(w.startswith("sync:") for w in clips["fine"].get("warnings", []))
    assert "clip short: sync: the audio lasts 0.51 s" in capsys.readouterr().err
    # the same audio as a manifest's driving audio: `data validate` names both clips
    root = tmp_path / "ds"
    (root / "v").mkdir(parents=True)
    recs = []
    for name in ("silent", "short", "fine"):
        (root / "v" / f"{name}.mp4").write_bytes((pred / f"{name}.mp4").read_bytes())
        recs.append(ClipRecord(name, name, f"v/{name}.mp4", parse_emotion("happy"), audio=f"v/{name}.mp4", split="test"))
    man = Manifest("a", root, recs).save(root / "m.json")
    assert main(["data", "validate", str(man), "--strict"]) == exitcodes.FAILED_CLIPS
    out = capsys.readouterr().out
    assert "clip silent: driving audio is digital silence" in out
    assert "clip short: driving audio lasts 0.51 s, the video 2.00 s" in out and "clip fine" not in out


def test_static_streams_a_long_audio_instead_of_holding_every_frame(tmp_path: Path):
    import tracemalloc

    from moee_bench.baselines.base import GenerationRequest
    from moee_bench.baselines.builtin import Static
    from moee_bench.bench.core.media import AUDIO_RATE, read_image, write_image

    ref = write_image(tmp_path / "ref.png", np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    seconds = 120
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, 0.1 * np.sin(np.arange(seconds * AUDIO_RATE) / 20.0), AUDIO_RATE)
    req = GenerationRequest("c", ref, wav, tmp_path / "out.mp4", fps=25.0)
    tracemalloc.start()
    Static({}).generate(req)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    held = seconds * 25 * 96 * 96 * 3                         # 3000 frames held at once: 83 MB
    assert peak < held / 2, (peak, held)                        # old code: > 83 MB
    assert media.probe(req.out_path).n_frames == 3000 and read_image(ref).shape == (96, 96, 3)


# resources -------------------------------------------------------------------------------------------------
def test_out_of_memory_names_the_cause_not_the_gt_file(tmp_path: Path, write_clip, monkeypatch, capsys):
    import moee_bench.bench.core.media as media_mod

    pred = tmp_path / "p"
    write_clip("c0", folder=pred, n=6, size=32)

    def oom(img, size):
        raise MemoryError()

    monkeypatch.setattr(media_mod, "resize_frames", oom)
    js = tmp_path / "s.json"
    rc = main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--size", "8192", "8192",
               "--json", str(js)])
    assert rc == exitcodes.FAILED_CLIPS
    (clip,) = json.loads(js.read_text())["clips"]
    msg = clip["messages"]["psnr"]
    assert msg.startswith("out of memory at frame 0 of") and "8192x8192 RGB frames, 192 MiB each" in msg
    assert "truncated or corrupt" not in msg                   # old code: blamed the file


def test_large_frames_are_fed_in_small_chunks(tmp_path: Path, write_clip, monkeypatch):
    from moee_bench.metrics.core import evaluate as ev
    from moee_bench.metrics.core.base import ClipInput
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics

    pred = write_clip("c0", folder=tmp_path / "p", n=12, size=32)
    gt = write_clip("c0", folder=tmp_path / "g", n=12, size=32, seed=5)
    sizes = []
    real = ev.media.FrameReader

    class Spy(real):
        def __iter__(self):
            for block in super().__iter__():
                sizes.append(len(block))
                yield block

    monkeypatch.setattr(ev.media, "FrameReader", Spy)
    monkeypatch.setattr(ev, "CHUNK_BYTES", 3 * 64 * 64 * 3)    # three 64x64 frames per chunk
    metrics, _ = build_metrics(["psnr"], MetricOptions())
    r = ev.evaluate([ClipInput("c0", pred, gt)], metrics, size=(64, 64), progress=False)
    assert max(sizes) == 3 and r.clips[0].status["psnr"] == "ok"
    whole, _ = build_metrics(["psnr"], MetricOptions())
    monkeypatch.setattr(ev, "CHUNK_BYTES", 2**40)
    assert ev.evaluate([ClipInput("c0", pred, gt)], whole, size=(64, 64), progress=False).clips[0].values == r.clips[0].values


def test_a_full_temp_folder_keeps_ffmpegs_message_whole_and_names_the_folder(tmp_path: Path, monkeypatch, capsys):
    import subprocess

    import torch
    from syncnet_python.SyncNetModel import S

    from moee_bench.metrics.sync import sync_io

    torch.manual_seed(0)
    torch.save(S().state_dict(), tmp_path / "syncnet_v2.model")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (30, 8, 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    media.write_video(tmp_path / "p" / "c0.mp4", [frames], 25, audio=(0.2 * rng.standard_normal(30 * 640)).astype(np.float32))
    noise = "".join(f"[image2 @ 0x55d{i:04d}] Could not write frame {i:06d}\n" for i in range(30))
    stderr = noise + "av_interleaved_write_frame(): No space left on device\nError writing trailer: No space left on device\n"

    real = subprocess.run

    def full(argv, **kw):                 # the JPEG dump into the temporary folder fails as on a full disk
        if not str(argv[-1]).endswith(".jpg"):
            return real(argv, **kw)
        return subprocess.CompletedProcess(argv, 1, "", stderr)

    monkeypatch.setattr(sync_io.subprocess, "run", full)
    js = tmp_path / "s.json"
    assert main(["score", "--pred", str(tmp_path / "p"), "--metrics", "sync", "--param", "face_cropped=true",
                 "--weights-dir", str(tmp_path), "--allow-unverified-weights", "--json", str(js)]) == exitcodes.FAILED_CLIPS
    msg = json.loads(js.read_text())["clips"][0]["messages"]["sync"]
    assert "av_interleaved_write_frame(): No space left on device / Error writing trailer: No space left on device" in msg
    assert "%06d.jpg failed: " in msg and "moee_sync_" in msg               # the folder it could not write into
    assert "pace left" not in msg.replace("space left", "")                    # old code: "...ace left on device" cut


def test_a_full_cache_folder_names_the_folder(tmp_path: Path, monkeypatch, capsys):
    import errno

    m = _dataset(tmp_path / "ds")
    real = Path.write_bytes

    def full(self, data):
        if self.suffix == ".npz":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    rc = main(["run", "--suite", str(_suite(tmp_path / "a.toml", m, "a")), "--out", str(tmp_path / "out"), "--no-report"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.count("moee-bench: error:") == 1
    line = err[err.index("moee-bench: error:"):].splitlines()[0]
    assert rc == exitcodes.USAGE
    assert line.startswith("moee-bench: error: No space left on device writing the feature cache in ")   # first word kept
    assert str(tmp_path / "out" / "store" / "features") in line                                        # old code: no folder


def test_a_prediction_that_is_the_gt_file_is_noted(tmp_path: Path, write_clip):
    pred = tmp_path / "p"
    write_clip("c0", folder=pred, n=6, size=32)
    js = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", str(js)]) == exitcodes.OK
    (clip,) = json.loads(js.read_text())["clips"]
    assert clip["psnr"] == 100.0 and any(w.startswith("same file: pred") for w in clip["warnings"])
