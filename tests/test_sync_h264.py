"""Sync-C/D on a real H.264 yuv420p face clip through ``score``, against syncnet-python's own file steps.

The clip is natural content (scikit-image's astronaut photograph, the face panned and zoomed) encoded
with libx264 yuv420p + AAC, as datasets and methods ship them; a lossless BGR source would hide the
colour/chroma path that decides the JPEG pixels SyncNet sees. The reference side is syncnet-python
0.2.3's step 8 built with the package's own ffmpeg-python calls, ``SyncNetInstance.evaluate`` with the
same random weights in the official format (a plain ``S`` state dict).
"""

from __future__ import annotations

import contextlib
import io
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from moee_bench.bench.cli import main


def _astronaut_clip(path: Path, n: int = 42, seed: int = 0) -> Path:
    """A 224x224 face crop that pans and zooms over the astronaut's face, with a speech-like AAC track."""
    from skimage import data

    from moee_bench.bench.core.media import write_video

    img = data.astronaut()                      # RGB 512x512, the face around rows 20-220, columns 150-330
    frames = []
    for i in range(n):
        s = 230 + 12 * np.sin(i / 5.0)
        cx, cy = 240 + 10 * np.sin(i / 3.0), 120 + 6 * np.cos(i / 4.0)
        m = np.float32([[224 / s, 0, -(cx - s / 2) * 224 / s], [0, 224 / s, -(cy - s / 2) * 224 / s]])
        frames.append(cv2.warpAffine(img, m, (224, 224), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * n / 25)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
             + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    return write_video(path, [np.stack(frames)], 25.0, audio=audio, crf=23)


def _weights(folder: Path) -> Path:
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(3)
    net = S()
    for mod in net.modules():   # non-trivial BN statistics, so the distance curve is not flat
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "syncnet_v2.model")
    return folder / "syncnet_v2.model"


def _reference(clip: Path, weights: Path, work: Path) -> tuple[int, float, float]:
    """syncnet-python 0.2.3 ``inference`` step 8 on a face-crop video, with the package's ffmpeg-python calls."""
    import ffmpeg
    import imageio_ffmpeg
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    work.mkdir()
    ffmpeg.input(str(clip)).output(str(work / "%06d.jpg"), f="image2", threads=1).overwrite_output().run(cmd=exe, quiet=True)
    ffmpeg.input(str(clip)).output(str(work / "audio.wav"), ac=1, vn=None, acodec="pcm_s16le", ar=16000,
                                   af="aresample=async=1").overwrite_output().run(cmd=exe, quiet=True)
    net = S()
    net.load_state_dict(torch.load(weights, weights_only=True))
    with contextlib.redirect_stdout(io.StringIO()):
        return SyncNetInstance(net.eval(), device="cpu").evaluate(types.SimpleNamespace(tmp_dir=str(work), batch_size=20, vshift=15))


@pytest.fixture(scope="module")
def h264_case(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("h264")
    clip = _astronaut_clip(d / "pred" / "astro.mp4")
    w = _weights(d / "w")
    return d, clip, w, _reference(clip, w, d / "ref")


def _score(d: Path, tag: str, *args: str) -> dict:
    out = d / f"{tag}.json"
    assert main(["score", "--pred", str(d / "pred"), "--metrics", "sync", "--json", str(out), "--weights-dir",
                 str(d / "w"), "--allow-unverified-weights", *args]) == 0
    return json.loads(out.read_text())


def test_clip_is_h264_yuv420p(h264_case) -> None:
    import av

    _, clip, _, _ = h264_case
    with av.open(str(clip)) as c:
        vs = c.streams.video[0]
        assert vs.codec_context.name == "h264" and vs.codec_context.pix_fmt == "yuv420p"
        assert (vs.codec_context.width, vs.codec_context.height) == (224, 224) and c.streams.audio


@pytest.mark.parametrize("how", ["flag", "param"])
def test_face_cropped_score_matches_syncnet_python_on_h264(h264_case, how: str) -> None:
    d, _, _, (r_off, r_conf, r_dist) = h264_case
    res = _score(d, how, *(["--face-cropped"] if how == "flag" else ["--param", "face_cropped=true"]))
    c = res["clips"][0]
    assert c["status"].get("sync", "ok") == "ok", c
    assert c["offset"] == r_off
    assert c["sync_c"] == pytest.approx(r_conf, abs=1e-4)
    assert c["sync_d"] == pytest.approx(r_dist, abs=1e-4)
    proto = res["protocol"]["metrics"]["sync"]
    assert proto["face_cropped"] is True and proto["pixels"] == "jpeg"
    assert proto["ffmpeg"].startswith("ffmpeg ") and "libavcodec" in proto["ffmpeg"]   # the binary that wrote the JPEGs


def test_exact_pixels_is_a_named_different_number(h264_case) -> None:
    """``sync_pixels=exact`` skips the JPEG round trip: recorded, and not the reference's number."""
    d, _, _, (_, r_conf, r_dist) = h264_case
    res = _score(d, "exact", "--face-cropped", "--param", "sync_pixels=exact")
    c = res["clips"][0]
    assert res["protocol"]["metrics"]["sync"]["pixels"] == "exact" and "ffmpeg" not in res["protocol"]["metrics"]["sync"]
    assert abs(c["sync_d"] - r_dist) > 1e-3 or abs(c["sync_c"] - r_conf) > 1e-3
