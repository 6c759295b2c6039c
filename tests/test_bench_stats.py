"""``moee-bench bench stats`` with tiny sizes: it runs, and flags an estimator known to be biased."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moee_bench.bench.cli.app import main
from moee_bench.bench.perf.stats import _fd_batch
from moee_bench.reports.resampling import adjust, choose, holm, resample_counts


def test_bench_stats_flags_the_biased_frechet_percentile_interval(tmp_path: Path, capsys):
    assert main(["bench", "stats", "--sims", "30", "--boot", "100", "--sizes", "10", "--json",
                 str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "| interval | estimator | N | coverage |" in out and "false-positive rate" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    fd = {r["estimator"]: r for r in doc["coverage"] if r["interval"].startswith("Fréchet") and r["n"] == 10}
    pct = fd["percentile, clips (--set-bootstrap)"]
    # the plug-in Fréchet distance of 40 frames at d = 4 is biased upwards (known: its population value is 0.52)
    assert pct["bias"] > 0.2 and pct["verdict"].startswith("UNDER-covers") and "plug-in bias" in pct["verdict"]
    assert fd["basic (2*est - percentile)"]["coverage"] > pct["coverage"] + 0.3
    assert {t["estimator"] for t in doc["compare"]} >= {"clip bootstrap", "clip bootstrap (auto)"}


def test_frechet_batch_matches_the_closed_form():
    """N(0, I) vs N(m, s² I) in d dims: |m|² + d (1 - s)², the population value the simulation uses."""
    d, s = 4, 1.2
    m1, m2 = np.zeros((1, d)), np.full((1, d), 0.3)
    got = _fd_batch(m1, np.eye(d)[None], m2, (s * s * np.eye(d))[None])[0]
    assert abs(got - (d * 0.09 + d * (1 - s) ** 2)) < 1e-12


def test_cluster_counts_keep_identities_whole_and_sizes():
    groups = ["a"] * 3 + ["b"] * 5 + ["c"] * 2
    c = resample_counts(10, groups, 500, np.random.default_rng(0), "cluster")
    assert c.shape == (500, 10)
    # each resample draws 3 identities; each drawn identity contributes exactly its own number of clips
    per_id = np.stack([c[:, :3].sum(1) / 3, c[:, 3:8].sum(1) / 5, c[:, 8:].sum(1) / 2], 1)
    assert np.all(per_id == np.round(per_id)) and np.all(per_id.sum(1) == 3)
    assert choose(groups).unit == "clip" and "fewer than 6" in choose(groups).note
    assert choose(groups, "cluster").unit == "cluster" and choose([None] * 3).unit == "clip"


def test_holm_and_bh_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.20]
    # Holm: sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1, running max: 0.04, 0.09, 0.09, 0.20
    assert np.allclose(holm(p), [0.04, 0.09, 0.09, 0.20])
    # Benjamini-Hochberg: p * 4 / rank, running min from the top: 0.04, 0.0533, 0.0533, 0.20
    assert np.allclose(adjust(p, "bh"), [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert np.allclose(adjust(p, "none"), p)
