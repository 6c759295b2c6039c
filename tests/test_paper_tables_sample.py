"""PAPER_TABLES.md: beside each published table, a second block measured by this suite on the built-in sample with
the tiny model; never mixed with the published numbers, and a cell it cannot fill says why."""

from __future__ import annotations

from pathlib import Path

from moee_bench.bench.suite.store import ResultStore
from moee_bench.reports.paper_tables import render


def _block(md: str, title: str) -> tuple[str, str]:
    section = md.split(f"## {title}")[1].split("\n## ")[0]
    published, _, measured = section.partition("Measured by this suite on the built-in sample, tiny model")
    return published, measured


def test_sample_block_holds_the_sample_runs_numbers_and_says_why_for_the_rest(tmp_path: Path):
    st = ResultStore(tmp_path / "s")
    st.put_run("r", dataset="moee-bench-sample", split="test", meta={
        "dataset_name": "moee-bench-sample", "methods": {"moee-ref": {}, "moee-ref:no-moe": {}, "static": {}},
        "metrics_unavailable": {"fid": "WeightsError: put pt_inception-2015-12-05-6726825d.pth at /w/x.pth"}})
    st.put_aggregates("r", "moee-ref", {"akd": 3.25, "psnr": 20.0})
    st.put_aggregates("r", "moee-ref:no-moe", {"akd": 4.5})
    st.put_run("h", dataset="hdtf", split="test", meta={"dataset_name": "hdtf"})
    st.put_aggregates("h", "moee-ref", {"akd": 99.0})
    md = render(st)
    published, measured = _block(md, "Table 5: ablation (DH-FaceEmoVid-150 test set, inferred)")
    full = next(l for l in measured.splitlines() if l.startswith("| Full MoEE"))
    cells = [c.strip() for c in full.strip("|").split("|")]
    assert cells[0] == "Full MoEE" and len(cells) == 5                 # method + fid, fvd, lpips, akd
    assert cells[4] == "3.250"                                          # the sample run's AKD, not hdtf's 99
    assert cells[1].startswith("— (fid not computed: WeightsError: put pt_inception")
    assert cells[2] == "— (fvd is not among the sample suite's metrics)"
    assert "4.500" in next(l for l in measured.splitlines() if l.startswith("| w/o MoEE |"))
    dhfev = next(l for l in measured.splitlines() if l.startswith("| w/o DH-FaceEmoVid-150"))
    assert dhfev.count("is not in the sample suite") == 4
    assert "3.250" not in published and "(published)" not in measured    # never mixed
    _, hdtf = _block(md, "Table 2: HDTF")
    assert next(l for l in hdtf.splitlines() if l.startswith("| AniPortrait")).count("is not in the sample suite") == 4


def test_sample_block_without_a_sample_run_says_how_to_make_one(tmp_path: Path):
    md = render(ResultStore(tmp_path / "s"))
    _, measured = _block(md, "Table 2: HDTF")
    assert "— (no run on the sample in this store: `moee-bench run`)" in measured


def test_leaderboard_lists_methods_in_the_suites_order(tmp_path: Path):
    """The built-in suite leads with moee-ref and its ablations; the leaderboard keeps that order (it sorted by
    name before, which put ground-truth first)."""
    from moee_bench.reports.leaderboard import method_table, render_markdown

    st = ResultStore(tmp_path / "s")
    order = ["moee-ref", "moee-ref:no-moe", "ground-truth", "static"]
    st.put_run("r", dataset="moee-bench-sample", split="test", meta={"methods": {m: {} for m in order}})
    for i, m in enumerate(["static", "ground-truth", "moee-ref:no-moe", "moee-ref", "extra"]):
        st.put_aggregates("r", m, {"psnr": 20.0 + i})
    assert list(method_table(st, "r")["method"]) == order + ["extra"]
    md = render_markdown(st)
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| `")]
    assert rows[:5] == [f"`{m}`" for m in order + ["extra"]]
