"""Report charts that mean something: speed vs quality only for methods that generate (a run stores no
generation speed for ground truth or static), and every chart states its N and how its interval was made."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.suite.store import ResultStore
from moee_bench.reports import plots
from moee_bench.reports.html import generating_methods
from moee_bench.reports.leaderboard import HEADLINE, method_table

EMOS = ["happiness", "sadness", "neutral", "happily_surprised"]


def _store(tmp_path: Path) -> ResultStore:
    st = ResultStore(tmp_path / "s")
    methods = {"ground-truth": False, "static": False, "gen-a": True, "gen-b": True}
    st.put_run("r", dataset="d", split="test", meta={"methods": {m: {"generates": g} for m, g in methods.items()}})
    rng = np.random.default_rng(0)
    for k, m in enumerate(methods):
        for i, emo in enumerate(EMOS):
            vals = {"psnr": 20.0 + k + rng.normal(), "psnr_nframes": 10.0, "offset": float(i - 1),
                    "emotion_pred_index": float(i % 3)}
            if emo == "happily_surprised":
                vals.update(compound_top2=float(k % 2), compound_recall=0.5, compound_mix=0.4)
            else:
                vals["emotion_acc"] = float(["happiness", "sadness", "neutral"].index(emo) == i % 3)
            st.put_clip("r", m, f"c{i}", values=vals, status={"psnr": "ok", "emotion": "ok"}, info={"emotion": emo})
        st.put_aggregates("r", m, {"psnr": 20.0 + k, "n_clips": 4, "emotion_acc": 0.5})
        st.put_throughput("r", m, device="cpu", frames_per_s=10.0 * (k + 1), seconds_per_clip=1.0, peak_mem_bytes=1,
                          n_clips=4)
    return st


def _texts(fig) -> str:
    """Every text of a figure, wrapped lines joined with single spaces."""
    return " | ".join(" ".join(t.get_text().split()) for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_speed_quality_shows_only_methods_that_generate(tmp_path: Path):
    st = _store(tmp_path)
    (run,) = st.runs()
    assert generating_methods(run["meta"]) == {"gen-a", "gen-b"}
    fig = plots.speed_quality(method_table(st, "r"), st.throughput("r"), generating_methods(run["meta"]))
    text = _texts(fig)
    assert "gen-a (N=4" in text and "gen-b (N=4" in text
    assert "ground-truth" not in text and "static" not in text
    assert "CI: 95% percentile bootstrap over clips (1000 resamples), frame-weighted mean" in text
    assert plots.speed_quality(method_table(st, "r"), st.throughput("r"), set()) is None         # nothing generates


def test_every_chart_states_n_and_the_ci_method(tmp_path: Path):
    st = _store(tmp_path)
    clips, t = st.clip_table("r"), method_table(st, "r")
    figs = {"bars": plots.headline_bars(t, HEADLINE), "heatmap": plots.emotion_heatmap(clips),
            "confusion": plots.confusion_matrices(clips), "compound": plots.compound_bars(clips),
            "offsets": plots.offset_histograms(clips),
            "speed": plots.speed_quality(t, st.throughput("r"), generating_methods(st.runs()[0]["meta"]))}
    for name, fig in figs.items():
        assert fig is not None, name
        text = _texts(fig)
        assert "N=" in text, name
        assert "CI" in text, name
    assert "PSNR" in _texts(figs["bars"]) and "N=4" in _texts(figs["bars"])
    assert "n=1" in _texts(figs["heatmap"])                     # one clip per method and target emotion
    assert "compound_top2 (headline)" in _texts(figs["compound"])


def test_a_run_stores_no_generation_speed_for_ground_truth_or_static(tmp_path: Path):
    rng = np.random.default_rng(1)
    media.write_video(tmp_path / "ds" / "c0.mp4", [rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)], 25.0,
                      audio=np.zeros(6400, np.float32))
    media.write_image(tmp_path / "ds" / "r.png", np.zeros((64, 64, 3), np.uint8))
    Manifest("tiny", tmp_path / "ds", [ClipRecord("c0", "id0", "c0.mp4", parse_emotion("happy"), audio="c0.mp4",
                                                  ref_image="r.png", split="test")]).save(tmp_path / "ds" / "m.json")
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{tmp_path / "ds" / "m.json"}"\nsplit = "test"\nmetrics = ["psnr"]\n'
                     '[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "static"\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    with ResultStore(tmp_path / "out" / "store") as st:
        (run,) = st.runs()
        assert st.throughput(run["run_id"]).empty
        assert {m: d["generates"] for m, d in run["meta"]["methods"].items()} == {"ground-truth": False, "static": False}
