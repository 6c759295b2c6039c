"""Pure emotion scoring: class mapping (incl. contempt), aggregation, the three compound protocols, confusion counts.

Expected values are computed here by explicit arithmetic, independently of the implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from moee_bench.bench.core.emotions import BASIC, parse_emotion
from moee_bench.bench.core.errors import EmotionLabelError
from moee_bench.metrics.emotion.classifiers import EmotionFAN, FER2013Tflite, HSEmotion
from moee_bench.metrics.emotion.scoring import (TAXONOMY, aggregate, balanced_binary_accuracy, basic_distribution, component_recall,
                                     confusion_add, js_divergence, map_class, mapping_matrix, mixture_agreement,
                                     per_class_accuracy, predicted_index, to_taxonomy, topk_match)

# taxonomy order: happiness, sadness, anger, disgust, fear, surprise, neutral
H, S, A, D, F, SU, N = range(7)


def test_taxonomy_is_six_basics_plus_neutral():
    assert TAXONOMY == BASIC + ("neutral",)


def test_mapping_of_every_registered_classifier():
    m, excl = mapping_matrix(FER2013Tflite.classes)
    assert excl == ()
    assert [TAXONOMY[int(np.argmax(r))] for r in m] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    m, excl = mapping_matrix(HSEmotion.classes)
    assert excl == ("Contempt",)
    assert m[HSEmotion.classes.index("Contempt")].sum() == 0
    assert (m.sum(axis=0) == 1).all()            # every taxonomy label reached exactly once
    m, excl = mapping_matrix(EmotionFAN.classes)
    assert excl == ("Contempt",)
    assert TAXONOMY[int(np.argmax(m[EmotionFAN.classes.index("Surprised")]))] == "surprise"
    with pytest.raises(ValueError, match="no mapping"):
        map_class("boredom")


def test_contempt_mass_removed_renormalised_and_counted():
    # HSEmotion order: Anger, Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise
    probs = np.array([[0.1, 0.5, 0.0, 0.0, 0.3, 0.1, 0.0, 0.0],
                      [0.0, 0.1, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0]])
    p7, mass, top = to_taxonomy(probs, HSEmotion.classes)
    kept = 0.1 + 0.3 + 0.1
    assert p7[0, A] == pytest.approx(0.1 / kept)
    assert p7[0, H] == pytest.approx(0.3 / kept)
    assert p7[0, N] == pytest.approx(0.1 / kept)
    assert p7[1, H] == pytest.approx(1.0)
    assert mass == pytest.approx([0.5, 0.1])
    assert top.tolist() == [True, False]
    assert p7.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_contempt_target_label_is_excluded_with_its_own_status():
    with pytest.raises(EmotionLabelError) as e:
        parse_emotion("contempt", clip_id="c1")
    assert e.value.status == "excluded" and "c1" in str(e.value)


def test_aggregation_mean_and_vote():
    p = np.zeros((3, 7))
    p[0, [H, N]] = [0.6, 0.4]
    p[1, [H, N]] = [0.2, 0.8]
    p[2, [H, N]] = [0.3, 0.7]
    mean = aggregate(p, "mean")
    assert mean[H] == pytest.approx((0.6 + 0.2 + 0.3) / 3)
    assert mean[N] == pytest.approx((0.4 + 0.8 + 0.7) / 3)
    vote = aggregate(p, "vote")
    assert vote[H] == pytest.approx(1 / 3) and vote[N] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        aggregate(p, "median")


def test_vote_tie_broken_by_mean_probability():
    vote = np.zeros(7)
    vote[[H, S]] = 0.5
    mean = np.zeros(7)
    mean[[H, S]] = [0.3, 0.4]
    assert predicted_index(vote, mean) == S


def _dist(**kw: float) -> np.ndarray:
    d = np.zeros(7)
    for k, v in kw.items():
        d[TAXONOMY.index(k)] = v
    return d


def test_top2_recall_and_mix_on_hand_built_arrays():
    target = parse_emotion("angrily_disgusted").weights        # anger 0.5, disgust 0.5
    # anger and disgust are the two largest basics, neutral is large but is not a basic
    d1 = _dist(anger=0.30, disgust=0.20, happiness=0.10, neutral=0.40)
    assert topk_match(d1, target) == 1.0
    assert component_recall(d1, target) == 1.0
    # only anger is in the top 2 of the basics (happiness beats disgust)
    d2 = _dist(anger=0.40, happiness=0.30, disgust=0.20, fear=0.10)
    assert topk_match(d2, target) == 0.0
    assert component_recall(d2, target) == 0.5
    assert component_recall(d2, target, k=3) == 1.0
    # threshold mode on the basic distribution renormalised without neutral: 0.3/0.6, 0.2/0.6 ...
    assert component_recall(d1, target, threshold=0.4) == 0.5          # anger 0.5 >= 0.4, disgust 0.333 < 0.4
    assert component_recall(d1, target, threshold=0.3) == 1.0

    # mixture agreement, by hand: p = basics of d1 renormalised (happiness 1/6, anger 1/2, disgust 1/3), q = 0.5/0.5
    p = {"happiness": 0.10 / 0.60, "anger": 0.30 / 0.60, "disgust": 0.20 / 0.60}
    q = {"anger": 0.5, "disgust": 0.5}
    keys = set(p) | set(q)
    m = {k: (p.get(k, 0.0) + q.get(k, 0.0)) / 2 for k in keys}
    kl_pm = sum(p[k] * math.log2(p[k] / m[k]) for k in p)
    kl_qm = sum(q[k] * math.log2(q[k] / m[k]) for k in q)
    expected = 1.0 - 0.5 * (kl_pm + kl_qm)
    assert mixture_agreement(d1, target) == pytest.approx(expected, abs=1e-12)


def test_mix_extremes_and_unequal_weights():
    target = parse_emotion("happily_surprised").weights
    assert mixture_agreement(_dist(happiness=0.5, surprise=0.5), target) == pytest.approx(1.0)
    assert mixture_agreement(_dist(sadness=1.0), target) == pytest.approx(0.0, abs=1e-12)
    # one-hot on a component: m = (3/4, 1/4); JSD = 1/2 [log2(4/3)] + 1/2 [1/2 log2(2/3) + 1/2 log2(2)]
    jsd = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert mixture_agreement(_dist(happiness=1.0), target) == pytest.approx(1 - jsd, abs=1e-12)
    w = [0.0] * 6
    w[BASIC.index("happiness")], w[BASIC.index("surprise")] = 0.8, 0.2
    assert mixture_agreement(_dist(happiness=0.8, surprise=0.2), w) == pytest.approx(1.0)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_basic_distribution_drops_neutral():
    b = basic_distribution(_dist(happiness=0.2, neutral=0.8))
    assert b[BASIC.index("happiness")] == pytest.approx(1.0)
    assert basic_distribution(_dist(neutral=1.0)) == pytest.approx(np.full(6, 1 / 6))


def test_confusion_counts_and_per_class_accuracy():
    c = np.zeros((7, 7), np.int64)
    for t, p in [(H, H), (H, N), (S, S), (N, N), (N, N), (N, H)]:
        confusion_add(c, t, p)
    acc = per_class_accuracy(c)
    assert acc["happiness"] == 0.5 and acc["sadness"] == 1.0 and acc["neutral"] == pytest.approx(2 / 3)
    assert acc["fear"] is None
    assert c.sum() == 6


def test_balanced_binary_accuracy():
    # 2 neutral clips (1 right), 8 emotional (6 right): (1/2 + 6/8) / 2
    assert balanced_binary_accuracy(np.array([[1, 1], [2, 6]])) == pytest.approx((0.5 + 0.75) / 2)
    # a method that always looks emotional: 0 on neutral, 1 on emotional -> chance
    assert balanced_binary_accuracy(np.array([[0, 3], [0, 9]])) == pytest.approx(0.5)
    assert balanced_binary_accuracy(np.array([[0, 0], [2, 6]])) is None
