"""Declared metric state (issue #25): reset / state_dict / load_state_dict / merge come from Metric.states, and a
set-level metric's aggregate has one formula that compute() and the bootstrap's from_features() share."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance
from skimage.metrics import peak_signal_noise_ratio

from moee_bench.metrics.core.base import ClipContext, ClipInput, FrameChunk, MeanState, Metric, State
from moee_bench.metrics.core.frechet import PairedMoments
from moee_bench.metrics.core.registry import METRICS, metric_class
from moee_bench.metrics.motion.flmd import FLMD
from moee_bench.metrics.visual.fid import FID
from moee_bench.metrics.visual.psnr import PSNR

STATE_METHODS = ("reset", "state_dict", "load_state_dict", "_add_state", "merge", "snapshot")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_no_metric_writes_its_state_handling_by_hand(name: str) -> None:
    try:
        cls = metric_class(name)
    except ImportError as e:                       # an optional backend absent here
        pytest.skip(str(e))
    for klass in cls.__mro__:
        if klass is Metric or not issubclass(klass, Metric):
            continue
        assert not set(STATE_METHODS) & set(vars(klass)), f"{klass.__name__} hand-writes its state handling"
    assert cls.states, f"{cls.__name__} declares no state"


class _Toy(Metric):
    """Every merge rule at once, with answers worked out by hand below."""

    name, keys, higher_is_better = "toy", ("toy",), {"toy": True}
    states = {"mean": State(MeanState), "count": State(int), "mass": State(float),
              "confusion": State(lambda: np.zeros((2, 2), np.int64)), "by_label": State(dict),
              "keys": State(list, merge="cat")}

    def config(self) -> dict[str, Any]:
        return {"toy": 1}

    def update(self, ctx: ClipContext | None, feats: dict) -> dict[str, Any]:
        v, label = float(feats["v"]), str(feats["label"])
        self.mean.add(v)
        self.count += 1
        self.mass += v / 2
        self.confusion[int(v) % 2, 0] += 1
        slot = self.by_label.setdefault(label, [0, 0.0])
        slot[0] += 1
        slot[1] += v
        self.keys.append({"clip": label})
        return {}

    def compute(self) -> dict[str, Any]:
        return {"toy": self.mean.mean()}


def test_declared_state_merges_every_rule_by_hand() -> None:
    a, b = _Toy(), _Toy()
    a.update(None, {"v": 1, "label": "x"})
    b.update(None, {"v": 2, "label": "x"})
    b.update(None, {"v": 4, "label": "y"})
    snap = copy.deepcopy(b.snapshot())              # what another process sends
    a.merge(snap)
    assert (a.mean.total, a.mean.total_sq, a.mean.count) == (7.0, 21.0, 3)
    assert a.count == 3 and isinstance(a.count, int) and a.mass == 3.5
    assert a.confusion.tolist() == [[2, 0], [1, 0]] and a.confusion.dtype == np.int64
    assert a.by_label == {"x": [2, 3.0], "y": [1, 4.0]}
    assert a.keys == [{"clip": "x"}, {"clip": "x"}, {"clip": "y"}]
    assert b.by_label == {"x": [1, 2.0], "y": [1, 4.0]}            # the sender is untouched
    assert a.compute()["toy"] == pytest.approx(7 / 3)
    c = _Toy()                                      # load = the same state, not a sum with the old one
    c.update(None, {"v": 9, "label": "z"})
    c.load_state_dict(a.state_dict())
    assert c.state_dict()["by_label"] == a.state_dict()["by_label"] and c.mean.count == 3
    c.reset()
    assert c.mean.count == 0 and c.by_label == {} and c.keys == [] and not c.confusion.any()


def test_merge_refuses_another_config() -> None:
    a, b = _Toy(), _Toy()
    snap = b.snapshot()
    snap["config"] = {"toy": 2}
    with pytest.raises(ValueError, match="config"):
        a.merge(snap)
    with pytest.raises(ValueError, match="different metric"):
        PSNR().merge(a)


def test_psnr_merged_from_two_processes_equals_scikit_image() -> None:
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 256, (6, 16, 16, 3), np.uint8)
    gt = rng.integers(0, 256, (6, 16, 16, 3), np.uint8)
    want = np.mean([peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt)])
    halves = []
    for sl in (slice(0, 2), slice(2, 6)):
        m = PSNR()
        ctx = ClipContext(ClipInput("c", pred=None), fps=25.0, size=(16, 16))  # type: ignore[arg-type]
        ex = m.extractor(ctx)
        ex.add(FrameChunk(0, pred[sl], gt[sl]))
        m.update(ctx, ex.finish())
        halves.append(m)
    halves[0].merge(copy.deepcopy(halves[1].snapshot()))
    assert halves[0].compute()["psnr"] == pytest.approx(want, rel=1e-12)
    assert halves[0].compute()["psnr_n_frames"] == 6


def test_moments_metrics_have_one_formula() -> None:
    """compute() on the merged state, from_features() on the per-clip features and pytorch-fid agree exactly."""
    rng = np.random.default_rng(0)
    feats = [{"pred": rng.normal(0.3, 1, (12, 6)), "gt": rng.normal(0, 1, (12, 6))} for _ in range(4)]
    p, g = np.concatenate([f["pred"] for f in feats]), np.concatenate([f["gt"] for f in feats])
    ref = calculate_frechet_distance(p.mean(0), np.cov(p, rowvar=False), g.mean(0), np.cov(g, rowvar=False))
    m = FLMD.__new__(FLMD)                         # no landmark backend needed to aggregate
    m.states = {**FLMD.states, "moments": State(lambda: PairedMoments(6))}      # 6-d features instead of 300
    m.reset()
    for f in feats:
        m.update(None, {**f, "skipped": np.array([0, 0])})
    got = m.compute()
    assert got["flmd"] == pytest.approx(ref, rel=1e-9) and got["flmd_n_real"] == 48
    assert FLMD.from_features(feats, {})["flmd"] == got["flmd"]          # the same function, the same number
    assert FID.from_features(feats, {"frechet": "pytorch-fid"})["fid"] == got["flmd"]   # pytorch-fid's function, one parameter away
    assert FID.from_features(feats, {}, resample=True)["fid"] == pytest.approx(ref, rel=1e-6)   # eigh form
    few = FID.from_features([{"pred": feats[0]["pred"][:1], "gt": feats[0]["gt"][:1]}], {})
    assert few["fid"] is None and "at least 2 frames" in few["fid_reason"]
