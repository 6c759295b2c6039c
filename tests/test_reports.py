"""Report builders on constructed stores where the answer is known."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.suite.store import ResultStore
from moee_bench.reports.bootstrap import mean_ci, paired_diff_ci
from moee_bench.reports.build import write_reports
from moee_bench.reports.leaderboard import method_table, render_markdown


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    st = ResultStore(tmp_path / "store")
    st.put_run("r1", suite_hash="abc", dataset="demo", split="test",
               meta={"dataset_name": "demo", "unverified_weights": True,
                     "metrics_unavailable": {"fid": "WeightsError: weights file 'x.pth' not found. Put it at /w"},
                     "protocol": {"psnr": {"metric": "psnr", "data_range": 255}}})
    rng = np.random.default_rng(0)
    for method, base in (("good", 30.0), ("bad", 20.0)):
        for i in range(8):
            if method == "bad" and i == 7:
                st.put_clip("r1", method, f"c{i}", values={}, status={"psnr": "missing"}, info={"emotion": "happiness"})
                continue
            status = {"psnr": "ok", "akd": "no_face" if (method == "bad" and i == 6) else "ok"}
            vals = {"psnr": base + rng.normal(0, 0.5)}
            if status["akd"] == "ok":
                vals["akd"] = 2.0 if method == "good" else 5.0
            st.put_clip("r1", method, f"c{i}", values=vals, status=status, info={"emotion": "happiness", "n_frames": 10})
        ps = st.clip_table("r1")
        ps = ps[ps.method == method]
        st.put_aggregates("r1", method, {"psnr": float(ps.psnr.mean()), "akd": float(ps.akd.mean()), "fid": None,
                                         "n_clips": 8, "n_missing": 1 if method == "bad" else 0})
    return st


def test_bootstrap_ci_contains_mean_and_paired_diff():
    v = np.arange(20, dtype=float)
    lo, hi = mean_ci(v)
    assert lo < v.mean() < hi
    d, lo, hi = paired_diff_ci(v, v + 3.0)
    assert d == pytest.approx(3.0) and lo == pytest.approx(3.0) and hi == pytest.approx(3.0)
    assert mean_ci(np.array([np.nan, 1.0])) == (1.0, 1.0)


def test_leaderboard_counts_missing_and_failed_and_bolds_best(store):
    t = method_table(store, "r1").set_index("method")
    # missing and no_face are outcomes, not failures (bench/core/statuses.py; before, no_face counted as failed)
    assert t.loc["bad", "n_missing"] == 1 and t.loc["bad", "n_failed"] == 0 and t.loc["good", "n_failed"] == 0
    assert t.loc["bad", "psnr_n"] == 7
    md = render_markdown(store)
    good_line = next(l for l in md.splitlines() if l.startswith("| `good`"))
    bad_line = next(l for l in md.splitlines() if l.startswith("| `bad`"))
    assert good_line.count("**") == 4 and "**" not in bad_line      # best PSNR and best AKD are both `good`
    assert "| 8 | 1 | 0 |" in bad_line
    assert "unverified weights" in md and "`fid` not computed" in md
    header = next(l for l in md.splitlines() if l.startswith("| method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    fid = next(i for i, c in enumerate(cells) if c.startswith("FID"))   # asked for, not computed: its column stays
    assert "PSNR (dB) ↑" in cells and bad_line.strip("|").split("|")[fid].strip() == "—"
    assert "FID — not computed: WeightsError" in md                # with the reason in the notes


def test_write_reports_and_exports(store, tmp_path: Path):
    paths = write_reports(store, tmp_path / "rep", None, tmp_path / "LEADERBOARD.md")
    assert (tmp_path / "LEADERBOARD.md").read_text() == paths["leaderboard"].read_text()
    html = paths["html"].read_text()
    assert "id='leaderboard'" in html and "data:image/png;base64" in html and "unverified weights" in html
    import json

    doc = json.loads(paths["json"].read_text())
    assert doc["r1"]["bad"]["aggregate"]["n_missing"] == 1 and len(doc["r1"]["good"]["clips"]) == 8
    import pandas as pd

    assert len(pd.read_parquet(paths["parquet"])) == 16


def test_html_renders_in_headless_chromium(store, tmp_path: Path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    paths = write_reports(store, tmp_path / "rep")
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    url = paths["html"].resolve().as_uri()
    dom = subprocess.run([exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert "id=\"leaderboard\"" in dom.stdout and "<td>good</td>" in dom.stdout
    console_errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l and ("Uncaught" in l or "rror" in l)]
    assert not console_errors, console_errors
    subprocess.run([exe, *flags, f"--screenshot={shot}", "--window-size=1280,1600", url], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"report screenshot: {shot}")


def _store_with(tmp_path: Path, name: str, psnr: np.ndarray) -> Path:
    st = ResultStore(tmp_path / name)
    st.put_run(name, dataset="d", split="test", meta={})
    for i, v in enumerate(psnr):
        st.put_clip(name, "m", f"c{i}", values={"psnr": float(v), "ssim": 0.5}, status={"psnr": "ok"})
    st.close()
    return tmp_path / name


def test_compare_exit_status_on_known_regression(tmp_path: Path, capsys):
    from moee_bench.bench.cli.app import main

    rng = np.random.default_rng(0)
    base = 30 + rng.normal(0, 1, 40)
    same = _store_with(tmp_path, "same", base + rng.normal(0, 0.01, 40))
    worse = _store_with(tmp_path, "worse", base - 1.0)
    better = _store_with(tmp_path, "better", base + 1.0)
    b = _store_with(tmp_path, "base", base)
    assert main(["compare", str(b), str(same)]) == 0
    assert main(["compare", str(b), str(better)]) == 0
    out = capsys.readouterr().out
    assert "improved" in out and "regressed" not in out.split("better")[-1]
    assert main(["compare", str(b), str(worse)]) == 1
    assert "❌ regressed" in capsys.readouterr().out
    assert main(["compare", str(b), str(worse), "--threshold", "2.0"]) == 0      # a 1 dB drop is within 2 dB


def test_paper_tables_label_published_and_show_measured_deltas(tmp_path: Path):
    from moee_bench.reports.paper_tables import published, render

    st = ResultStore(tmp_path / "s")
    st.put_run("r", dataset="hdtf", split="test", meta={"dataset_name": "hdtf"})
    st.put_aggregates("r", "hallo", {"fid": 30.61, "lpips": 0.2})
    md = render(st)
    hdtf = md.split("## Table 2: HDTF")[1].split("## ")[0]
    hallo = next(l for l in hdtf.splitlines() if l.startswith("| Hallo"))
    assert "28.61 (published) | 30.61 | +2.000" in hallo
    moee = next(l for l in hdtf.splitlines() if l.startswith("| MoEE"))
    assert moee.count("not measured") == 4
    assert published()["dh_faceemovid_150"]["rows"][3]["fid"] == 39.62


def test_plots_from_a_store_with_emotion_sync_and_throughput(tmp_path: Path):
    from moee_bench.reports import plots

    st = ResultStore(tmp_path / "s")
    st.put_run("r", dataset="d", split="test", meta={})
    for i, (emo, pred) in enumerate([("happiness", 0), ("sadness", 0), ("neutral", 6), ("angrily_disgusted", 2)]):
        vals = {"emotion_pred_index": pred, "offset": i - 1}
        if emo != "angrily_disgusted":
            vals["emotion_acc"] = float(["happiness", "sadness", "anger", "disgust", "fear", "surprise", "neutral"][pred] == emo)
        st.put_clip("r", "m", f"c{i}", values=vals, status={"emotion": "ok"}, info={"emotion": emo})
    st.put_aggregates("r", "m", {"compound_mix": 0.4, "compound_top2": 0.0, "compound_recall": 0.5, "psnr": 30.0})
    st.put_throughput("r", "m", device="cpu", frames_per_s=10.0, seconds_per_clip=1.0, peak_mem_bytes=1, n_clips=4)
    clips = st.clip_table("r")
    heat = plots.emotion_heatmap(clips)
    assert heat is not None
    data = heat.axes[0].images[0].get_array()
    assert data[0, 0] == 1.0 and data[0, 1] == 0.0          # happiness right, sadness wrong (columns: taxonomy order)
    cm = plots.confusion_matrices(clips).axes[0].images[0].get_array()
    assert cm.sum() == 3 and cm[1, 0] == 1                   # the sad clip was predicted happy
    assert plots.offset_histograms(clips) is not None and plots.compound_bars(clips) is None     # no compound clip scored
    assert plots.speed_quality(method_table(st, "r"), st.throughput("r")) is not None
    assert plots.emotion_heatmap(clips.drop(columns=["emotion_acc"])) is None


def test_fid_bootstrap_recomputes_from_cached_features(tmp_path: Path):
    from pytorch_fid.fid_score import calculate_frechet_distance

    from moee_bench.metrics.visual.fid import fid_from_features
    from moee_bench.reports.bootstrap import set_metric_ci

    rng = np.random.default_rng(0)
    feats = [{"pred": rng.normal(0.5, 1, (20, 8)), "gt": rng.normal(0, 1, (20, 8))} for _ in range(6)]
    p, g = np.concatenate([f["pred"] for f in feats]), np.concatenate([f["gt"] for f in feats])
    ref = calculate_frechet_distance(p.mean(0), np.cov(p, rowvar=False), g.mean(0), np.cov(g, rowvar=False))
    assert fid_from_features(feats) == pytest.approx(ref, rel=1e-9)
    assert fid_from_features(feats, frechet="eigh") == pytest.approx(ref, rel=1e-9)
    st = ResultStore(tmp_path / "s")
    for i, f in enumerate(feats):             # as a run stores them: one cached part per side, recombined per clip
        parts = {side: f"{i:02d}{side[0] == 'p':d}" + "ab" * 10 for side in ("pred", "gt")}
        for side, key in parts.items():
            st.features.put(key, {"x": f[side]})
        st.put_feature_keys("r", "m", f"c{i}", {"fid": parts})
    lo, hi = set_metric_ci(st, "r", "m", "fid", n_boot=60)
    assert lo < ref < hi and hi - lo > 0


def test_export_command_writes_all_formats(store, tmp_path: Path, capsys):
    from moee_bench.bench.cli.app import main

    out = tmp_path / "exp"
    assert main(["export", "--store", str(store.folder), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"clips.csv", "clips.parquet", "results.json"}
    assert (out / "clips.csv").stat().st_mode & 0o044          # readable by others, not mkstemp's 0600
    assert main(["export", "--store", str(store.folder), "--out", str(out), "--run", "nope"]) == 2
    assert "unknown run ids" in capsys.readouterr().err


@pytest.mark.parametrize("n", [300, 3000])
def test_eigh_frechet_matches_pytorch_fid_at_inception_size(n: int):
    """The bootstrap's eigh form against pytorch-fid's sqrtm at 2048 dims, rank-deficient (n=300) and full rank."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from moee_bench.metrics.core.frechet import frechet_distance_eigh

    rng = np.random.default_rng(n)
    a = np.abs(rng.standard_normal((n, 2048))) ** 1.5
    b = a[:, ::-1] * 0.9 + np.abs(rng.standard_normal((n, 2048))) * 0.3
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance_eigh(*args) == pytest.approx(calculate_frechet_distance(*args), rel=1e-6)


def test_caveats_say_each_reason_once_and_what_the_clips_got(tmp_path: Path):
    """Three methods miss the same weight file for two keys of one metric, and one method's clips all have no face:
    the weight line appears once for every method with both keys on it, and the no-face metric names its clips'
    status (before: one line per method and key, and "no clip ... was scored" with no word of why)."""
    st = ResultStore(tmp_path / "store")
    st.put_run("r1", suite_hash="abc", dataset="demo", split="test",
               meta={"dataset_name": "demo", "suite": {"metrics": ["psnr", "akd", "sync"]}})
    why = "WeightsError: put syncnet_v2.model at /w/syncnet_v2.model"
    for method in ("a", "b", "c"):
        for i in range(4):
            face = method != "c"
            st.put_clip("r1", method, f"c{i}", values={"psnr": 20.0 + i, **({"akd": 1.0} if face else {})},
                        status={"psnr": "ok", "akd": "ok" if face else "no_face"},
                        messages={"akd": "" if face else "no frame with a face on both sides (12 frames checked)"},
                        info={"emotion": "happiness", "n_frames": 10})
        st.put_aggregates("r1", method, {"psnr": 21.5, "akd": 1.0 if method != "c" else None, "sync_c": None,
                                         "sync_d": None, "n_clips": 4, "n_missing": 0},
                          extra={"sync_c": {"reason": why}, "sync_d": {"reason": why},
                                 **({"akd": {"reason": "no frame with a face on both sides"}} if method == "c" else {})})
    md = render_markdown(store=st)
    lines = [l for l in md.splitlines() if "not computed" in l and l.startswith("- ")]
    assert [l for l in lines if "syncnet" in l] == [f"- every method (3): Sync-C, Sync-D — not computed: {why}"]
    assert ("- `c`: AKD — not computed: no frame with a face on both sides (4 of 4 clips no_face: no frame with a face "
            "on both sides (12 frames checked))") in lines
