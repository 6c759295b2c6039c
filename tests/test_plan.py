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
    assert r["frames"] == 3 and r["size"] == 32 and r["startup"] > 0 and r["decode"] > 0
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
