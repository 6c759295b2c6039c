"""Media decoding checked against the ffmpeg CLI the project ships (issue 31, part A).

Every odd file is built here with that ffmpeg (imageio-ffmpeg's binary, :func:`bench.core.ffmpeg.ffmpeg_exe`),
decoded by the CLI (``ffmpeg -i FILE -f rawvideo -pix_fmt rgb24 -``) and by our reader, and the frames compared:
the CLI's output is the answer, not our reading of the file. Tiny sizes (64x48, 10-30 frames)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import MediaError
from moee_bench.bench.core.ffmpeg import ffmpeg_exe
from moee_bench.metrics.sync import sync_io

SRC = "testsrc2=size=64x48:rate=25"


def ff(*args: str | Path) -> None:
    """Run the shipped ffmpeg binary (argument list, no shell); fail the test with its stderr."""
    r = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def cli_frames(path: Path, *extra: str) -> np.ndarray:
    """What the ffmpeg CLI shows: ``ffmpeg -i FILE [extra] -f rawvideo -pix_fmt rgb24 -`` as (n, H, W, 3)."""
    r = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", f"file:{path}", *extra, "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-500:]
    w, h = map(int, re.findall(r"Output #0.*?Video: rawvideo.*?, (\d+)x(\d+)", r.stderr.decode(), re.S)[-1])
    return np.frombuffer(r.stdout, np.uint8).reshape(-1, h, w, 3)


def passthrough(path: Path) -> np.ndarray:
    """The CLI's frames one for one (no frame-rate conversion by the rawvideo muxer's constant rate)."""
    return cli_frames(path, "-fps_mode", "passthrough")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """30 frames of 64x48 H.264 (B-frames) at 25 fps with an AAC track."""
    d = tmp_path_factory.mktemp("media")
    p = d / "base.mp4"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=1.2", "-f", "lavfi", "-i", "sine=frequency=440:duration=1.2",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", p)
    return p


def _reader(path: Path, **kw) -> tuple[np.ndarray, media.FrameReader]:
    r = media.FrameReader(path, **kw)
    return np.concatenate(list(r)), r


def test_ordinary_file_is_decoded_as_the_cli_shows_it(base):
    got, r = _reader(base)
    assert np.array_equal(got, passthrough(base))
    assert r.notes == []


# 1. rotation ----------------------------------------------------------------------------------------------
ROTATIONS = {"rot90": ["-display_rotation", "90"], "rot180": ["-display_rotation", "180"],
             "rot270": ["-display_rotation", "270"], "hflip": ["-display_hflip"], "vflip": ["-display_vflip"],
             "rot90_hflip": ["-display_rotation", "90", "-display_hflip"], "rot45": ["-display_rotation", "45"]}


@pytest.mark.parametrize("name", list(ROTATIONS))
def test_display_matrix_is_applied_as_the_cli_autorotates(base, tmp_path, name):
    """A stream copy with a display matrix decodes as the CLI shows it (bit-exact), with a note; probe gives the
    displayed size. Old code: the stored frames (PSNR 100 against the unrotated GT)."""
    p = tmp_path / f"{name}.mp4"
    ff(*ROTATIONS[name], "-i", base, "-c", "copy", p)
    want = passthrough(p)
    got, r = _reader(p)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert not np.array_equal(got, passthrough(base)) or got.shape != passthrough(base).shape
    assert any(n.startswith("display matrix applied as the ffmpeg CLI autorotates") for n in r.notes), r.notes
    info = media.probe(p)
    assert (info.height, info.width) == want.shape[1:3]


def test_rotated_copy_of_the_gt_is_not_scored_as_identical(base, tmp_path, capsys):
    """The issue's case through ``moee-bench score``: a 90-degree stream copy of the GT scored PSNR 100 before."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    ff("-i", base, "-c", "copy", gt / "c1.mp4")
    ff("-display_rotation", "90", "-i", base, "-c", "copy", pred / "c1.mp4")
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["psnr"] < 20
    warns = res["clips"][0]["warnings"]
    assert any("pred: display matrix applied" in w for w in warns)
    assert any(w.startswith("resized: pred 48x64 -> 64x48") for w in warns), warns


# 2. stream choice --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_streams(base, tmp_path_factory) -> Path:
    """Video stream 0: a 1-fps still (not default); stream 1: the real video, default disposition."""
    d = tmp_path_factory.mktemp("streams")
    still = d / "still.mp4"
    ff("-f", "lavfi", "-i", "color=c=red:size=64x48:rate=1:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", still)
    p = d / "two.mp4"
    ff("-i", still, "-i", base, "-map", "0:v", "-map", "1:v", "-map", "1:a", "-c", "copy",
       "-disposition:v:0", "0", "-disposition:v:1", "default", p)
    return p


def test_the_cli_default_video_stream_is_read_and_noted(two_streams):
    want = passthrough(two_streams)
    got, r = _reader(two_streams)
    assert len(want) == 30 and np.array_equal(got, want)            # the real video, not the 2-frame still
    assert any(n.startswith("video stream 0:v:1 of 2") for n in r.notes), r.notes


def test_video_stream_param_reads_another(two_streams):
    got, r = _reader(two_streams, video_stream=0)
    assert np.array_equal(got, cli_frames(two_streams, "-map", "0:v:0", "-fps_mode", "passthrough"))
    assert any("video_stream=0" in n for n in r.notes)
    with pytest.raises(MediaError, match="video_stream=2: .* has 2 video stream"):
        _reader(two_streams, video_stream=2)


@pytest.mark.parametrize("ext,size", [("mkv", (48, 64)), ("mp4", (24, 32))])
def test_highest_resolution_wins_then_the_default(base, tmp_path, ext, size):
    """Neither stream marked default: Matroska keeps that and the larger stream wins; the mp4 muxer marks the
    first track default, which outweighs the size (score + 5e6), and the CLI reads the small one. So do we."""
    small = tmp_path / "small.mp4"
    ff("-f", "lavfi", "-i", "testsrc=size=32x24:rate=25:duration=0.4", "-c:v", "libx264", "-pix_fmt", "yuv420p", small)
    p = tmp_path / f"two.{ext}"
    ff("-i", small, "-i", base, "-map", "0:v", "-map", "1:v", "-c", "copy", "-disposition:v:0", "0",
       "-disposition:v:1", "0", p)
    got, _ = _reader(p)
    assert np.array_equal(got, passthrough(p)) and got.shape[1:3] == size


def test_score_param_video_stream(two_streams, tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    (pred / "c1.mp4").write_bytes(two_streams.read_bytes())
    (gt / "c1.mp4").write_bytes(two_streams.read_bytes())
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["psnr"] == pytest.approx(100.0)
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out),
                 "--param", "video_stream=0"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["psnr"] < 30                                 # the red still against the real GT video
    assert any("video_stream=0" in w for w in res["clips"][0]["warnings"])


# 3. edit lists -------------------------------------------------------------------------------------------------
def test_trimmed_file_decodes_the_frames_its_edit_list_shows(base, tmp_path):
    """``-ss 0.5 -c copy -t 0.5``: the container stores 27 samples, its edit list shows 14. Old code: "truncated:
    the container lists 27 frames, only 14 decoded" and the clip dropped."""
    p = tmp_path / "trim.mp4"
    ff("-ss", "0.5", "-i", base, "-c", "copy", "-t", "0.5", p)
    want = passthrough(p)
    got, r = _reader(p)
    assert np.array_equal(got, want)
    assert any(n.startswith(f"edit list: {len(want)} frames shown of") for n in r.notes), r.notes
    assert len(media.read_frames(p, fps=25)) == len(cli_frames(p))      # the CLI's constant 25 fps output length
    gt = tmp_path / "gt"
    pred = tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    (gt / "c1.mp4").write_bytes(p.read_bytes())
    (pred / "c1.mp4").write_bytes(p.read_bytes())
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["psnr"] == pytest.approx(100.0) and res["clips"][0]["status"]["psnr"] == "ok"
    assert any(w.startswith("resampled: pred 25 fps with uneven timestamps") for w in res["clips"][0]["warnings"])


# 7. names that FFmpeg would read as a protocol or an option ---------------------------------------------------------
def test_a_file_named_like_a_protocol_is_read_as_itself(base, tmp_path, monkeypatch):
    other = tmp_path / "other.mp4"
    ff("-f", "lavfi", "-i", "color=c=blue:size=64x48:rate=25:duration=0.4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       other)
    (tmp_path / "concat:other.mp4").write_bytes(base.read_bytes())
    (tmp_path / "-i.mp4").write_bytes(base.read_bytes())
    monkeypatch.chdir(tmp_path)
    want = passthrough(base)
    for name in ("concat:other.mp4", "-i.mp4"):
        assert np.array_equal(media.read_frames(name), want), name          # old code: other.mp4's blue frames
    files = sync_io.jpeg_dump("concat:other.mp4", tmp_path / "jpg")          # the ffmpeg binary, too
    assert len(files) == len(want)


def test_score_folder_with_a_protocol_named_file(base, tmp_path, monkeypatch):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    ff("-f", "lavfi", "-i", "color=c=blue:size=64x48:rate=25:duration=1.2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       pred / "other.mp4")
    (pred / "concat:other.mp4").write_bytes(base.read_bytes())
    (gt / "concat:other.mp4").write_bytes(base.read_bytes())
    monkeypatch.chdir(pred)
    out = tmp_path / "s.json"
    main(["score", "--pred", ".", "--gt", str(gt), "--metrics", "psnr", "--json", str(out)])
    clips = {c["clip"]: c for c in json.loads(out.read_text())["clips"]}
    assert clips["concat:other"]["psnr"] == pytest.approx(100.0)


# 8. audio / video start offsets ---------------------------------------------------------------------------------
def _lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``a`` lags ``b`` (cross-correlation peak)."""
    from scipy.signal import correlate

    return int(np.argmax(correlate(a, b, mode="full", method="fft")) - (len(b) - 1))


def _cli_audio(path: Path) -> np.ndarray:
    """The CLI's audio on the file's timeline (``aresample=async=1:first_pts=0`` pads to time 0), mono 16 kHz."""
    r = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", f"file:{path}", "-vn", "-af",
                        "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
                       capture_output=True, check=True)
    return np.frombuffer(r.stdout, np.float32)


@pytest.fixture(scope="module")
def speech_like(tmp_path_factory) -> Path:
    """Video plus a non-periodic audio track (noise bursts), so a cross-correlation has one peak."""
    d = tmp_path_factory.mktemp("av")
    p = d / "av.mp4"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=1.2", "-f", "lavfi", "-i",
       "anoisesrc=d=1.2:c=pink:r=44100:a=0.3,volume='if(lt(mod(t,0.3),0.1),1,0.05)':eval=frame", "-c:v", "libx264",
       "-pix_fmt", "yuv420p", "-c:a", "aac", p)
    return p


def test_audio_starting_later_is_aligned_to_the_first_frame(speech_like, tmp_path):
    """Audio 0.5 s after the video: on the CLI's timeline (time 0 = the video's first frame) it starts 0.5 s in;
    ours too, within 2.5 ms (40 samples at 16 kHz, 1/16 of a 25-fps frame). Old code: at sample 0 (0.5 s early)."""
    p = tmp_path / "aoff.mp4"
    ff("-i", speech_like, "-itsoffset", "0.5", "-i", speech_like, "-map", "0:v", "-map", "1:a", "-c", "copy", p)
    ref = _cli_audio(p)
    got, note = media.read_video_audio(p)
    assert abs(_lag(got, ref)) <= 40
    assert abs(_lag(media.read_audio(p), ref)) > 7000                  # the unaligned read: the old behaviour
    assert note and note.startswith("audio starts 0.4") and "after the video" in note
    _, r = _reader(p)
    assert any(n.startswith("audio starts 0.4") for n in r.notes)


def test_audio_starting_earlier_loses_what_plays_before_frame_0(speech_like, tmp_path):
    """Video 0.5 s after the audio: the CLI's timeline starts with the audio, so ours is the CLI's from 0.5 s on."""
    p = tmp_path / "voff.mp4"
    ff("-itsoffset", "0.5", "-i", speech_like, "-i", speech_like, "-map", "0:v", "-map", "1:a", "-c", "copy", p)
    got, note = media.read_video_audio(p)
    assert abs(_lag(got, _cli_audio(p)) + 8000) <= 40
    assert note and "before the video" in note


# weak cases: pixel formats, colour tags, odd containers -------------------------------------------------------------
PIXELS = {"yuv420p10le": ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"],
          "yuv422p10le": ["-c:v", "libx264", "-pix_fmt", "yuv422p10le"],
          "yuvj420p": ["-c:v", "libx264", "-pix_fmt", "yuvj420p"],
          "bt709": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                    "-color_trc", "bt709"],
          "full_range": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-color_range", "pc"],
          "yuv444p": ["-c:v", "libx264", "-pix_fmt", "yuv444p"],
          "yuvj444p": ["-c:v", "libx264", "-pix_fmt", "yuvj444p"],
          "yuv422p": ["-c:v", "libx264", "-pix_fmt", "yuv422p"],
          "yuvj422p_mjpeg": ["-c:v", "mjpeg", "-pix_fmt", "yuvj422p"],
          "bt709_yuv444p": ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-colorspace", "bt709"],
          "bt601_full": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "smpte170m", "-color_range", "pc"],
          "rgb24_ffv1": ["-c:v", "ffv1", "-pix_fmt", "rgb24"],
          "gbrp_x264rgb": ["-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24"],
          "nv12_odd": ["-vf", "crop=63:47", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
          "vp9": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"]}


@pytest.mark.parametrize("name", list(PIXELS))
def test_pixel_formats_and_colour_tags_convert_as_the_cli(tmp_path, name):
    """10-bit sources: PyAV's ``to_ndarray`` differed from the CLI by up to 118 levels; now bit-exact."""
    p = tmp_path / f"{name}.{'webm' if name == 'vp9' else 'mkv' if name == 'rgb24_ffv1' else 'mp4'}"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=0.4", *PIXELS[name], p)
    got, _ = _reader(p)
    assert np.array_equal(got, passthrough(p))


def test_png_named_mp4_is_a_one_frame_video_with_a_note(tmp_path):
    p = tmp_path / "still.mp4"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=0.04", "-frames:v", "1", "-c:v", "png", "-f", "image2", p)
    got, r = _reader(p)
    assert np.array_equal(got, passthrough(p)) and len(got) == 1
    assert any(n.startswith("a still image (png)") for n in r.notes), r.notes


def test_raw_elementary_stream_timing_is_noted(tmp_path):
    p = tmp_path / "raw.mp4"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=0.4", "-c:v", "libx264", "-f", "h264", p)
    got, r = _reader(p)
    assert np.array_equal(got, passthrough(p))
    assert any(n.startswith("no timestamps in h264") and "25 fps" in n for n in r.notes), r.notes


def test_mid_stream_size_change_is_noted(tmp_path):
    """Two raw H.264 streams of different sizes back to back: the CLI scales the second part to the first size;
    we do too (our resize kernel, so only the first part is compared bit for bit) and say so."""
    a, b = tmp_path / "a.h264", tmp_path / "b.h264"
    ff("-f", "lavfi", "-i", f"{SRC}:duration=0.4", "-c:v", "libx264", a)
    ff("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25:duration=0.4", "-c:v", "libx264", b)
    p = tmp_path / "both.h264"
    p.write_bytes(a.read_bytes() + b.read_bytes())
    want = passthrough(p)
    got, r = _reader(p)
    assert got.shape == want.shape == (20, 48, 64, 3)
    assert np.array_equal(got[:10], want[:10])
    assert any(n.startswith("frame size changes mid-stream (64x48 first, then 32x24 at frame 10)") for n in r.notes)


# weak cases: pairing, names, output -------------------------------------------------------------------------------
def test_containers_and_suffix_case_are_matched_and_skipped_files_listed(base, tmp_path):
    """``c1.MP4`` against ``c1.mov``, an NFD (macOS) name against its NFC twin, a ``.txt`` listed as skipped.
    Old code: only ``*.mp4`` (case-sensitive) was seen, and "no generated counterpart" printed."""
    import unicodedata

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    (pred / "c1.MP4").write_bytes(base.read_bytes())
    (gt / "c1.mov").write_bytes(base.read_bytes())
    (pred / (unicodedata.normalize("NFD", "café") + ".mkv")).write_bytes(base.read_bytes())
    (gt / (unicodedata.normalize("NFC", "café") + ".mp4")).write_bytes(base.read_bytes())
    (pred / "notes.txt").write_text("x")
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert sorted(c["clip"] for c in res["clips"]) == ["c1", "café"]
    assert all(c["psnr"] == pytest.approx(100.0) for c in res["clips"])
    warns = res["protocol"]["pairing_warnings"]
    assert any("skipped" in w and "notes.txt" in w for w in warns), warns
    assert not any("no generated counterpart" in w for w in warns)


def test_pred_that_is_the_gt_file_is_noted(base, tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    (gt / "c1.mp4").write_bytes(base.read_bytes())
    os.link(gt / "c1.mp4", pred / "c1.mp4")
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    assert any(w.startswith("same file: pred") for w in json.loads(out.read_text())["clips"][0]["warnings"])


def test_a_1x1_prediction_is_noted_as_upscaled(base, tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    ff("-f", "lavfi", "-i", "color=c=gray:size=1x1:rate=25:duration=1.2", "-c:v", "libx264", "-pix_fmt", "yuv444p",
       pred / "c1.mp4")
    (gt / "c1.mp4").write_bytes(base.read_bytes())
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--json", str(out)]) == 0
    warns = json.loads(out.read_text())["clips"][0]["warnings"]
    assert "resized: pred 1x1 -> 64x48 (cv2.INTER_AREA)" in warns                  # width x height
    assert any(w.startswith("upscaled: pred is 1x1, 3072 times fewer pixels") for w in warns), warns


def test_a_clip_name_the_terminal_cannot_encode_is_escaped(tmp_path, base):
    """stdout in ASCII and a failed clip named ``é``: old code, a UnicodeEncodeError traceback (exit 1)."""
    import sys

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    (pred / "é.mp4").write_text("not a video")
    (gt / "é.mp4").write_bytes(base.read_bytes())
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    r = subprocess.run([sys.executable, "-m", "moee_bench", "score", "--pred", str(pred), "--gt", str(gt), "--metrics",
                        "psnr", "--json", str(tmp_path / "s.json")], capture_output=True, text=True, env=env,
                       errors="replace")
    assert r.returncode == 3, r.stderr[-800:]
    assert "Traceback" not in r.stderr and "clip \\xe9: psnr error" in r.stdout


def test_remux_keeps_what_the_cli_shows(two_streams, base, tmp_path):
    """``precomputed`` outputs are stored by :func:`media.remux`: the stored file must show the CLI's frames
    (old code copied video stream 0, the still, and counted edit-list packets as frames)."""
    out = tmp_path / "two_copy.mp4"
    n, _ = media.remux(two_streams, out)
    assert n == 30 and np.array_equal(media.read_frames(out), passthrough(two_streams))
    trim = tmp_path / "trim.mp4"
    ff("-ss", "0.5", "-i", base, "-c", "copy", "-t", "0.5", trim)
    n, seconds = media.remux(trim, tmp_path / "trim_copy.mp4")
    want = passthrough(trim)
    assert n == len(want) and seconds == pytest.approx(len(want) / 25)
    assert np.array_equal(media.read_frames(tmp_path / "trim_copy.mp4"), want)


def test_a_store_scored_with_another_decoding_says_so_once(tmp_path, capsys):
    """Feature cache keys hold the decoding (``evaluate.DECODE``, built on ``media.DECODE``): a store scored by an
    older decoder gets its video features recomputed, and ``run`` says so in one line."""
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.metrics.core import evaluate

    assert media.DECODE in evaluate.DECODE
    root = tmp_path / "ds"
    frames = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    media.write_video(root / "v" / "c0.mp4", [frames], 25)
    media.write_image(root / "r" / "c0.png", frames[0])
    m = Manifest("tiny", root, [ClipRecord("c0", "id0", "v/c0.mp4", parse_emotion("happy"), ref_image="r/c0.png",
                                           split="test")]).save(root / "m.json")
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{m}"\nsplit = "test"\nmetrics = ["psnr"]\nseed = 0\n'
                     '[[methods]]\nname = "ground-truth"\n')
    argv = ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-report"]
    assert main(argv) == 0
    assert "decoding changed" not in capsys.readouterr().out
    with ResultStore(tmp_path / "out" / "store") as st:
        (run,) = st.runs()
        meta = run["meta"]
        meta["ingest"]["decode"] = "PyAV/libswscale to rgb24 at the source size"      # the old decoder's
        st.put_run(run["run_id"], suite_hash=run["suite_hash"], dataset=run["dataset"], split=run["split"], meta=meta)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("decoding changed since this store was last scored") == 1
    assert main(argv) == 0
    assert "decoding changed" not in capsys.readouterr().out


@pytest.mark.parametrize("extra,psnr_is_100", [({}, False), ({"video_stream": 0}, True)])
def test_manifest_extra_video_stream_picks_the_gt_stream(two_streams, tmp_path, extra, psnr_is_100):
    """A manifest clip's ``extra.video_stream`` N reads its GT video's N-th video stream (here the still)."""
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest

    root = tmp_path / "ds"
    root.mkdir()
    (root / "c1.mp4").write_bytes(two_streams.read_bytes())
    m = Manifest("two", root, [ClipRecord("c1", "id0", "c1.mp4", parse_emotion("happy"), extra=extra)]).save(
        root / "m.json")
    pred = tmp_path / "pred"
    pred.mkdir()
    ff("-i", two_streams, "-map", "0:v:0", "-c", "copy", pred / "c1.mp4")           # the still, as its own file
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--manifest", str(m), "--metrics", "psnr", "--json", str(out)]) == 0
    psnr = json.loads(out.read_text())["metrics"]["psnr"]
    assert (psnr == pytest.approx(100.0)) is psnr_is_100, psnr
