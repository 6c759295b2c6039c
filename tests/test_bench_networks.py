"""`moee-bench bench networks`: per-network frames/s at fp32 and bf16 with the bf16 feature drift."""

from __future__ import annotations

import json
from pathlib import Path

from moee_bench.bench.cli.app import main


def test_bench_networks_reports_every_network_at_both_precisions(tmp_path: Path, capsys):
    out = tmp_path / "networks.json"
    assert main(["bench", "networks", "--batch", "2", "--size", "64", "--json", str(out)]) == 0
    raw = json.loads(out.read_text())["raw"]
    assert set(raw) == {"fid_inception", "lpips_alexnet", "fvd_i3d", "csim_arcface", "syncnet"}
    for name, r in raw.items():
        assert r["fp32_fps"] > 0 and r["bf16_fps"] > 0, name
        # bf16 moves features (it is a declared fast mode), but by rounding, not by breaking the network
        assert 0 < r["bf16_rel_diff"] < 0.1, name
    text = capsys.readouterr().out
    assert "random initialisation" in text and "bf16/fp32" in text
