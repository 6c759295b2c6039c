"""Foundation contracts: taxonomy, manifest hashing, paths, media round trips, the evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import BASIC, mixture, parse_emotion
from moee_bench.bench.core.errors import EmotionLabelError, ManifestError, MediaError, PathEscapeError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.bench.core.paths import resolve_inside


def test_parse_basic_alias_compound_and_mixture():
    assert parse_emotion("disgusted").label == "disgust"
    assert parse_emotion("HAPPY").weights == tuple(1.0 if b == "happiness" else 0.0 for b in BASIC)
    c = parse_emotion("angrily_disgusted")
    assert c.kind == "compound" and set(c.components) == {"anger", "disgust"}
    c2 = parse_emotion("sad+surprised")
    assert c2.kind == "compound" and set(c2.components) == {"sadness", "surprise"}
    m = mixture({"happiness": 3, "surprise": 1})
    assert m.weights[0] == pytest.approx(0.75) and m.components == ("happiness", "surprise")
    assert parse_emotion("neutral").is_emotional is False


def test_unknown_and_excluded_labels_name_the_clip():
    with pytest.raises(EmotionLabelError, match="clip c7: unknown emotion label 'bored'"):
        parse_emotion("bored", clip_id="c7")
    with pytest.raises(EmotionLabelError, match="excluded") as ei:
        parse_emotion("contempt", clip_id="c8")
    assert ei.value.status == "excluded"


def test_resolve_inside_rejects_escapes(tmp_path: Path):
    (tmp_path / "a").mkdir()
    assert resolve_inside(tmp_path, "a/x.mp4") == (tmp_path / "a/x.mp4").resolve()
    for bad in ("../x.mp4", "/etc/passwd", "a/../../x"):
        with pytest.raises(PathEscapeError, match="clip k"):
            resolve_inside(tmp_path, bad, clip_id="k")


def test_manifest_round_trip_and_tamper_detection(tmp_path: Path):
    clips = [ClipRecord("c1", "id1", "v/c1.mp4", parse_emotion("happy"), split="test"),
             ClipRecord("c2", "id2", "v/c2.mp4", mixture([1, 0, 0, 0, 0, 1]))]
    m = Manifest("demo", tmp_path, clips)
    p = m.save(tmp_path / "m.json")
    m2 = load_manifest(p)
    assert [c.to_dict() for c in m2.clips] == [c.to_dict() for c in clips]
    assert m2.root == tmp_path.resolve()
    body = json.loads(p.read_text())
    body["clips"][0]["emotion"]["label"] = "sad"
    p.write_text(json.dumps(body))
    with pytest.raises(ManifestError, match="content hash mismatch"):
        load_manifest(p)
    assert load_manifest(p, verify_hash=False).clips[0].emotion.label == "sadness"
    with pytest.raises(ManifestError, match="duplicate clip id"):
        Manifest("d", tmp_path, [clips[0], clips[0]])


def test_media_round_trip_and_fps_resampling(tmp_path: Path):
    frames = np.zeros((50, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(50) * 5)[:, None, None]
    audio = np.zeros(32000, np.float32)
    audio[8000:8080] = 0.8
    p = media.write_video(tmp_path / "v.mp4", [frames], 25, audio=audio)
    info = media.probe(p)
    assert (info.width, info.height, info.n_frames, info.fps, info.has_audio) == (48, 32, 50, 25.0, True)
    back = media.read_frames(p)
    assert back.shape == (50, 32, 48, 3)
    assert np.abs(back[:, 0, 0, 0].astype(int) - frames[:, 0, 0, 0]).max() <= 3
    r = media.FrameReader(p, fps=30)
    assert sum(len(c) for c in r) == 60
    assert r.source_indices[:7] == [0, 1, 2, 2, 3, 4, 5]
    a = media.read_audio(p)
    assert abs(int(np.argmax(np.abs(a))) - 8040) < 100   # AAC priming is trimmed: onsets stay in place


def test_media_errors_name_the_clip(tmp_path: Path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="clip k1: .*corrupt"):
        media.read_frames(bad, clip_id="k1")
    with pytest.raises(MediaError, match="clip k2: .*does not exist"):
        media.probe(tmp_path / "nope.mp4", clip_id="k2")
    silent = media.write_video(tmp_path / "s.mp4", [np.zeros((5, 16, 16, 3), np.uint8)], 25)
    with pytest.raises(MediaError, match="clip k3: .*no audio stream") as ei:
        media.read_audio(silent, clip_id="k3")
    assert ei.value.status == "no_audio"


def test_psnr_matches_skimage_and_merge_equals_single_pass(tmp_path: Path, write_clip):
    from skimage.metrics import peak_signal_noise_ratio

    from moee_bench.metrics.core.evaluate import ClipInput, evaluate
    from moee_bench.metrics.visual.psnr import PSNR

    clips, frames = [], []
    for i in range(2):
        pred = write_clip(f"p{i}", seed=i, folder=tmp_path / "pred")
        gt = write_clip(f"p{i}", seed=10 + i, folder=tmp_path / "gt")
        clips.append(ClipInput(f"p{i}", pred, gt))
        frames.append((media.read_frames(pred), media.read_frames(gt)))
    whole = PSNR()
    res = evaluate(clips, [whole], progress=False)
    ref = np.mean([peak_signal_noise_ratio(g[t], p[t], data_range=255) for p, g in frames for t in range(len(p))])
    assert res.metrics["psnr"] == pytest.approx(ref, abs=1e-6)
    a, b = PSNR(), PSNR()
    evaluate(clips[:1], [a], progress=False)
    evaluate(clips[1:], [b], progress=False)
    a.merge(b)
    merged, single = a.compute(), whole.compute()
    assert merged.keys() == single.keys()
    for k in single:
        assert merged[k] == pytest.approx(single[k], rel=1e-12)


def test_load_into_names_keys_that_do_not_fit():
    import torch

    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.bench.core.weights import load_into

    net = torch.nn.Linear(2, 3)
    with pytest.raises(WeightsError, match=r"toy weights does not fit: missing \['bias'\], unexpected \['extra'\]"):
        load_into(net, {"weight": torch.zeros(3, 2), "extra": torch.zeros(1)}, what="toy weights")
    load_into(net, {"weight": torch.ones(3, 2)}, what="toy weights", allow_missing=("bias",))
    assert float(net.weight.sum()) == 6.0
