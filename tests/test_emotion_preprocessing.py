"""Emotion preprocessing matched to each classifier, contempt handling, and the per-clip target probability."""

from __future__ import annotations

import numpy as np
import pytest

from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.metrics.emotion.classifiers import dlib_face_chip, fer_grey_crop, tight_box_crop


def test_fer_grey_crop_follows_fers_rules():
    # grey frame whose value encodes the column; bottom rows' mean is the padding value
    frame = np.zeros((80, 100, 3), np.uint8)
    frame[..., :] = (np.arange(100) % 200)[None, :, None]
    frame[-2:] = 77
    # box 20 wide, 40 tall -> squared to 40x40 by moving x left by 10; +10 px offsets: columns -10 .. 50, rows 0 .. 60
    crop = fer_grey_crop(frame, np.array([10.9, 10.2, 30.5, 50.7]), size=60)
    assert crop.shape == (60, 60)
    assert (crop[:, :10] == 77).all()                      # left of the frame: fer's padding (mean of the bottom rows)
    assert crop[20, 10] == 0 and crop[20, 59] == 49        # column 0 .. 49 of the frame
    # a box at the frame's top-left corner is clipped at the padded image's edge (fer's max(0, .)), not shifted
    assert fer_grey_crop(frame, np.array([0.0, 0.0, 80.0, 80.0]), 64).shape == (64, 64)


def test_tight_box_and_dlib_chip():
    import skimage.data

    from moee_bench.bench.core.faces import FaceDetector

    img = skimage.data.astronaut()
    frame = np.zeros((50, 60, 3), np.uint8)
    frame[10:20, 5:25] = 255
    assert (tight_box_crop(frame, np.array([5.7, 10.2, 25.9, 20.9]), 16) == 255).all()   # exactly the box, no margin
    face = FaceDetector().detect(img[None])[0]
    chip = dlib_face_chip(img, face.box, 224)
    assert chip.shape == (224, 224, 3) and chip.std() > 20


class _EightClass:
    """A classifier double with HSEmotion's 8 classes; every crop says contempt 0.6, happiness 0.3."""

    name = "fake8"
    classes = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
    input_size = 32
    clip_level = False
    crop_rule = "test"
    preprocess = "test"

    def crop(self, frame, face):
        return np.zeros((32, 32, 3), np.uint8)

    def predict(self, crops):
        p = np.full((len(crops), 8), 0.1 / 6)
        p[:, 1], p[:, 4] = 0.6, 0.3
        return p

    def describe(self):
        return {"classifier": self.name}


def _feats(n=3):
    return {"probs": _EightClass().predict(np.zeros((n, 32, 32, 3))), "n_sampled": np.array(n), "n_noface": np.array(0)}


def test_contempt_scored_by_an_8_class_classifier_and_skipped_by_fer2013():
    from moee_bench.bench.core.errors import ClipError
    from moee_bench.metrics.core.base import ClipContext, ClipInput
    from moee_bench.metrics.emotion.metric import Emotion, extra_target

    m = Emotion(None, classifier=_EightClass())
    ctx = ClipContext(ClipInput("c", "x.mp4", emotion=extra_target("contempt")), 25.0, (64, 64))
    v = m.update(ctx, _feats())
    assert v["emotion_acc/contempt"] == 1.0 and v["emotion_target_prob"] == pytest.approx(0.6)
    happy = ClipContext(ClipInput("h", "x.mp4", emotion=parse_emotion("happiness")), 25.0, (64, 64))
    hv = m.update(happy, _feats())
    # on the taxonomy contempt is removed and the rest renormalised: happiness 0.3 / 0.4
    assert hv["emotion_acc"] == 1.0 and hv["emotion_target_prob"] == pytest.approx(0.75)
    out = m.compute()
    assert out["emotion_acc/contempt"] == 1.0 and out["emotion_clips/contempt"] == 1 and out["emotion_acc"] == 1.0
    fer = Emotion(None)
    with pytest.raises(ClipError, match="no contempt class") as e:
        fer.update(ctx, {"probs": np.full((2, 7), 1 / 7), "n_sampled": np.array(2), "n_noface": np.array(0)})
    assert e.value.status == "skipped"
