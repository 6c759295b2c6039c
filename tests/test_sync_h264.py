"""Sync-C/D on a real H.264 yuv420p face clip through ``score``, against syncnet-python's own file steps.

The clips are natural content (scikit-image's astronaut photograph, panned and zoomed) encoded with
libx264 yuv420p + AAC, as datasets and methods ship them; a lossless BGR source would hide the colour/
chroma path that decides the JPEG pixels SyncNet sees. Face-cropped: the reference is syncnet-python
0.2.3's step 8 built with the package's own ffmpeg-python calls and ``SyncNetInstance.evaluate``, with the
same random weights in the official format (a plain ``S`` state dict). Tracked: ``SyncNetPipeline.inference``
against the metric's tracked path, the S3FD network running on both sides and the boxes from one stand-in.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from moee_bench.bench.cli.app import main
from moee_bench.bench.perf.sync import pan_zoom_clip, random_weights


def _reference(clip: Path, weights: Path, work: Path) -> tuple[int, float, float]:
    """syncnet-python 0.2.3 ``inference`` step 8 on a face-crop video (the package's ffmpeg-python calls)."""
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    from moee_bench.bench.perf.sync import _reference_face_cropped

    net = S()
    net.load_state_dict(torch.load(weights, weights_only=True))
    return _reference_face_cropped(clip, SyncNetInstance(net.eval(), device="cpu"), work)


@pytest.fixture(scope="module")
def h264_case(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("h264")
    clip = pan_zoom_clip(d / "pred" / "astro.mp4", n=42)
    w = random_weights(d / "w", seed=3, s3fd=False) / "syncnet_v2.model"
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


def test_tracked_matches_syncnet_pipeline_on_h264(tmp_path: Path) -> None:
    """The tracked path (q2 AVI + JPEG frames, batched S3FD, scenes, tracks, XVID crops, JPEG, SyncNet) gives
    syncnet-python's per-track numbers; 1.6 s clip, tracks of more than 25 frames. S3FD itself is left out on both
    sides here (random weights find nothing; its batched form is tested against ``detect_faces`` on its own)."""
    from moee_bench.bench.perf.sync import _ffmpeg_on_path, _ours, our_metric, reference_pipeline

    clip = pan_zoom_clip(tmp_path / "tr" / "astro.mp4", n=40, size=320, span=460.0)
    w = random_weights(tmp_path / "w", seed=3)
    with _ffmpeg_on_path(), contextlib.redirect_stdout(io.StringIO()):
        offs, confs, dists, _, _, _, has_face = reference_pipeline(w, 25, run_s3fd=False).inference(str(clip), None,
                                                                                     cache_dir=str(tmp_path / "ref"))
    assert len(confs) == 1
    off, c, d, tracks = _ours(our_metric(w, face_cropped=False, min_track=25, run_s3fd=False), clip)
    assert len(tracks) == 1 and tracks[0]["length"] == len(list((tmp_path / "ref" / "cropped" / "crop_00000").glob("*.jpg")))
    assert off == offs[0]
    assert c == pytest.approx(confs[0], abs=1e-4) and d == pytest.approx(dists[0], abs=1e-4)
