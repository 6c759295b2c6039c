"""The scale model (issue 30, points 6 and 7): ``bench rates`` measures and records per-stage rates through the
metrics' own classes (on CPU here, with tiny sizes; the same command records a GPU's rates with ``--device cuda``),
``bench plan`` predicts the wall time of ``score`` from a rates file: checked against a hand-computed answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main


def test_rates_are_measured_and_recorded_on_cpu(tmp_path: Path, capsys):
    rates = tmp_path / "r.json"
    assert main(["bench", "rates", "--metrics", "psnr,ssim", "--frames", "3", "--size", "32", "--rates", str(rates),
                 "--workdir", str(tmp_path)]) == exitcodes.OK
    book = json.loads(rates.read_text())
    r = book["cpu"]["fp32"]
    assert r["frames"] == 32 and r["size"] == 32          # rounded up to a whole chunk of the evaluator and r["startup"] > 0 and r["decode"] > 0
    assert set(r["metrics"]) == {"psnr", "ssim"}
    assert all(m["build"] >= 0 and m["per_pair"] >= 0 and m["gt_part"] is False for m in r["metrics"].values())
    assert "rates file" in capsys.readouterr().out


def test_plan_is_the_documented_sum_of_the_recorded_rates(tmp_path: Path, capsys):
    rates = tmp_path / "r.json"
    cpu = {"startup": 2.0, "decode": 0.001, "metrics": {
        "psnr": {"build": 0.0, "per_pair": 0.002, "compute": 0.0, "gt_part": False},
        "fid": {"build": 1.5, "per_pair": 0.1, "compute": 2.0, "gt_part": True}}}
    gpu = {"startup": 4.0, "decode": 0.001, "metrics": {
        "psnr": {"build": 0.0, "per_pair": 0.002, "compute": 0.0, "gt_part": False},
        "fid": {"build": 3.0, "per_pair": 0.004, "compute": 2.0, "gt_part": True}}}
    rates.write_text(json.dumps({"cpu": {"fp32": cpu}, "cuda:Test GPU": {"fp32": gpu}}))
    base = ["bench", "plan", "--clips", "10", "--frames", "100", "--metrics", "psnr,fid", "--rates", str(rates)]
    assert main(base + ["--gpus", "4"]) == exitcodes.OK
    out = capsys.readouterr().out
    # 1000 pairs: 2 + 1000*0.001 + (0 + 1000*0.002 + 0) + (1.5 + 1000*0.1 + 2) = 108.5
    assert "cpu fp32 predicted (s)" in out and "108.5" in out
    # GPU: 4 + 1 + 2 + 3 + 4 + 2 = 16; torchrun over 4: 4 + 0.25 + 0.5 + 3 + 1 + 2 = 10.75
    assert "cuda:Test GPU fp32 predicted (s)" in out and " 16" in out and "10.75" in out
    assert main(base + ["--warm"]) == exitcodes.OK             # GT side cached: FID's extraction halved
    assert "58.5" in capsys.readouterr().out
    assert main(["bench", "plan", "--metrics", "akd", "--rates", str(rates)]) == exitcodes.USAGE
    assert main(["bench", "plan", "--rates", str(tmp_path / "none.json")]) == exitcodes.USAGE
    assert "bench rates" in capsys.readouterr().err


def test_profile_prints_the_bound_beside_ours(monkeypatch):
    """``bench metrics --profile``: the bound row is Inception + LPIPS + one Fréchet of our side, per 100 pairs."""
    from types import SimpleNamespace

    from moee_bench.bench.core import media
    from moee_bench.bench.perf import visual_profile as vp

    ours = {"Inception network": 6.0, "LPIPS": 1.0, vp.FRECHET: 1.0, "decode (H.264 -> RGB)": 2.0}
    monkeypatch.setattr(vp, "profile_chain", lambda *a: {"Inception network": 10.0, vp.FRECHET: 14.0})
    monkeypatch.setattr(vp, "profile_ours", lambda *a: dict(ours))
    monkeypatch.setattr(media, "read_frames", lambda path: [0] * 200)
    rows = vp.profile_table([SimpleNamespace(gt="x")], Path("."), Path("."), ["fp32"])
    assert rows["  bound: Inception + LPIPS + one Frechet"].split() == ["-", "4.000"]     # 8 s per 200 pairs
    assert rows["  ours total / bound"].split() == ["-", "1.25"]                          # 10 s / 8 s


def test_plan_counts_warmup_per_clip_and_per_pair_costs_once_each(tmp_path: Path, capsys):
    """The fixed costs measured by the two-length fit: first-call warm-up once, per-clip costs per clip, per-pair
    costs per pair (a hand calculation)."""
    rates = tmp_path / "r.json"
    cpu = {"startup": 3.0, "decode": 0.002, "decode_clip": 0.05, "metrics": {
        "lpips": {"build": 1.0, "warmup": 0.5, "per_pair": 0.01, "per_clip": 0.2, "compute": 0.0, "gt_part": False},
        "fid": {"build": 2.0, "warmup": 1.5, "per_pair": 0.1, "per_clip": 0.1, "compute": 1.8, "gt_part": True}}}
    rates.write_text(json.dumps({"cpu": {"fp32": cpu}}))
    base = ["bench", "plan", "--clips", "6", "--frames", "75", "--metrics", "lpips,fid", "--rates", str(rates)]
    assert main(base) == exitcodes.OK
    # 450 pairs: 3 + 450*0.002 + 6*0.05 + (1 + 0.5 + 450*0.01 + 6*0.2 + 0) + (2 + 1.5 + 450*0.1 + 6*0.1 + 1.8)
    #          = 3 + 0.9 + 0.3 + 7.2 + 50.9 = 62.3
    assert "62.3" in capsys.readouterr().out
    assert main(base + ["--warm"]) == exitcodes.OK              # FID's per-pair extraction halved: 62.3 - 22.5
    assert "39.8" in capsys.readouterr().out
    from moee_bench.bench.perf.plan import predict_one_length

    # the old model from the same measurements (taken on clips of 20 pairs): every pair carries per-clip + warm-up / 20
    # 3 + 450 * (0.002 + 0.05/20 + 0.01 + 0.7/20 + 0.1 + 1.6/20) + 1 + 2 + 1.8 = 7.8 + 450 * 0.2295 = 111.075
    assert predict_one_length({**cpu, "frames": 20}, ["lpips", "fid"], 6, 75) == pytest.approx(111.075)


def test_two_length_fit_separates_per_pair_from_per_clip_cost():
    from moee_bench.bench.perf.plan import _slope

    # a stage that costs 1 s per clip and 0.2 s per pair: 3 s at 10 pairs, 5 s at 20
    per, fixed = _slope(3.0, 5.0, 10, 20)
    assert per == pytest.approx(0.2) and fixed == pytest.approx(1.0)


def test_plan_check_prints_predicted_measured_and_error(tmp_path: Path, capsys):
    """``bench plan --check``: rates on one clip of a quarter of the planned frames rounded up to a whole chunk (32) and
    one of twice that, then a measured score of the planned size, in one run; prints both and the error in %."""
    rates = tmp_path / "r.json"
    assert main(["bench", "plan", "--check", "--clips", "1", "--frames", "16", "--size", "32", "--metrics", "psnr",
                 "--rates", str(rates), "--workdir", str(tmp_path)]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "measured score here (s)" in out and "prediction error (%)" in out and "CPU s (all threads" in out
    assert "1 clip of 32 and of 64 frames (planned: 1 x 16)" in out
    r = json.loads(rates.read_text())["cpu"]["fp32"]
    assert r["frames"] == 32 and {"warmup", "per_clip", "per_pair"} <= set(r["metrics"]["psnr"])
    assert set(r["cpu_seconds"]["metrics"]["psnr"]) == set(r["metrics"]["psnr"])      # the same stages on CPU time


def test_metrics_table_puts_each_ratio_beside_its_bound_from_the_same_round():
    """``bench metrics``' table: the ratio to the chain and ours/bound are taken round by round (round i's wall times
    against round i's bound), the bound is the documented sum of the measured rates (a hand calculation)."""
    from moee_bench.bench.perf.visual_bound import Counts, Rates, summary_rows

    wall = {"chain": [100.0, 120.0, 110.0], "ours fp32": [50.0, 40.0, 55.0], "ours fp32 warm": [25.0, 30.0, 20.0],
            "ours bf16": [20.0, 22.0, 18.0]}
    r1 = Rates(decode=0.01, frechet=2.0, inception={"fp32": 0.05, "bf16": 0.02}, lpips={"fp32": 0.01, "bf16": 0.005})
    r2 = Rates(decode=0.01, frechet=2.0, inception={"fp32": 0.1, "bf16": 0.02}, lpips={"fp32": 0.01, "bf16": 0.005})
    chain = {"fid": 10.0, "lpips": 0.5, "psnr": 30.0, "ssim": 0.9}
    results = {"chain": chain, "ours fp32": {**chain, "fid": 10.00001}, "ours fp32 warm": chain,
               "ours bf16": {**chain, "fid": 10.05, "lpips": 0.501}}
    rows = summary_rows(wall, results, [r1, r2, r1], Counts(100, 100, 100), ["fp32", "fp32 warm", "bf16"])
    assert "bound s" in rows["table"] and "ours/bound" in rows["table"] and "x chain" in rows["table"]
    cold = rows["  ours fp32"]
    # bounds: cold 200*0.05 + 100*0.01 + 2 + 100*0.01 = 14 (round 2: 24); chain/ours 2, 3, 2; ours/bound 50/14, 40/24, 55/14
    assert "50.0 (40.0-55.0)" in cold and "2.00 (2.00-3.00)x" in cold and " 14.0" in cold
    assert "3.57 (1.67-3.93)" in cold and "NOT MET by 242.1 %" in cold
    warm = rows["  ours fp32 warm"]         # 100*0.05 + 1 + 2 + 1 = 9; 25/9 = 2.78; chain/ours 4, 4, 5.5 (>= 3.8: met)
    assert " 9.0" in warm and "2.78" in warm and ">= 3.8x chain: met" in warm
    bf16 = rows["  ours bf16"]              # 200*0.02 + 0.5 + 2 + 1 = 7.5; chain/ours 5, 5.45, 6.11: met
    assert " 7.5" in bf16 and ">= 5x chain: met" in bf16
    assert rows["  numbers, ours fp32 vs chain"].startswith("FID rel 1e-06, LPIPS abs 0")
    assert rows["  bf16 drift vs ours fp32"].startswith("FID rel 0.005, LPIPS abs 0.001")
    assert "run with --profile" in cold
    prof = {"ours fp32": {"Inception network": 12.0, "LPIPS": 1.0, "model load": 5.0, "other (Python, copies, threads)": 3.0}}
    rows = summary_rows(wall, results, [r1, r2, r1], Counts(100, 100, 100), ["fp32"], prof)
    assert "profile: model load +5.0 s, other (Python, copies, threads) +3.0 s" in rows["  ours fp32"]


def test_bench_metrics_measures_the_bound_in_every_round_and_prints_the_runs_own_ratios(tmp_path: Path, monkeypatch,
                                                                                          capsys):
    """``bench metrics`` wiring (sides stubbed, no network run): the bound is measured once per round beside the
    sides, and the printed ratios are those of the wall times recorded in the JSON of the same run."""
    import statistics
    import time

    from moee_bench.bench.perf import visual
    from moee_bench.bench.perf.visual_bound import Counts, Rates

    nums = {"fid": 1.0, "lpips": 0.1, "psnr": 30.0, "ssim": 0.9}

    class Meter:
        def __init__(self, clips, wdir, precisions, max_pairs=100):
            self.counts, self.history = Counts(10, 10, 10), []

        def measure(self):
            self.history.append(Rates(0.1, 1.0, {"fp32": 0.1, "bf16": 0.05}, {"fp32": 0.1, "bf16": 0.05}))
            return self.history[-1]

    def chain(*a, **k):
        time.sleep(0.06)
        return dict(nums)

    def ours(d, wdir, precision, out, cache=None):
        time.sleep(0.02)
        return dict(nums)

    monkeypatch.setattr(visual, "BoundMeter", Meter)
    monkeypatch.setattr(visual, "researcher_chain", chain)
    monkeypatch.setattr(visual, "moee_score", ours)
    monkeypatch.setattr(visual, "random_weights", lambda d: None)
    monkeypatch.setattr(visual, "make_clips", lambda d, n, f: [])
    monkeypatch.setattr(visual.subprocess, "run", lambda *a, **k: None)
    js = tmp_path / "m.json"
    assert main(["bench", "metrics", "--clips", "1", "--frames", "2", "--json", str(js),
                 "--workdir", str(tmp_path)]) == exitcodes.OK
    out = capsys.readouterr().out
    raw = json.loads(js.read_text())["rounds raw"]
    assert len(raw["bound rates"]) == 3 == len(raw["wall"]["chain"])          # 3 rounds by default, a bound in each
    for side in ("fp32", "fp32 warm", "bf16"):
        ratio = statistics.median(c / o for c, o in zip(raw["wall"]["chain"], raw["wall"][f"ours {side}"]))
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"ours {side} "))
        assert f"{ratio:.2f} (" in line
    # bounds: cold fp32 20 frames * 0.1 + 10 pairs * 0.1 + 1 + 10 pairs * 0.1 (decode) = 5 s; warm 4 s; bf16 3.5 s
    for side, bound in (("fp32", "5.0"), ("fp32 warm", "4.0"), ("bf16", "3.5")):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"ours {side} "))
        assert line.split(")x", 1)[1].split()[0] == bound
