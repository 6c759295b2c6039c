"""The file steps of syncnet-python 0.2.3's pipeline, run with the same ffmpeg/OpenCV calls (our code around them).

SyncNet sees the pixels that these lossy steps leave, so Sync-C/D depend on them (anchors §1.2): on real
H.264 yuv420p input the reference's ffmpeg converts the decoded yuv420p frames straight to JPEG (a range
conversion, no RGB step), which piping RGB into the encoder does not reproduce. Every step here is the
reference's own command on a file:

* :func:`jpeg_frames`: ``ffmpeg -i VIDEO [-q:v 2] -f image2 -threads 1 %06d.jpg``, read back with ``cv2.imread``
  (``SyncNetInstance.evaluate``; default mjpeg rate control without ``-q``, as in ``inference`` step 8).
* :func:`wav16k`: ``ffmpeg -i SRC -ac 1 -vn -acodec pcm_s16le -ar 16000 -af aresample=async=1`` (step 8 audio).
* :func:`speech_wav`: ``ffmpeg -i SRC -ac 1 -ar 16000 -f wav`` (step 3, the audio the tracks are cut from).
* :func:`reencode_25fps`: ``ffmpeg -i VIDEO -async 1 -q:v 2 -r 25 video.avi`` (step 1, MPEG-4 part 2).
* :func:`xvid_roundtrip`: the crop clip through ``cv2.VideoWriter`` (XVID, 25 fps) and back through
  :func:`jpeg_frames` (steps 7 and 8).

The ffmpeg binary is imageio-ffmpeg's, called by absolute path; its version is part of the Sync protocol
(:func:`ffmpeg_version`), since a different mjpeg encoder or rate control gives different JPEGs.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import cv2
import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.ffmpeg import ffmpeg_path
from moee_bench.bench.core.ffmpeg import ffmpeg_exe as exe
# imported inside the functions that use them (seconds to import, or optional): scipy

FRAME_RATE = 25
SAMPLE_RATE = 16000


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg binary the Sync pipeline runs (:func:`bench.core.ffmpeg.ffmpeg_exe`)."""
    return exe()


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` of :func:`ffmpeg_exe` plus its libavcodec version."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    codec = next((ln.split("/")[0].split(None, 1)[1].replace(" ", "") for ln in lines if ln.startswith("libavcodec")), "?")
    version = lines[0].split(" Copyright")[0].replace("ffmpeg version ", "").strip()
    return f"ffmpeg {version} (libavcodec {codec})"


def _ffmpeg(args: list[str], clip_id: str | None) -> None:
    r = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise ClipError(clip_id, f"ffmpeg {' '.join(args[:2])} ... {args[-1]} failed: {_tail(r.stderr)}")


def _tail(stderr: str, limit: int = 300) -> str:
    """The last whole lines of ffmpeg's stderr that fit in ``limit`` characters (one line, cut at a word)."""
    out: list[str] = []
    for line in reversed([ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]):
        if out and sum(len(x) + 3 for x in out) + len(line) > limit:
            break
        out.insert(0, line)
    text = " / ".join(out)
    if len(text) > limit:
        text = "..." + text[-limit:].split(" ", 1)[-1]
    return text or "no message on stderr"


def jpeg_dump(video: str | Path, workdir: str | Path, *, qscale: int | None = None, rate: int | None = None,
              clip_id: str | None = None) -> list[Path]:
    """The video's frames written by ffmpeg's image2 muxer as ``%06d.jpg`` (the files, in order).

    ``rate`` adds ``-r RATE`` (ffmpeg's frame-rate conversion) for a file that is not at SyncNet's 25 fps."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    q = ["-q:v", str(qscale)] if qscale is not None else []
    r = ["-r", str(rate)] if rate is not None else []
    _ffmpeg(["-i", ffmpeg_path(video), *q, *r, "-f", "image2", "-threads", "1", ffmpeg_path(d / "%06d.jpg")], clip_id)
    files = sorted(d.glob("*.jpg"))
    if not files:
        raise ClipError(clip_id, f"ffmpeg wrote no JPEG frames for {video}")
    return files


def read_jpegs(files: list[Path]) -> np.ndarray:
    """JPEG files read with ``cv2.imread`` (BGR, libjpeg's decoder as the reference reads them), stacked."""
    return np.stack([cv2.imread(str(f)) for f in files])


def jpeg_frames(video: str | Path, workdir: str | Path, *, qscale: int | None = None, rate: int | None = None,
                clip_id: str | None = None) -> np.ndarray:
    """The video's frames dumped by ffmpeg's image2 muxer as JPEG and read back with ``cv2.imread`` (BGR)."""
    return read_jpegs(jpeg_dump(video, workdir, qscale=qscale, rate=rate, clip_id=clip_id))


def _read_wav(path: Path, clip_id: str | None) -> np.ndarray:
    from scipy.io import wavfile

    rate, a = wavfile.read(path)
    if rate != SAMPLE_RATE or a.dtype != np.int16 or a.ndim != 1:
        raise ClipError(clip_id, f"{path}: expected mono int16 {SAMPLE_RATE} Hz, got {a.dtype} {a.shape} at {rate} Hz")
    return a


def wav16k(src: str | Path, out: str | Path, *, clip_id: str | None = None) -> np.ndarray:
    """Mono s16 16 kHz audio as syncnet-python 0.2.3 extracts it before ``evaluate`` (``aresample=async=1``)."""
    _ffmpeg(["-i", ffmpeg_path(src), "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE),
             "-af", "aresample=async=1", ffmpeg_path(out)], clip_id)
    return _read_wav(Path(out), clip_id)


def speech_wav(src: str | Path, out: str | Path, *, clip_id: str | None = None) -> np.ndarray:
    """Mono s16 16 kHz audio as the pipeline resamples the speech it cuts per track (``ac=1, ar=16000, wav``)."""
    _ffmpeg(["-i", ffmpeg_path(src), "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "wav", ffmpeg_path(out)], clip_id)
    return _read_wav(Path(out), clip_id)


def reencode_25fps(video: str | Path, out: str | Path, *, clip_id: str | None = None) -> Path:
    """The pipeline's constant-25-fps MPEG-4 AVI (``-async 1 -q:v 2 -r 25``; its audio track is kept, as it moves frames)."""
    _ffmpeg(["-i", ffmpeg_path(video), "-async", "1", "-q:v", "2", "-r", str(FRAME_RATE), ffmpeg_path(out)], clip_id)
    return Path(out)


def xvid_roundtrip(crops_bgr: np.ndarray, workdir: str | Path, *, clip_id: str | None = None) -> np.ndarray:
    """A 224x224 crop clip written as the pipeline writes it (``cv2.VideoWriter`` XVID, 25 fps) and dumped
    back to JPEG frames as ``evaluate`` reads them."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    avi = d / "crop.avi"
    h, w = crops_bgr.shape[1:3]
    vw = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"XVID"), FRAME_RATE, (w, h))
    if not vw.isOpened():
        raise ClipError(clip_id, "cv2.VideoWriter cannot open an XVID writer (OpenCV built without FFmpeg?)")
    for f in crops_bgr:
        vw.write(np.ascontiguousarray(f))
    vw.release()
    return jpeg_frames(avi, d / "frames", clip_id=clip_id)
