"""Bad input: each kind gets a clear error naming the clip, never a silent 0 or a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.errors import BenchError, EmotionLabelError, ManifestError, MediaError, PathEscapeError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.metrics.core.evaluate import ClipInput, evaluate
from moee_bench.metrics.visual.psnr import PSNR


def _video(path: Path, n: int = 20, audio: bool = True, fps: float = 25) -> Path:
    frames = np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    return media.write_video(path, [frames], fps, audio=np.zeros(int(n / fps * 16000), np.float32) if audio else None)


def test_corrupt_video(tmp_path: Path):
    p = tmp_path / "c.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(MediaError, match=r"clip c1: .*corrupt"):
        media.read_frames(p, clip_id="c1")


def test_truncated_video(tmp_path: Path):
    p = _video(tmp_path / "t.mp4", n=100)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"clip c2: .*(corrupt|truncated)"):
        media.read_frames(p, clip_id="c2")


def test_missing_audio_stream(tmp_path: Path):
    p = _video(tmp_path / "na.mp4", audio=False)
    with pytest.raises(MediaError, match="clip c3: .*no audio stream"):
        media.read_audio(p, clip_id="c3")


def test_zero_length_video(tmp_path: Path):
    p = tmp_path / "z.mp4"
    p.write_bytes(b"")
    with pytest.raises(MediaError, match="clip c4: "):
        media.read_frames(p, clip_id="c4")
    with pytest.raises(MediaError, match="clip c4b: refusing to write .*no frames"):
        media.write_video(tmp_path / "empty.mp4", [], 25, clip_id="c4b")


def test_unreadable_path(tmp_path: Path):
    with pytest.raises(MediaError, match="clip c5: .*does not exist"):
        media.read_frames(tmp_path / "missing.mp4", clip_id="c5")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="clip c5b: .*is a folder"):
        media.read_frames(tmp_path / "dir.mp4", clip_id="c5b")


def test_path_escaping_the_root(tmp_path: Path):
    m = Manifest("d", tmp_path / "root", [ClipRecord("c6", "p", "../../etc/passwd", parse_emotion("happy"))])
    with pytest.raises(PathEscapeError, match="clip c6: .*escapes the dataset root"):
        m.media_path(m.clips[0])


def test_unknown_emotion_label_in_manifest(tmp_path: Path):
    m = Manifest("d", tmp_path, [ClipRecord("c7", "p", "v.mp4", parse_emotion("happy"))])
    p = m.save(tmp_path / "m.json")
    body = json.loads(p.read_text())
    body["clips"][0]["emotion"]["label"] = "ecstatic"
    p.write_text(json.dumps(body))
    with pytest.raises(EmotionLabelError, match="clip c7: unknown emotion label 'ecstatic'"):
        load_manifest(p, verify_hash=False)


def test_duplicate_clip_id(tmp_path: Path):
    c = ClipRecord("c8", "p", "v.mp4", parse_emotion("fear"))
    with pytest.raises(ManifestError, match="clip c8: duplicate clip id"):
        Manifest("d", tmp_path, [c, c])


def test_nan_audio(tmp_path: Path):
    import soundfile as sf

    a = np.zeros(16000, np.float32)
    a[100] = np.nan
    sf.write(tmp_path / "nan.wav", a, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="clip c9: .*NaN"):
        media.read_audio(tmp_path / "nan.wav", clip_id="c9")


def test_wrong_frame_rate_is_resampled_and_length_mismatch_recorded(tmp_path: Path):
    pred = _video(tmp_path / "p" / "c10.mp4", n=30, fps=30)     # 1 s at 30 fps
    gt = _video(tmp_path / "g" / "c10.mp4", n=30, fps=25)       # 1.2 s at 25 fps
    res = evaluate([ClipInput("c10", pred, gt)], [PSNR()], progress=False)
    out = res.clips[0]
    assert out.n_frames == 25 and any("length mismatch" in w for w in out.warnings)
    strict = evaluate([ClipInput("c10", pred, gt)], [PSNR()], progress=False, strict=True).clips[0]
    assert strict.status["psnr"] == "length_mismatch" and "clip" not in strict.values


def test_bad_clip_is_isolated_not_scored_zero(tmp_path: Path):
    good = _video(tmp_path / "p" / "ok.mp4")
    bad = tmp_path / "p" / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    res = evaluate([ClipInput("bad", bad, good), ClipInput("ok", good, good)], [PSNR()], progress=False)
    by = {c.clip_id: c for c in res.clips}
    assert by["bad"].status["psnr"] == "error" and "psnr" not in by["bad"].values
    assert "corrupt" in by["bad"].messages["psnr"]
    assert by["ok"].status["psnr"] == "ok" and res.metrics["psnr_n_frames"] == 20


def test_tampered_weights_are_refused(tmp_path: Path, monkeypatch):
    import torch

    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.bench.core.weights import get_spec, load_state_dict, resolve

    spec = get_spec("lpips_alexnet")
    torch.save({"w": torch.zeros(2)}, tmp_path / spec.file)
    with pytest.raises(WeightsError, match="sha256 .* expected 7be5be79"):
        resolve("lpips_alexnet", tmp_path)
    with pytest.warns(UserWarning, match="unverified"):
        r = resolve("lpips_alexnet", tmp_path, allow_unverified=True)
    assert r.verified is False and set(load_state_dict(r)) == {"w"}
    import pickle

    (tmp_path / spec.file).write_bytes(pickle.dumps(object()))
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        load_state_dict(resolve("lpips_alexnet", tmp_path, allow_unverified=True))
    monkeypatch.delenv("MOEE_BENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(WeightsError, match=r"^put alexnet-owt-7be5be79.pth at .*empty/alexnet-owt-7be5be79.pth "
                                           r"\(from https://download.pytorch.org/"):
        resolve("lpips_alexnet", tmp_path / "empty")
    assert issubclass(WeightsError, BenchError)
