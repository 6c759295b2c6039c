"""Hostile input and broken environments (issue 17): each case is a clear one-line error before any
work, or a correct per-clip status; nothing is lost and nothing is scored against the wrong video."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.paths import name_from_stem, safe_name

HOSTILE_IDS = ["a b", "a_b", "a/b", ".hidden", "hidden", "...", "..", "x" * 300, "x" * 300 + "y", "é", "日本",
               "50%", "a%20b", "a=20b", "50=", "a~b", "../../etc/passwd"]


def _video(path: Path, n: int = 8, seed: int = 0, fps: float = 25.0, size: int = 32) -> Path:
    """Blocky frames (compressible, so a re-encode stays close) that differ strongly between seeds."""
    rng = np.random.default_rng(seed)
    frames = np.kron(rng.integers(0, 255, (n, size // 8, size // 8, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)
    audio = (0.1 * rng.standard_normal(int(16000 * n / fps))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    return media.write_video(path, [frames], fps, audio=audio)


def _manifest(root: Path, ids: list[str], **extra) -> Path:
    clips = []
    for i, cid in enumerate(ids):
        _video(root / "v" / f"{i}.mp4", seed=i + 1)
        clips.append(ClipRecord(cid, f"p{i}", f"v/{i}.mp4", parse_emotion("happy"), split="test", **extra))
    return Manifest("hostile", root, clips).save(root / "m.json")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if scoring starts (options must be refused before any video is decoded)."""
    import moee_bench.metrics.core.evaluate as ev

    def boom(*a, **k):
        raise AssertionError("scoring started before the options were checked")

    monkeypatch.setattr(ev, "evaluate", boom)
    monkeypatch.setattr(ev, "score_clip", boom)


def _rc(argv: list[str]) -> int:
    """main()'s exit status, argparse's SystemExit included."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


# 1 -- clip ids -> file names ---------------------------------------------------------------------
def test_file_names_are_injective_reversible_and_plain_ids_unchanged():
    names = [safe_name(i) for i in HOSTILE_IDS]
    assert len(set(names)) == len(names)
    assert len(set(n.casefold() for n in names)) == len(names)      # =XX escapes are upper-case only
    for cid, n in zip(HOSTILE_IDS, names):
        assert "/" not in n and not n.startswith(".") and len(n.encode()) <= 120
        assert name_from_stem(n) == (cid if "~" not in n else None)
    assert [safe_name(i) for i in ("c001", "M003_angry_level_1-001", "clip.v2")] == ["c001", "M003_angry_level_1-001",
                                                                                      "clip.v2"]


def test_colliding_ids_generate_and_score_their_own_videos(tmp_path: Path):
    ids = ["a b", "a_b", "a/b", ".hidden", "hidden"]
    m = _manifest(tmp_path / "ds", ids)
    out = tmp_path / "gen"
    assert main(["generate", "--method", "ground-truth", "--manifest", str(m), "--out", str(out)]) == 0
    assert len(list(out.glob("*.mp4"))) == len(ids)
    js = tmp_path / "s.json"
    assert main(["score", "--pred", str(out), "--manifest", str(m), "--metrics", "psnr", "--json", str(js)]) == 0
    clips = {c["clip"]: c for c in json.loads(js.read_text())["clips"]}
    assert set(clips) == set(ids)
    assert all(c["psnr"] > 30 for c in clips.values())            # each against its own GT (another clip: ~8 dB)
    # the same folder without a manifest: file names read back to the real ids
    assert main(["score", "--pred", str(out), "--gt", str(out), "--metrics", "psnr", "--json", str(js)]) == 0
    assert {c["clip"] for c in json.loads(js.read_text())["clips"]} == set(ids)


def test_precomputed_reads_a_users_folder_of_raw_ids_and_encoded_names(tmp_path: Path):
    from moee_bench.baselines.base import GenerationRequest
    from moee_bench.baselines.builtin import Precomputed
    from moee_bench.bench.core.errors import ClipError

    user = tmp_path / "user"
    _video(user / "a b.mp4", seed=1)
    _video(user / f"{safe_name('a/b')}.mp4", seed=2)
    ref = tmp_path / "r.png"
    media.write_image(ref, np.zeros((32, 32, 3), np.uint8))
    meth = Precomputed({"folder": str(user), "mux_audio": False})
    srcs = {"a b": user / "a b.mp4", "a/b": user / f"{safe_name('a/b')}.mp4"}
    for cid, other in (("a b", "a/b"), ("a/b", "a b")):
        req = GenerationRequest(cid, ref, srcs[cid], tmp_path / "o" / f"{safe_name(cid)}.mp4")
        meth.generate(req)
        got = media.read_frames(req.out_path).astype(int)
        own, wrong = (np.abs(got - media.read_frames(srcs[k]).astype(int)).mean() for k in (cid, other))
        assert own < wrong / 4
    with pytest.raises(ClipError, match="missing"):            # "a_b" must not take "a b"'s video
        meth.generate(GenerationRequest("a_b", ref, user / "a b.mp4", tmp_path / "o" / "x.mp4"))


def test_data_validate_reports_unsafe_ids(tmp_path: Path, capsys):
    m = _manifest(tmp_path / "ds", ["Clip1", "clip1", " padded", "a b"])
    assert main(["data", "validate", str(m)]) == 0
    out = capsys.readouterr().out
    assert "clip Clip1: " in out and "only in letter case" in out and "leading or trailing spaces" in out
    assert "note: clip a b: videos of this clip are named a=20b.mp4" in out


# 2 -- outputs checked before work, written atomically ---------------------------------------------
def test_unusable_json_paths_fail_before_scoring(tmp_path: Path, no_work, capsys, monkeypatch):
    m = _manifest(tmp_path / "ds", ["c0"])
    base = ["score", "--pred", str(tmp_path / "ds" / "v"), "--manifest", str(m), "--metrics", "psnr", "--json"]
    assert main(base + [str(tmp_path)]) == exitcodes.USAGE
    assert "is a folder" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(base + [str(f / "out.json")]) == exitcodes.USAGE
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    import moee_bench.bench.core.paths as paths

    monkeypatch.setattr(paths.os, "access", lambda p, mode: Path(p) != ro)      # read-only even for root
    assert main(base + [str(ro / "out.json")]) == exitcodes.USAGE
    assert "not writable" in capsys.readouterr().err


def test_full_disk_keeps_the_previous_scores(tmp_path: Path, write_clip, monkeypatch, capsys):
    pred = tmp_path / "p"
    write_clip("c0", folder=pred, n=6, size=32)
    js = tmp_path / "scores.json"
    js.write_text('{"previous": "valid"}')
    real = Path.write_text

    def full(self, data, *a, **k):              # half the bytes, then ENOSPC
        real(self, data[: len(data) // 2], *a, **k)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    rc = main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", str(js)])
    monkeypatch.undo()
    assert rc == exitcodes.USAGE and "No space left" in capsys.readouterr().err
    assert json.loads(js.read_text()) == {"previous": "valid"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []      # no temp file left
    link = tmp_path / "link.json"                 # a link is followed, not replaced; a device is written in place
    link.symlink_to(js)
    assert main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", str(link)]) == 0
    assert link.is_symlink() and "clips" in json.loads(js.read_text())
    assert main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", os.devnull]) == 0
    assert not Path(os.devnull).is_file()


# 3 -- numeric options and params ------------------------------------------------------------------
@pytest.mark.parametrize("opt", [["--fps", "-5"], ["--fps", "inf"], ["--fps", "nan"], ["--fps", "1e9"], ["--size", "0", "0"],
                                 ["--size", "8", "8"], ["--param", "akd_stride=0"], ["--param", "psnr_mode=both"],
                                 ["--param", "noequals"], ["--device", "gpu"], ["--device", "cuda:7"],
                                 ["--metrics", "psnr,psnr"]])
def test_bad_numbers_are_one_line_errors_before_work(tmp_path: Path, no_work, opt):
    m = _manifest(tmp_path / "ds", ["c0"])
    metrics = "psnr,ssim,akd" if "akd" in opt[-1] else "psnr,ssim"
    argv = ["score", "--pred", str(tmp_path / "ds" / "v"), "--manifest", str(m), "--json", str(tmp_path / "o.json")]
    argv += [] if opt[0] == "--metrics" else ["--metrics", metrics]
    assert _rc(argv + opt) == exitcodes.USAGE


def test_suite_numbers_are_checked(tmp_path: Path):
    from moee_bench.bench.suite.spec import load_suite

    for line, err in (("fps = -5.0", "fps must be"), ("fps = nan", "fps must be"), ("size = [0, 64]", "height"),
                      ("size = [63, 64]", "even"), ("seed = -1", "seed")):
        p = tmp_path / "s.toml"
        p.write_text(f'name = "s"\ndataset = "sample"\nmetrics = ["psnr"]\n{line}\n[[methods]]\nname = "static"\n')
        with pytest.raises(BenchError, match=err):
            load_suite(p)


def test_throughput_refuses_unknown_clips_instead_of_timing_others(tmp_path: Path, capsys):
    m = _manifest(tmp_path / "ds", ["c0", "c1"])
    assert main(["throughput", "--method", "static", "--manifest", str(m), "--clips", "nosuch"]) == exitcodes.USAGE
    assert "nosuch" in capsys.readouterr().err


# 4 -- ffmpeg without a shared link ----------------------------------------------------------------
def test_stale_ffmpeg_link_in_the_cache_does_not_break_sync(tmp_path: Path, monkeypatch):
    from moee_bench.bench.core import media
    from moee_bench.metrics.sync import sync_io

    sync_io.ffmpeg_exe.cache_clear()
    video = media.write_video(tmp_path / "v.mp4", [np.zeros((2, 16, 16, 3), np.uint8)], 25)
    cache = tmp_path / "cache"
    (cache / "bin").mkdir(parents=True)
    (cache / "bin" / "ffmpeg").symlink_to(tmp_path / "deleted-venv" / "ffmpeg")      # dangling: that venv is gone
    monkeypatch.setenv("MOEE_BENCH_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")                                       # no ffmpeg on PATH
    assert sync_io.jpeg_frames(video, tmp_path / "jpeg").shape == (2, 16, 16, 3)   # the Sync pixel path's ffmpeg step
    assert [p.name for p in (cache / "bin").iterdir()] == ["ffmpeg"]
    assert os.environ["PATH"] == "/usr/bin:/bin"                                       # nothing added for later calls


# 5 -- per-clip warnings and failed clips ----------------------------------------------------------
def test_warnings_name_the_clip_and_all_failed_exits_failed_clips(tmp_path: Path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _video(gt / "short.mp4", n=30, seed=1)
    _video(pred / "short.mp4", n=1, seed=1)
    _video(gt / "rate.mp4", n=10, seed=2)
    _video(pred / "rate.mp4", n=12, seed=2, fps=30.0)
    js = tmp_path / "o.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(js)]) == 0
    err = capsys.readouterr().err
    assert "clip short: truncated: length mismatch" in err and "clip rate: resampled: pred 30 -> 25 fps" in err
    (pred / "short.mp4").write_bytes(b"")
    (pred / "rate.mp4").write_bytes(b"\x00" * 100)
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(js)]) == \
        exitcodes.FAILED_CLIPS
    out = capsys.readouterr().out
    assert "every clip failed" in out and "clip short: psnr" in out and "clip rate: psnr" in out


def test_leaderboard_notes_list_clip_warnings(tmp_path: Path):
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.reports.leaderboard import render_markdown

    st = ResultStore(tmp_path / "st")
    st.put_run("r", dataset="d", split="test", meta={})
    st.put_clip("r", "m|x", "c`1", values={"psnr": 30.0}, status={"psnr": "ok"},
                info={"warnings": ["length mismatch at 25 fps: pred has 1 frames, GT has 59; truncated to 1"]})
    st.put_aggregates("r", "m|x", {"psnr": 30.0, "n_clips": 1})
    md = render_markdown(st)
    assert "length mismatch at 25 fps: pred has 1 frames" in md and "`c'1`" in md and "`m\\|x`" in md


# 6, 7 -- unknown params, suite validated before anything is created --------------------------------
def test_unknown_params_are_refused_naming_the_known_ones(tmp_path: Path, no_work, capsys):
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics

    m = _manifest(tmp_path / "ds", ["c0"])
    argv = ["score", "--pred", str(tmp_path / "ds" / "v"), "--manifest", str(m), "--metrics", "psnr,akd",
            "--json", str(tmp_path / "o.json"), "--param", "akd_strid=5"]
    assert main(argv) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "unknown key 'akd_strid'" in err and "akd_landmarks, akd_stride, psnr_mode" in err
    with pytest.raises(BenchError, match="psnr_mode"):
        build_metrics(["psnr"], MetricOptions(params={"psnr_mod": "dataset"}))
    with pytest.raises(BenchError, match="metric 'psnr', which is not requested"):
        build_metrics(["ssim"], MetricOptions(params={"psnr_mode": "dataset"}))


@pytest.mark.parametrize("bad, err", [('method_name = "nosuch"', "unknown method 'nosuch'"),
                                      ('metric_name = "psnrr"', "unknown metric 'psnrr'"),
                                      ('param = "akd_strid = 5"', "unknown key 'akd_strid'"),
                                      ('split = "nosplit"', "has no clips"),
                                      ('extra = "metricz = 1"', "unknown keys")])
def test_a_bad_suite_creates_nothing(tmp_path: Path, capsys, bad: str, err: str):
    m = _manifest(tmp_path / "ds", ["c0"])
    key, _, val = bad.partition(" = ")
    val = val.strip('"')
    method = val if key == "method_name" else "static"
    metric = val if key == "metric_name" else "psnr"
    split = val if key == "split" else "test"
    tail = f"[params]\n{val}\n" if key == "param" else ""
    head = f"{val}\n" if key == "extra" else ""
    suite = tmp_path / "s.toml"
    suite.write_text(f'{head}name = "s"\ndataset = "{m}"\nsplit = "{split}"\nmetrics = ["{metric}"]\n'
                     f'[[methods]]\nname = "{method}"\n{tail}')
    out = tmp_path / "runs"
    assert main(["run", "--suite", str(suite), "--out", str(out)]) == exitcodes.USAGE
    assert err in capsys.readouterr().err
    assert not out.exists()


# 8 -- a weight file of the wrong architecture --------------------------------------------------------
def test_wrong_architecture_weights_make_only_that_metric_not_computed(tmp_path: Path):
    import torch

    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "alexnet-owt-7be5be79.pth")
    opts = MetricOptions(weights=WeightsOptions(str(tmp_path), allow_unverified=True))
    with pytest.warns(UserWarning):
        built, unavailable = build_metrics(["psnr", "lpips"], opts)
    assert [m.name for m in built] == ["psnr"]
    assert "do not fit the network" in unavailable["lpips"]


# 9 -- folders that are files or missing, manifest clips without a pred ------------------------------
def test_missing_or_file_folders_and_unreported_manifest_clips(tmp_path: Path, no_work, capsys, monkeypatch):
    m = _manifest(tmp_path / "ds", ["c0", "c1"])
    pred = tmp_path / "pred"
    _video(pred / "c0.mp4", seed=1)
    base = ["score", "--pred", str(pred), "--metrics", "psnr", "--json", str(tmp_path / "o.json")]
    assert main(base + ["--gt", str(tmp_path / "nope")]) == exitcodes.USAGE
    assert "no such folder" in capsys.readouterr().err
    assert main(base + ["--gt", str(pred), "--weights-dir", str(pred / "c0.mp4")]) == exitcodes.USAGE
    assert "is a file, not a folder" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(base + ["--manifest", str(m)]) == exitcodes.OK
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["protocol"]["missing_clips"] == ["c1"] and "clip c1: in the manifest but no generated video" in \
        capsys.readouterr().err


# 10 -- NaN and infinities in a manifest ---------------------------------------------------------------
def test_data_validate_names_clips_with_nan_or_infinite_numbers(tmp_path: Path, capsys):
    p = _manifest(tmp_path / "ds", ["good", "nanfps", "infdur", "nanframes"])
    body = json.loads(p.read_text())
    body["clips"][1]["fps"] = math.nan
    body["clips"][2]["duration"] = math.inf
    body["clips"][3]["n_frames"] = math.nan
    p.write_text(json.dumps(body))               # json writes NaN / Infinity tokens
    assert main(["data", "validate", str(p), "--strict"]) == exitcodes.FAILED_CLIPS
    out = capsys.readouterr().out
    assert "clip nanfps: fps must be a finite number > 0, got nan" in out
    assert "clip infdur: duration must be a finite number > 0, got inf" in out
    assert "clip nanframes: n_frames must be a whole number >= 0" in out and "1 clips ok, 3 with problems" in out


# 11 -- report and compare on empty, interrupted or incomplete stores ---------------------------------
def test_report_refuses_empty_interrupted_and_unknown_runs(tmp_path: Path, capsys):
    from moee_bench.bench.suite.store import ResultStore

    st = ResultStore(tmp_path / "st")
    rep = ["report", "--store", str(tmp_path / "st"), "--out", str(tmp_path / "rep"), "--leaderboard", ""]
    assert main(rep) == exitcodes.USAGE and "has no runs" in capsys.readouterr().err
    st.put_clip("half", "m", "c0", values={"psnr": 1.0}, status={"psnr": "ok"})
    assert main(rep) == exitcodes.USAGE and "interrupted" in capsys.readouterr().err
    st.put_run("done", dataset="d", split="test", meta={})
    assert main(rep + ["--run", "nope"]) == exitcodes.USAGE and "unknown run id 'nope'" in capsys.readouterr().err
    assert main(rep) == exitcodes.OK and "run half was interrupted" in capsys.readouterr().err
    st.close()
    assert "half" not in (tmp_path / "rep" / "clips.csv").read_text()


def test_compare_fails_when_a_metric_disappears(tmp_path: Path, capsys, monkeypatch):
    from moee_bench.bench.suite.store import ResultStore

    rng = np.random.default_rng(0)
    for name, keys in (("base", ("psnr", "ssim")), ("new", ("psnr",))):
        st = ResultStore(tmp_path / name)
        st.put_run(name, dataset="d", split="test", meta={})
        for i in range(10):
            st.put_clip(name, "m", f"c{i}", values={k: 30 + rng.normal() for k in keys}, status={k: "ok" for k in keys})
        st.close()
    b, n = str(tmp_path / "base"), str(tmp_path / "new")
    assert main(["compare", b, n]) == exitcodes.METRIC_MISSING
    assert "missing in the new run" in capsys.readouterr().out
    assert main(["compare", b, n, "--ignore-missing", "ssim"]) == exitcodes.OK
    assert main(["compare", b, n, "--metrics", "psnr"]) == exitcodes.OK
    monkeypatch.chdir(tmp_path)
    assert main(["compare", b, "nostore"]) == exitcodes.USAGE
    assert not (tmp_path / "moee_bench_runs").exists()                # no empty store created on the way


# 12 -- output folders that are files, leftover temp files ---------------------------------------------
def test_file_outputs_and_leftover_temp_files(tmp_path: Path, write_clip, capsys):
    from moee_bench.bench.suite.store import ResultStore

    f = tmp_path / "file"
    f.write_text("x")
    assert main(["data", "make-sample", str(f)]) == exitcodes.USAGE
    st = ResultStore(tmp_path / "st")
    st.put_run("r", dataset="d", split="test", meta={})
    st.close()
    assert main(["export", "--store", str(tmp_path / "st"), "--out", str(f)]) == exitcodes.USAGE
    assert "is a file" in capsys.readouterr().err
    pred = tmp_path / "pred"
    write_clip("c0", folder=pred, n=6, size=32)
    leftover = pred / ".c1.mp4.k2j3.tmp.mp4"
    leftover.write_bytes(b"\x00" * 64)
    js = tmp_path / "o.json"
    assert main(["score", "--pred", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", str(js)]) == 0
    assert [c["clip"] for c in json.loads(js.read_text())["clips"]] == ["c0"]
    from moee_bench.bench.core.paths import clean_stale_temps

    young = pred / ".c2.mp4.abcd.tmp.mp4"
    young.write_bytes(b"")
    os.utime(leftover, (0, 0))
    assert clean_stale_temps(pred) == [leftover] and young.exists() and (pred / "c0.mp4").exists()


# 13 -- one exit-code table ------------------------------------------------------------------------------
def test_readme_documents_the_exit_code_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = dict(line.split("|")[1:3] for line in readme.splitlines()
                if line.startswith("| ") and line.split("|")[1].strip().isdigit())
    codes = {int(k): v for k, v in rows.items()}
    assert set(codes) == {exitcodes.OK, exitcodes.REGRESSION, exitcodes.USAGE, exitcodes.FAILED_CLIPS,
                          exitcodes.METRIC_MISSING, exitcodes.NOT_COMPARABLE, exitcodes.INTERRUPTED}
    assert "regression" in codes[exitcodes.REGRESSION] and "missing" in codes[exitcodes.METRIC_MISSING]
    assert "cannot be compared" in codes[exitcodes.NOT_COMPARABLE]
    assert "failed" in codes[exitcodes.FAILED_CLIPS] and "usage" in codes[exitcodes.USAGE]
