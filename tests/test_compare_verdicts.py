"""``moee-bench compare`` verdicts through the CLI on stores whose answer is known by construction.

Each new run is the base run plus a per-clip PSNR change whose range fixes the verdict whatever the
bootstrap draws: every interval of a mean lies between the smallest and the largest per-clip change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.suite.store import ResultStore


def _store(folder: Path, run_id: str, psnr: np.ndarray, *, identities: list[str] | None = None,
           meta: dict | None = None, method: str = "m") -> Path:
    st = ResultStore(folder)
    st.put_run(run_id, dataset="mead", split="test", meta=meta or {})
    for i, v in enumerate(psnr):
        info = {"n_frames": 50, **({"identity": identities[i]} if identities else {})}
        st.put_clip(run_id, method, f"c{i:02d}", values={"psnr": float(v)}, status={"psnr": "ok"}, info=info)
    st.close()
    return folder


def _ci(out: str) -> tuple[float, float, float]:
    m = re.search(r"\| ([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\] \|", out)
    assert m, out
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


BASE = 24.0 + np.random.default_rng(0).normal(0, 1.0, 27)       # 27 clips, PSNR of noise-8 videos


@pytest.mark.parametrize("name,change,verdict,code", [
    # noise 8 -> 16: every clip loses 5.8 to 6.4 dB
    ("noise 8 -> 16", -6.1 + np.random.default_rng(1).uniform(-0.3, 0.3, 27), "❌ regressed", exitcodes.REGRESSION),
    # noise 8 -> 8, new seed: every clip within 0.2 dB either way
    ("noise 8 -> 8", np.random.default_rng(2).uniform(-0.2, 0.2, 27), "no significant change", exitcodes.OK),
    # noise 8 -> 4: every clip gains 5.8 to 6.4 dB
    ("noise 8 -> 4", 6.1 + np.random.default_rng(3).uniform(-0.3, 0.3, 27), "✅ improved", exitcodes.OK),
    # half the clips noise 4 (+6 dB), half noise 16 (-6 dB): the interval spans 0 (wrong on the old code: improved)
    ("half 4, half 16", np.where(np.arange(27) % 2 == 0, 6.1, -6.1), "no significant change", exitcodes.OK),
])
def test_four_rows_of_the_issue(tmp_path: Path, capsys, name, change, verdict, code):
    b = _store(tmp_path / "base", "base", BASE)
    n = _store(tmp_path / "new", "new", BASE + change)
    assert main(["compare", str(b), str(n), "--metrics", "psnr"]) == code
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| `m` | PSNR"))
    assert row.rstrip(" |").endswith(verdict), row
    d, lo, hi = _ci(row)
    assert change.min() - 1e-9 <= lo <= d <= hi <= change.max() + 1e-9
    if name == "half 4, half 16":
        assert lo < 0 < hi


def test_threshold_needs_the_whole_interval_beyond_it(tmp_path: Path, capsys):
    """--threshold 0.5 with an interval like [-0.585, -0.017]: it reaches past -0.5 but does not lie beyond it."""
    rng = np.random.default_rng(5)
    change = np.clip(-0.3 + rng.normal(0, 0.75, 27), -1.6, 1.0)
    change += -0.3 - change.mean()                                # mean change exactly -0.3 dB, above -0.5
    b = _store(tmp_path / "base", "base", BASE)
    n = _store(tmp_path / "new", "new", BASE + change)
    assert main(["compare", str(b), str(n), "--threshold", "0.5"]) == exitcodes.OK
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| `m` | PSNR"))
    d, lo, hi = _ci(row)
    assert d == pytest.approx(-0.3, abs=1e-4) and lo < -0.5 < hi < 0     # the case of the issue
    assert row.rstrip(" |").endswith("no significant change"), row
    # without a threshold the same interval lies wholly below 0: a regression
    assert main(["compare", str(b), str(n)]) == exitcodes.REGRESSION
    # an improvement of the same shape is not "improved" beyond 0.5 either
    n2 = _store(tmp_path / "new2", "new2", BASE - change)
    assert main(["compare", str(b), str(n2), "--threshold", "0.5"]) == exitcodes.OK
    assert "improved" not in capsys.readouterr().out.split("| `m` | PSNR")[-1].splitlines()[0]


# ------------------------------------------------------------------------------------ compare as a CI gate
def _frames(i: int) -> np.ndarray:
    x = np.arange(32, dtype=float)[None, :, None]
    return np.stack([np.broadcast_to(128 + 60 * np.sin(x / (3 + i % 4) + t / 3.0), (32, 32, 3))
                     for t in range(10)]).astype(np.uint8)


def _run_with_noise(tmp_path: Path, name: str, sigma: float, extra: list[str] | None = None) -> Path:
    """`moee-bench run` of a `precomputed` folder: the GT clips with Gaussian noise of known strength."""
    root = tmp_path / "ds"
    gt = [_frames(i) for i in range(12)]
    if not (root / "manifest.json").exists():
        recs = []
        for i, frames in enumerate(gt):
            media.write_video(root / "v" / f"c{i:02d}.mp4", [frames], 25)
            recs.append(ClipRecord(f"c{i:02d}", f"id{i % 3}", f"v/c{i:02d}.mp4", parse_emotion("happy"), split="test"))
        Manifest("gate", root, recs).save(root / "manifest.json")
    pre = tmp_path / f"pre_{name}"
    noise = np.random.default_rng(int(sigma * 10))
    for i, frames in enumerate(gt):
        frames = frames.astype(float)
        media.write_video(pre / f"c{i:02d}.mp4", [np.clip(frames + noise.normal(0, sigma, frames.shape), 0, 255)
                                                   .astype(np.uint8)], 25)
    suite = tmp_path / f"{name}.toml"
    suite.write_text(f'name = "{name}"\ndataset = "{root / "manifest.json"}"\nsplit = "test"\nmetrics = ["psnr"]\n'
                     f'seed = 0\n[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n')
    out = tmp_path / f"out_{name}"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--no-report", *(extra or [])]) == exitcodes.OK
    return out


def test_gate_on_run_out_folders_json_and_not_comparable(tmp_path: Path, capsys):
    base = _run_with_noise(tmp_path, "base", 8.0)
    worse = _run_with_noise(tmp_path, "worse", 16.0)
    assert main(["compare", str(base), str(worse), "--json", str(tmp_path / "v.json")]) == exitcodes.REGRESSION
    doc = json.loads((tmp_path / "v.json").read_text())
    v = next(x for x in doc["verdicts"] if x["key"] == "psnr")
    assert doc["exit_code"] == 1 and v["verdict"] == "regressed" and v["hi"] < 0 and v["p_adjusted"] < 0.05
    assert doc["correction"] == "holm" and "Holm" in capsys.readouterr().out
    assert "clip bootstrap" in v["estimator"] and "3 identities" in v["estimator"]     # fewer than the minimum
    # bf16 is a different protocol: refused per metric with the reason, exit 5, never 0
    bf16 = _run_with_noise(tmp_path, "worse_bf16", 16.0, ["--precision", "bf16"])
    rc = main(["compare", str(worse), str(bf16), "--json", str(tmp_path / "n.json")])
    out = capsys.readouterr().out
    assert rc == exitcodes.NOT_COMPARABLE and "different precision: fp32 vs bf16" in out
    v = next(x for x in json.loads((tmp_path / "n.json").read_text())["verdicts"] if x["key"] == "psnr")
    assert v["verdict"] == "not comparable" and v["refused"] == "runs"


def _meta(**over) -> dict:
    m = {"manifest_hash": "aaa", "precision": "fp32", "ingest": {"decode": "pyav"},
         "protocol": {"psnr": {"metric": "psnr", "data_range": 255, "psnr_mode": "frame"}},
         "weights_by_metric": {"lpips": [{"name": "alex", "sha256": "1" * 64}]}}
    m.update(over)
    return m


@pytest.mark.parametrize("change,reason", [
    ({"manifest_hash": "bbb"}, "different manifest"),
    ({"ingest": {"decode": "cv2"}}, "different decode/resize rule"),
    ({"protocol": {"psnr": {"metric": "psnr", "data_range": 1, "psnr_mode": "frame"}}}, "`psnr` protocol differs in data_range"),
])
def test_runs_with_a_different_protocol_are_refused(tmp_path: Path, capsys, change, reason):
    b = _store(tmp_path / "b", "b", BASE, meta=_meta())
    n = _store(tmp_path / "n", "n", BASE - 6.0, meta=_meta(**change))       # a regression, if it were comparable
    rc = main(["compare", str(b), str(n), "--metrics", "psnr"])
    out = capsys.readouterr().out
    assert rc == exitcodes.NOT_COMPARABLE and reason in out and "regressed" not in out


def test_same_protocol_is_compared_and_weights_sha_refuses(tmp_path: Path, capsys):
    b = _store(tmp_path / "b", "b", BASE, meta=_meta())
    assert main(["compare", str(b), str(_store(tmp_path / "n", "n", BASE + 0.01, meta=_meta()))]) == exitcodes.OK
    for rid, sha in (("lb", "1"), ("lw", "2")):
        st = ResultStore(tmp_path / rid)
        st.put_run(rid, dataset="mead", split="test",
                   meta=_meta(weights_by_metric={"lpips": [{"name": "alex", "sha256": sha * 64}]},
                              protocol={"lpips": {"metric": "lpips"}}))
        for i, v in enumerate(BASE):
            st.put_clip(rid, "m", f"c{i:02d}", values={"psnr": float(v), "lpips": 0.2 + 0.01 * i},
                        status={"psnr": "ok", "lpips": "ok"})
        st.close()
    lb, lw = str(tmp_path / "lb"), str(tmp_path / "lw")
    assert main(["compare", lb, lw, "--metrics", "psnr"]) == exitcodes.OK
    capsys.readouterr()
    assert main(["compare", lb, lw, "--metrics", "lpips"]) == exitcodes.NOT_COMPARABLE
    assert "`lpips` weight files differ (sha256 111111111111 vs 222222222222)" in capsys.readouterr().out


def test_different_split_and_no_common_clip_are_not_a_pass(tmp_path: Path, capsys):
    b = _store(tmp_path / "b", "b", BASE)
    st = ResultStore(tmp_path / "n")
    st.put_run("n", dataset="mead", split="val", meta={})
    for i, v in enumerate(BASE):
        st.put_clip("n", "m", f"other{i}", values={"psnr": float(v)}, status={"psnr": "ok"})
    st.close()
    assert main(["compare", str(b), str(tmp_path / "n")]) == exitcodes.NOT_COMPARABLE
    assert "different split: test vs val" in capsys.readouterr().out


def test_cluster_bootstrap_with_identities_and_named(tmp_path: Path, capsys):
    """12 identities with a shared per-identity shift: the cluster CI is wider than the clip CI, and named."""
    rng = np.random.default_rng(7)
    ids = [f"p{i // 4}" for i in range(48)]
    shift = np.repeat(rng.normal(0, 1.0, 12), 4)
    base = 24 + rng.normal(0, 1, 48)
    b = _store(tmp_path / "b", "b", base, identities=ids)
    n = _store(tmp_path / "n", "n", base + 0.3 + shift + rng.normal(0, 0.1, 48), identities=ids)
    widths = {}
    for mode in ("auto", "clip"):
        main(["compare", str(b), str(n), "--resample", mode, "--json", str(tmp_path / f"{mode}.json")])
        v = json.loads((tmp_path / f"{mode}.json").read_text())["verdicts"][0]
        widths[mode] = v["hi"] - v["lo"]
        assert ("cluster bootstrap (12 identities" in v["estimator"]) == (mode == "auto")
    assert widths["auto"] > 1.5 * widths["clip"]


def test_holm_and_bh_over_many_metrics(tmp_path: Path, capsys):
    """Ten methods with no true change and one that regresses: Holm keeps the one, names itself."""
    rng = np.random.default_rng(3)
    st_b, st_n = ResultStore(tmp_path / "b"), ResultStore(tmp_path / "n")
    st_b.put_run("b", dataset="d", split="test", meta={})
    st_n.put_run("n", dataset="d", split="test", meta={})
    for k in range(10):
        for i in range(30):
            v = 24 + rng.normal()
            st_b.put_clip("b", f"m{k}", f"c{i}", values={"psnr": v}, status={"psnr": "ok"})
            st_n.put_clip("n", f"m{k}", f"c{i}", values={"psnr": v - (3.0 if k == 0 else 0) + rng.normal(0, 0.5)},
                          status={"psnr": "ok"})
    st_b.close(); st_n.close()
    for corr, name in (("holm", "Holm (family-wise error)"), ("bh", "Benjamini-Hochberg (false discovery rate)")):
        assert main(["compare", str(tmp_path / "b"), str(tmp_path / "n"), "--correction", corr,
                     "--json", str(tmp_path / "h.json")]) == exitcodes.REGRESSION
        out = capsys.readouterr().out
        assert name in out and "adjusted for 10 test(s)" in out
        doc = json.loads((tmp_path / "h.json").read_text())
        assert [v["method"] for v in doc["verdicts"] if v["verdict"] == "regressed"] == ["m0"]
        assert all(v["p_adjusted"] >= v["p"] for v in doc["verdicts"])


# ------------------------------------------------------------------------------------ leaderboard marks
def test_leaderboard_bolds_the_methods_tied_with_the_best(tmp_path: Path):
    """`a` best; `b` 0.01 dB lower on average with ±0.5 dB of zero-mean noise per clip (a tie: the difference is
    a tenth of its standard error); `c` 3 dB worse on every clip."""
    from moee_bench.reports.leaderboard import render_markdown

    rng = np.random.default_rng(11)
    st = ResultStore(tmp_path / "s")
    st.put_run("r", dataset="d", split="test", meta={})
    base = 28 + rng.normal(0, 2, 20)
    e = np.repeat(rng.uniform(0.2, 0.8, 10), 2) * np.tile([1.0, -1.0], 10)       # zero mean exactly
    for method, v in (("a", base + 0.02), ("b", base + 0.01 + e), ("c", base - 3.0)):
        for i, x in enumerate(v):
            st.put_clip("r", method, f"c{i}", values={"psnr": float(x)}, status={"psnr": "ok"}, info={"n_frames": 10})
        st.put_aggregates("r", method, {"psnr": float(v.mean()), "n_clips": 20, "n_missing": 0})
    md = render_markdown(st)
    row = {m: next(ln for ln in md.splitlines() if ln.startswith(f"| `{m}`")) for m in "abc"}
    assert "**" in row["a"] and "**" in row["b"] and "**" not in row["c"]
    assert "not significantly different" in md and "Holm (family-wise error)" in md and "2 comparison(s)" in md
    from moee_bench.reports.html import render_html

    html = render_html(st)
    assert html.count("<td class='best'>") == 2 and "not significantly different" in html


def test_leaderboard_ci_resamples_identities(tmp_path: Path):
    """12 identities x 4 clips, the score almost all identity (sd 1) : the mean's SE is ~1/sqrt(12), so the
    95% CI is ~2 x 1.96 x 0.29 = 1.13 wide; resampling clips as independent would give about half of it."""
    from moee_bench.reports.leaderboard import method_table

    rng = np.random.default_rng(2)
    widths = []
    for rep in range(5):
        st = ResultStore(tmp_path / f"s{rep}")
        st.put_run("r", dataset="d", split="test", meta={})
        v = np.repeat(rng.normal(0, 1, 12), 4) + rng.normal(0, 0.05, 48) + 25
        for i, x in enumerate(v):
            st.put_clip("r", "m", f"c{i}", values={"psnr": float(x), "psnr_nframes": 10}, status={"psnr": "ok"},
                        info={"identity": f"p{i // 4}", "n_frames": 10})
        st.put_aggregates("r", "m", {"psnr": float(v.mean()), "n_clips": 48, "n_missing": 0})
        t = method_table(st, "r").iloc[0]
        widths.append(t["psnr_ci"][1] - t["psnr_ci"][0])
        assert "identities, then clips" in t["psnr_ci_method"]
    assert 0.8 < np.mean(widths) / 1.13 < 1.3, widths


def test_set_level_marks_only_with_set_bootstrap(tmp_path: Path):
    """FID from cached features: `b` differs from the best `a` by 0.05 per dimension (a tie at 120 frames),
    `c` by 1.5 (FID + 18): with --set-bootstrap `a` and `b` are bold, `c` is not; without, only the best."""
    from moee_bench.metrics.visual.fid import fid_from_features
    from moee_bench.reports.leaderboard import render_markdown

    rng = np.random.default_rng(0)
    st = ResultStore(tmp_path / "s")
    st.put_run("r", dataset="d", split="test", meta={})
    gt = [rng.normal(0, 1, (20, 8)) for _ in range(6)]
    for j, (method, shift) in enumerate((("a", 0.0), ("b", 0.05), ("c", 1.5))):
        feats = []
        for i in range(6):
            f = {"pred": rng.normal(shift, 1, (20, 8)), "gt": gt[i]}
            feats.append(f)
            parts = {side: f"{j}{i:02d}{side[0] == 'p':d}" + "ab" * 10 for side in ("pred", "gt")}
            for side, key in parts.items():
                st.features.put(key, {"x": f[side]})
            st.put_feature_keys("r", method, f"c{i}", {"fid": parts})
            st.put_clip("r", method, f"c{i}", values={}, status={"fid": "ok"}, info={"n_frames": 20})
        st.put_aggregates("r", method, {"fid": fid_from_features(feats), "n_clips": 6, "n_missing": 0})
    fid = {m: float(st.aggregates("r").set_index(["method", "key"]).loc[(m, "fid"), "value"]) for m in "abc"}
    assert fid["c"] > fid["a"] + 10 and min(fid, key=fid.get) in "ab"
    rows = lambda md: {m: next(ln for ln in md.splitlines() if ln.startswith(f"| `{m}`")) for m in "abc"}  # noqa: E731
    plain = rows(render_markdown(st))
    assert sum("**" in plain[m] for m in "abc") == 1
    md = render_markdown(st, set_bootstrap=60)
    marked = rows(md)
    assert "**" in marked["a"] and "**" in marked["b"] and "**" not in marked["c"]
    assert "FID: clips resampled, recomputed from cached features (60 resamples)" in md
    # `c`'s population FID is 8 x 1.5² = 18; the plug-in (19.86) is biased upwards and its percentile interval
    # lies wholly above it (19.07-21.65); the basic interval the leaderboard prints is reflected towards 18
    value, lo, hi = (float(x) for x in re.search(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", marked["c"]).groups())
    assert lo < 19.0 and hi < 21.0 and lo < value < hi and "basic bootstrap" in md


@pytest.mark.parametrize("change,threshold,verdict,code", [
    (0.05, 0.0, "❌ regressed", exitcodes.REGRESSION),        # LPIPS up on every clip: worse
    (-0.05, 0.0, "✅ improved", exitcodes.OK),                # LPIPS down on every clip: better
    (0.05, 0.03, "❌ regressed", exitcodes.REGRESSION),       # every clip 0.04-0.06 worse: beyond 0.03
    (0.05, 0.07, "no significant change", exitcodes.OK),     # but not beyond 0.07
])
def test_lower_is_better_metric(tmp_path: Path, capsys, change, threshold, verdict, code):
    rng = np.random.default_rng(4)
    lp = rng.uniform(0.2, 0.4, 27)
    stores = []
    for name, v in (("b", lp), ("n", lp + change + rng.uniform(-0.01, 0.01, 27))):
        st = ResultStore(tmp_path / name)
        st.put_run(name, dataset="d", split="test", meta={})
        for i, x in enumerate(v):
            st.put_clip(name, "m", f"c{i}", values={"lpips": float(x), "lpips_nframes": 10 + i},
                        status={"lpips": "ok"})
        st.close()
        stores.append(str(tmp_path / name))
    assert main(["compare", *stores, "--threshold", str(threshold)]) == code
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| `m` | LPIPS"))
    assert row.rstrip(" |").endswith(verdict), row


def test_run_ids_in_one_store(tmp_path: Path, capsys):
    st = ResultStore(tmp_path / "s")
    for rid, shift in (("v1", 0.0), ("v2", -6.1)):
        st.put_run(rid, dataset="mead", split="test", meta={})
        for i, v in enumerate(BASE):
            st.put_clip(rid, "m", f"c{i:02d}", values={"psnr": float(v + shift)}, status={"psnr": "ok"})
    st.close()
    assert main(["compare", "v1", "v2", "--store", str(tmp_path / "s")]) == exitcodes.REGRESSION
    assert main(["compare", "v2", "v1", "--store", str(tmp_path / "s")]) == exitcodes.OK
    assert "✅ improved" in capsys.readouterr().out
    assert main(["compare", "v1", "nope", "--store", str(tmp_path / "s")]) == exitcodes.USAGE


def test_a_file_location_in_the_protocol_is_not_a_protocol_difference(tmp_path: Path):
    proto = lambda where: {"sync": {"metric": "sync", "pixels": "jpeg", "ffmpeg_path": where}}  # noqa: E731
    rows = []
    for name, where in (("b", "/usr/bin/ffmpeg"), ("n", "/opt/ci/ffmpeg")):
        st = ResultStore(tmp_path / name)
        st.put_run(name, dataset="d", split="test", meta={"protocol": proto(where)})
        for i in range(12):
            st.put_clip(name, "m", f"c{i}", values={"sync_c": 5.0 + 0.1 * i}, status={"sync": "ok"})
        st.close()
        rows.append(str(tmp_path / name))
    assert main(["compare", *rows, "--metrics", "sync_c"]) == exitcodes.OK


def test_a_run_compared_with_itself_passes_even_with_one_clip_subgroups(tmp_path: Path, capsys):
    """Per-emotion keys with one clip each are too small to test: shown, but no exit 5 (the main job's case)."""
    b = _store(tmp_path / "b", "b", BASE)
    st = ResultStore(tmp_path / "b")
    st.put_clip("b", "m", "c00", values={"psnr": float(BASE[0]), "emotion_acc/happiness": 1.0}, status={"psnr": "ok"})
    st.close()
    assert main(["compare", str(b), str(b)]) == exitcodes.OK
    assert "too few to test" in capsys.readouterr().out
