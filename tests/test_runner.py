"""Runner: methods, store rows, missing clips, resume after kill -9, precomputed scoring from the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import media
from moee_bench.bench.cli.app import main
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.suite.store import ResultStore



def _dataset(root: Path, n: int, frames: int = 20, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        cid = f"c{i:02d}"
        v = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
        a = (0.1 * rng.standard_normal(int(frames / 25 * 16000))).astype(np.float32)
        media.write_video(root / "v" / f"{cid}.mp4", [v], 25, audio=a)
        media.write_wav(root / "a" / f"{cid}.wav", a)
        media.write_image(root / "r" / f"{cid}.png", v[0])
        clips.append(ClipRecord(cid, f"id{i % 2}", f"v/{cid}.mp4", parse_emotion("happy"), audio=f"a/{cid}.wav",
                                ref_image=f"r/{cid}.png", split="test"))
    return Manifest("tiny", root, clips).save(root / "manifest.json")


def _suite(path: Path, manifest: Path, methods: str, metrics: str = '["psnr", "ssim"]') -> Path:
    path.write_text(f'name = "t"\ndataset = "{manifest}"\nsplit = "test"\nmetrics = {metrics}\nseed = 0\n{methods}')
    return path


def test_run_stores_every_clip_and_counts_missing(tmp_path: Path):
    m = _dataset(tmp_path / "ds", 3)
    pre = tmp_path / "pre"
    media.write_video(pre / "c00.mp4", [np.zeros((20, 64, 64, 3), np.uint8)], 30)   # 30 fps: normalised to 25
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "static"\n'
                                       f'[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == 0
    with ResultStore(tmp_path / "out" / "store") as st:
        (run,) = st.runs()
        agg = st.aggregates(run["run_id"]).set_index(["method", "key"])["value"]
        assert agg[("ground-truth", "psnr")] > agg[("static", "psnr")]
        assert agg[("precomputed", "n_missing")] == 2
        status = st.status_table(run["run_id"])
        miss = status[(status.method == "precomputed") & (status.clip_id == "c01")]
        assert set(miss.status) == {"missing"}
        vals = st.clip_table(run["run_id"])
        row = vals[(vals.method == "precomputed") & (vals.clip_id == "c01")]
        assert row["psnr"].isna().all()        # missing is never scored 0
        gen = st.generation("precomputed", "c00", next(iter(
            r[0] for r in st.conn.execute("SELECT config_hash FROM generations WHERE method='precomputed'"))))
        assert "30 -> 25 fps" in gen["normalisation"]["fps_conversion"]
        assert run["meta"]["versions"]["torch"] and "suite_hash" in run["meta"]
    assert (tmp_path / "out" / "report" / "LEADERBOARD.md").exists()


def test_kill_minus_9_then_resume_loses_and_repeats_nothing(tmp_path: Path):
    m = _dataset(tmp_path / "ds", 10, frames=60, size=96)
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "static"\n[[methods]]\nname = "ground-truth"\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "moee_bench.bench", "run", "--suite", str(s), "--out", str(out), "--no-report"]
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = out / "store" / "results.sqlite"
    deadline = time.time() + 120
    done_at_kill = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    done_at_kill = c.execute("SELECT COUNT(*) FROM clip_info").fetchone()[0]
            except sqlite3.Error:
                done_at_kill = 0
            if done_at_kill >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(30)
    assert 2 <= done_at_kill < 20, f"kill landed outside the run ({done_at_kill} rows)"
    with sqlite3.connect(db) as c:
        gens_before = {r[0]: r[1] for r in c.execute("SELECT clip_id, sha256 FROM generations WHERE method='static'")}
        n_before = c.execute("SELECT COUNT(*) FROM generations WHERE status='ok'").fetchone()[0]
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "videos" / "static").glob("*.mp4")}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM clip_info").fetchone()[0] == 20
        assert c.execute("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, method, clip_id FROM clip_info)").fetchone()[0] == 20
        assert c.execute("SELECT COUNT(*) FROM clip_values WHERE key='psnr'").fetchone()[0] == 20
        gens_after = {r[0]: r[1] for r in c.execute("SELECT clip_id, sha256 FROM generations WHERE method='static'")}
    for cid, sha in gens_before.items():          # finished generations were not redone
        assert gens_after[cid] == sha
        assert (out / "videos" / "static" / f"{cid}.mp4").stat().st_mtime_ns == mtimes[f"{cid}.mp4"]
    import re

    generated, reused = map(int, re.search(r"(\d+) videos generated, (\d+) reused", r.stdout).groups())
    assert reused == n_before and generated == 20 - n_before


def test_score_precomputed_folder_against_split_from_cli(tmp_path: Path, capsys):
    import json

    m = _dataset(tmp_path / "ds", 2)
    pred = tmp_path / "pred"
    for cid in ("c00", "c01"):
        fr = media.read_frames(tmp_path / "ds" / "v" / f"{cid}.mp4")
        media.write_video(pred / f"{cid}.mp4", [fr[::-1].copy()], 25)
    out = tmp_path / "o.json"
    assert main(["score", "--pred", str(pred), "--manifest", str(m), "--metrics", "psnr,ssim,fid", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["metrics"]["psnr"] < 20 and doc["metrics"]["fid"] is None and "missing and were not fetched" in doc["metrics"]["fid_reason"]
    assert {c["clip"] for c in doc["clips"]} == {"c00", "c01"}
    assert doc["protocol"]["fps"] == 25.0 and "versions" in doc["protocol"]


def test_torchrun_two_processes_equal_one(tmp_path: Path):
    m = _dataset(tmp_path / "ds", 5, frames=20)
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "static"\n')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "moee_bench.bench", "run", "--suite", str(s), "--out", str(tmp_path / "o1"), "--no-report"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                          "-m", "moee_bench.bench.cli.torchrun", "--suite", str(s), "--out", str(tmp_path / "o2"), "--no-report"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    with ResultStore(tmp_path / "o1" / "store") as a, ResultStore(tmp_path / "o2" / "store") as b:
        ra, rb = a.runs()[0], b.runs()[0]
        assert rb["meta"]["world_size"] == 2
        aa = a.aggregates(ra["run_id"]).set_index("key")["value"]
        ab = b.aggregates(rb["run_id"]).set_index("key")["value"]
        for k in ("psnr", "psnr_dataset", "ssim", "n_clips", "n_missing"):
            assert ab[k] == pytest.approx(aa[k], rel=1e-12, abs=0), k      # float64 sums: order only
        ca = a.clip_table(ra["run_id"]).set_index("clip_id")["psnr"].sort_index()
        cb = b.clip_table(rb["run_id"]).set_index("clip_id")["psnr"].sort_index()
        assert list(ca.index) == list(cb.index) and np.array_equal(ca.to_numpy(), cb.to_numpy())


def test_runner_stages_run_alone(tmp_path: Path):
    """Each stage of a run can be called by itself: prepare, generate, score, merge, aggregate."""
    from moee_bench.bench.suite.runner import SuiteRunner
    from moee_bench.bench.suite.spec import load_suite

    m = _dataset(tmp_path / "ds", 3)
    pre = tmp_path / "pre"
    media.write_video(pre / "c01.mp4", [np.zeros((20, 64, 64, 3), np.uint8)], 25)
    suite = load_suite(_suite(tmp_path / "s.toml", m, f'[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n'))
    r = SuiteRunner(suite, tmp_path / "out", report=False, log=lambda *a, **k: None)
    r.prepare()
    assert [c.clip_id for c in r.clips] == ["c00", "c01", "c02"] and [x.name for x in r.metrics] == ["psnr", "ssim"]
    gen = r.generate(suite.methods[0])
    assert [c.clip_id for c in gen.ok] == ["c01"] and [c.clip_id for c in gen.missing] == ["c00", "c02"]
    assert (gen.video_dir / "c01.mp4").is_file() and gen.n_generated == 1
    r.score(gen)
    assert set(r.store.clip_table(r.run_id).clip_id) == {"c00", "c01", "c02"}
    assert r.metrics[0].state_dict()["frames"]["count"] == 20
    assert r.merge()
    agg = r.aggregate(gen, n_missing=len(gen.missing))
    assert agg["n_missing"] == 2 and agg["psnr"] < 20
    r.finish()
    with ResultStore(tmp_path / "out" / "store") as st:
        assert [x["run_id"] for x in st.runs()] == [r.run_id]


def test_run_computes_each_aggregate_once_per_method(tmp_path: Path):
    """A set-level distance (FID's sqrtm: seconds at 2048 dims) is computed once per method, after the
    merge, not also at the end of scoring (it was twice: half of a K-method suite's time)."""
    from unittest import mock

    from moee_bench.metrics.visual.psnr import PSNR

    m = _dataset(tmp_path / "ds", 2)
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "static"\n',
               metrics='["psnr"]')
    with mock.patch.object(PSNR, "compute", autospec=True, side_effect=PSNR.compute) as spy:
        assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    assert spy.call_count == 2
