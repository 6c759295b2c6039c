"""Emotion metrics: the shipped FER2013 model on real faces, scoring maths by hand, no-face clips, merging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import media
from bench.emotions import BASIC, mixture, parse_emotion
from metrics.emotion_classifiers import to_taxonomy
from metrics.emotion_scoring import aggregate, basic_distribution, compound_scores, js_divergence
from metrics.evaluate import ClipInput, evaluate


def test_fer_reads_the_astronaut_as_happy():
    from skimage.data import astronaut

    from metrics.emotion_classifiers import FER2013, face_crop
    from metrics.faces import FaceDetector

    img = astronaut()
    face = FaceDetector().detect(img[None])[0]
    p, _ = to_taxonomy(FER2013().predict([face_crop(img, face.box)]), FER2013.labels)
    assert p.shape == (1, 7) and p[0].argmax() == 0 and p[0, 0] > 0.9      # index 0 = happiness


def test_label_mapping_drops_contempt_and_renormalises():
    labels = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    p = np.array([[0.1, 0.5, 0.0, 0.0, 0.4, 0.0, 0.0, 0.0]])
    out, dropped = to_taxonomy(p, labels)
    assert dropped == pytest.approx(0.5)
    assert out[0, BASIC.index("anger")] == pytest.approx(0.2) and out[0, BASIC.index("happiness")] == pytest.approx(0.8)


def test_compound_scores_by_hand():
    target = parse_emotion("angrily_disgusted")          # anger 0.5, disgust 0.5
    d = np.zeros(7)
    d[BASIC.index("anger")], d[BASIC.index("disgust")], d[6] = 0.3, 0.3, 0.4
    s = compound_scores(d, target)
    assert s["compound_top2"] == 1.0 and s["compound_recall"] == 1.0 and s["compound_mix"] == pytest.approx(1.0)
    d2 = np.zeros(7)
    d2[BASIC.index("anger")], d2[BASIC.index("happiness")] = 0.5, 0.5
    s2 = compound_scores(d2, target)
    # p = (0.5 happy, 0.5 anger), q = (0.5 anger, 0.5 disgust): m = (.25, .5, .25)
    # KL(p||m) = .5*log2(.5/.25) + .5*log2(.5/.5) = .5 ; same for q; JSD = .5
    assert s2["compound_top2"] == 0.0 and s2["compound_recall"] == 0.5 and s2["compound_mix"] == pytest.approx(0.5)
    assert js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)
    m = mixture({"happiness": 0.75, "surprise": 0.25})
    d3 = np.zeros(7)
    d3[BASIC.index("happiness")], d3[BASIC.index("surprise")] = 0.75, 0.25
    assert compound_scores(d3, m)["compound_mix"] == pytest.approx(1.0)
    assert basic_distribution(np.array([0, 0, 0, 0, 0, 0, 1.0])).sum() == pytest.approx(1.0)


def test_aggregation_rules_ignore_faceless_frames():
    p = np.array([[0.6, 0.4] + [0] * 5, [np.nan] * 7, [0.2, 0.8] + [0] * 5, [0.7, 0.3] + [0] * 5])
    assert aggregate(p, "mean")[0] == pytest.approx(0.5)
    assert aggregate(p, "vote")[0] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        aggregate(np.full((2, 7), np.nan))


def _still(tmp_path: Path, name: str, img: np.ndarray, n: int = 10) -> Path:
    return media.write_video(tmp_path / f"{name}.mp4", [np.repeat(img[None], n, 0)], 25)


def test_emotion_metric_end_to_end_no_face_and_merge(tmp_path: Path):
    from skimage.data import astronaut

    from metrics.emotion import Emotion

    face = _still(tmp_path, "face", astronaut())
    grey = _still(tmp_path, "grey", np.full((128, 128, 3), 128, np.uint8))
    clips = [ClipInput("happy", face, emotion=parse_emotion("happy"), intensity=2),
             ClipInput("sad", face, emotion=parse_emotion("sad")),
             ClipInput("comp", face, emotion=parse_emotion("happily_surprised")),
             ClipInput("blank", grey, emotion=parse_emotion("fear"))]
    whole = Emotion()
    res = evaluate(clips, [whole], progress=False)
    by = {c.clip_id: c for c in res.clips}
    assert by["happy"].values["emotion_acc"] == 1.0 and by["sad"].values["emotion_acc"] == 0.0
    assert by["blank"].status["emotion"] == "no_face" and "emotion_acc" not in by["blank"].values
    assert res.metrics["emotion_acc"] == 0.5 and res.metrics["emotion_acc/happiness"] == 1.0
    assert res.metrics["emotion_acc/level2"] == 1.0
    assert res.metrics["compound_recall"] == 0.5       # happiness ranks in the top-2 basics, surprise does not
    a, b = Emotion(), Emotion()
    evaluate(clips[:2], [a], progress=False)
    evaluate(clips[2:], [b], progress=False)
    a.merge(b)
    assert a.compute() == res.metrics
