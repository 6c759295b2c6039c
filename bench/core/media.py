"""Video, audio and image I/O on PyAV: streaming decode, timestamp fps resampling, H.264+AAC writing.

Frames are always ``uint8`` RGB arrays shaped ``(n, H, W, 3)``; audio is ``float32`` mono.
Every error names the clip (``clip_id``) and the file.

Frame-rate conversion (ours; PyAV only decodes): output frame ``k`` of a stream resampled to
``fps`` shows the last source frame whose presentation time ``t`` satisfies
``t < (k + 0.5) / fps``, i.e. nearest-timestamp dropping/duplication as ffmpeg's ``fps``
filter does with ``round=near``. The output has ``round(D * fps)`` frames, ``D`` being the
source duration (last timestamp plus one source frame). :attr:`FrameReader.source_indices`
records which source frame each output frame came from.

Bringing a video to the evaluation geometry happens here and only here: frame-rate conversion in
:class:`FrameReader` (the rule above) and resizing in :func:`resize_frames` (one named kernel,
:data:`RESIZE_KERNEL`). A video that already has the requested fps and size is passed through as
decoded (no resize); :func:`remux` stores a file without re-encoding its video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from moee_bench.bench.core.errors import MediaError
from moee_bench.bench.core.paths import atomic_write
# imported inside the functions that use them (seconds to import, or optional): PIL, av, cv2, soundfile

AUDIO_RATE = 16000

RESIZE_KERNEL = "cv2.INTER_AREA"   # the one resize kernel of ingest (pixel-area relation; bilinear when enlarging)
DECODE = "PyAV/libswscale to rgb24 at the source size"


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(n, H, W, 3)`` or ``(H, W, 3)`` uint8 frames at ``size`` = (height, width) with :data:`RESIZE_KERNEL`.

    Frames that already have ``size`` are returned unchanged (the same array), so a conforming video is
    scored exactly as decoded."""
    import cv2

    frames = np.asarray(frames)
    h, w = int(size[0]), int(size[1])
    if frames.shape[-3:-1] == (h, w):
        return frames
    if frames.ndim == 3:
        return cv2.resize(frames, (w, h), interpolation=cv2.INTER_AREA)
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def ingest_protocol(fps: float | None, size: tuple[int, int] | None) -> dict[str, str]:
    """How frames are brought to the evaluation geometry, for protocols and normalisation records."""
    return {"decode": DECODE,
            "fps": (f"{fps:g} fps by nearest timestamp (ffmpeg fps filter, round=near); a video already at {fps:g} fps "
                    "is used frame for frame") if fps else "source frame rate",
            "resize": (f"{RESIZE_KERNEL} once, only when the decoded size differs from the evaluation size; "
                       "a video already at that size is used as decoded")}


def _av():
    import av  # imported lazily: PyAV loads its FFmpeg libraries at import

    av.logging.set_level(av.logging.PANIC)
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video file."""

    path: str
    width: int
    height: int
    fps: float
    n_frames: int          # from the container; 0 when it does not say
    duration: float        # seconds
    has_audio: bool
    audio_rate: int | None
    codec: str


def _open(path: str | Path, clip_id: str | None):
    av = _av()
    p = Path(path)
    if not p.exists():
        raise MediaError(clip_id, f"file {p} does not exist", status="missing")
    if p.is_dir():
        raise MediaError(clip_id, f"{p} is a folder, not a media file")
    try:
        return av.open(str(p))
    except PermissionError:
        raise MediaError(clip_id, f"file {p} is not readable (permission denied)") from None
    except Exception as e:  # PyAV raises several FFmpeg error types
        raise MediaError(clip_id, f"cannot open {p}: corrupt or not a media file ({type(e).__name__}: {e})") from None


def probe(path: str | Path, *, clip_id: str | None = None) -> VideoInfo:
    """Container metadata of a video file; raises :class:`MediaError` if it has no video stream."""
    with _open(path, clip_id) as c:
        if not c.streams.video:
            raise MediaError(clip_id, f"{path} has no video stream")
        vs = c.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        if vs.duration is not None and vs.time_base is not None:
            dur = float(vs.duration * vs.time_base)
        elif c.duration is not None:
            dur = c.duration / 1_000_000
        else:
            dur = 0.0
        auds = c.streams.audio
        return VideoInfo(str(path), vs.codec_context.width, vs.codec_context.height, fps, int(vs.frames or 0), dur,
                         bool(auds), int(auds[0].rate) if auds else None, vs.codec_context.name)


class FrameReader:
    """Stream the frames of a video in bounded-memory chunks, optionally resampled and resized.

    Iterating yields ``(n, H, W, 3)`` uint8 arrays of at most ``chunk`` frames. After the
    iteration, :attr:`n_frames`, :attr:`source_fps` and :attr:`source_indices` describe what
    was produced.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, size: tuple[int, int] | None = None,
                 chunk: int = 32, clip_id: str | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.size = size  # (height, width)
        self.chunk = max(1, int(chunk))
        self.clip_id = clip_id
        self.source_fps: float | None = None
        self.source_size: tuple[int, int] | None = None    # (height, width) as decoded
        self.source_indices: list[int] = []
        self.n_frames = 0

    @property
    def resized(self) -> bool:
        """Whether frames were resized (known once the first frame is decoded)."""
        return self.size is not None and self.source_size is not None and tuple(self.size) != self.source_size

    @property
    def resampled(self) -> bool:
        """Whether the frame rate was converted (some source frame dropped or repeated)."""
        return self.fps is not None and self.source_indices != list(range(len(self.source_indices)))

    def _convert(self, frame) -> np.ndarray:
        img = frame.to_ndarray(format="rgb24")
        if self.source_size is None:
            self.source_size = (img.shape[0], img.shape[1])
        return img if self.size is None else resize_frames(img, self.size)

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        with _open(self.path, self.clip_id) as c:
            if not c.streams.video:
                raise MediaError(self.clip_id, f"{self.path} has no video stream")
            vs = c.streams.video[0]
            # default (slice) threading: frame threading can deadlock when a generator is closed mid-stream
            rate = vs.average_rate or vs.guessed_rate
            self.source_fps = float(rate) if rate else None
            expected = int(vs.frames or 0)
            tb = vs.time_base
            count = 0
            t0 = None
            try:
                for frame in c.decode(vs):
                    if frame.pts is None:
                        t = count / (self.source_fps or 25.0)
                    else:
                        t = float(frame.pts * tb)
                    if t0 is None:
                        t0 = t
                    yield t - t0, self._convert(frame)
                    count += 1
            except MediaError:
                raise
            except Exception as e:
                raise MediaError(self.clip_id, f"{self.path} is truncated or corrupt: decoding failed after {count} frames "
                                 f"({type(e).__name__}: {e})") from None
            if count == 0:
                raise MediaError(self.clip_id, f"{self.path} has zero decodable video frames", status="empty")
            if expected and count < expected * 0.9 - 1:
                raise MediaError(self.clip_id, f"{self.path} is truncated: the container lists {expected} frames, "
                                 f"only {count} decoded")

    def _resampled(self) -> Iterator[tuple[int, np.ndarray]]:
        src = self._decoded()
        if self.fps is None:
            for i, (_, img) in enumerate(src):
                yield i, img
            return
        step = 1.0 / self.fps
        k = 0
        prev: tuple[int, float, np.ndarray] | None = None
        i = -1
        for i, (t, img) in enumerate(src):
            while prev is not None and t >= (k + 0.5) * step - 1e-9:
                yield prev[0], prev[2]
                k += 1
            prev = (i, t, img)
        if prev is None:
            return
        src_step = 1.0 / self.source_fps if self.source_fps else step
        total = prev[1] + src_step
        n_out = max(1, int(math.floor(total * self.fps + 0.5)))
        while k < n_out:
            yield prev[0], prev[2]
            k += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        self.source_indices = []
        self.n_frames = 0
        buf: list[np.ndarray] = []
        for src_i, img in self._resampled():
            self.source_indices.append(src_i)
            buf.append(img)
            if len(buf) == self.chunk:
                self.n_frames += len(buf)
                yield np.stack(buf)
                buf = []
        if buf:
            self.n_frames += len(buf)
            yield np.stack(buf)


def read_frames(path: str | Path, *, fps: float | None = None, size: tuple[int, int] | None = None,
                clip_id: str | None = None) -> np.ndarray:
    """All frames of a video as one ``(T, H, W, 3)`` uint8 array (for short clips and tests)."""
    chunks = list(FrameReader(path, fps=fps, size=size, clip_id=clip_id, chunk=256))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0, 0, 3), np.uint8)


def read_audio(path: str | Path, *, sample_rate: int = AUDIO_RATE, clip_id: str | None = None) -> np.ndarray:
    """Decode the first audio stream of ``path`` (a video or an audio file) to float32 mono at ``sample_rate``."""
    av = _av()
    with _open(path, clip_id) as c:
        if not c.streams.audio:
            raise MediaError(clip_id, f"{path} has no audio stream", status="no_audio")
        st = c.streams.audio[0]
        res = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        parts: list[np.ndarray] = []
        try:
            for frame in c.decode(st):
                frame.pts = None
                for out in res.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in res.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except Exception as e:
            raise MediaError(clip_id, f"audio of {path} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if not parts:
        raise MediaError(clip_id, f"{path} has an audio stream with no samples", status="no_audio")
    audio = np.concatenate(parts).astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise MediaError(clip_id, f"audio of {path} contains NaN or infinite samples")
    return audio


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, audio: np.ndarray | None = None,
                sample_rate: int = AUDIO_RATE, crf: int = 18, clip_id: str | None = None) -> Path:
    """Write H.264 (yuv420p) + AAC mp4 atomically. ``frames`` yields ``(H,W,3)`` or ``(n,H,W,3)`` uint8 arrays.

    Width and height must be even (yuv420p). The audio, if given, is float32 mono in [-1, 1].
    """
    av = _av()
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_write(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=rate)
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(crf), "preset": "medium"}
            as_ = None
            if audio is not None:
                as_ = out.add_stream("aac", rate=sample_rate)
                as_.layout = "mono"
            started = False
            n = 0
            for block in frames:
                block = np.asarray(block)
                if block.ndim == 3:
                    block = block[None]
                if block.dtype != np.uint8 or block.ndim != 4 or block.shape[-1] != 3:
                    raise MediaError(clip_id, f"frames must be uint8 (n,H,W,3), got {block.dtype} {block.shape}")
                if not started:
                    h, w = block.shape[1:3]
                    if h % 2 or w % 2:
                        raise MediaError(clip_id, f"H.264 yuv420p needs even frame sizes, got {w}x{h}")
                    vs.width, vs.height = w, h
                    started = True
                for img in block:
                    fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    for pkt in vs.encode(fr):
                        out.mux(pkt)
                    n += 1
            if n == 0:
                raise MediaError(clip_id, f"refusing to write {path}: no frames")
            for pkt in vs.encode():
                out.mux(pkt)
            if as_ is not None:
                _encode_audio(out, as_, audio, sample_rate)
    return path


def _encode_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    av = _av()
    a = np.clip(np.asarray(audio, np.float32).reshape(1, -1), -1.0, 1.0)
    fsz = 1024
    for s in range(0, a.shape[1], fsz):
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(a[:, s:s + fsz]), format="flt", layout="mono")
        af.sample_rate = sample_rate
        af.pts = s
        for pkt in stream.encode(af):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)


def remux(src: str | Path, dst: str | Path, *, audio: np.ndarray | None = None, keep_audio: bool = True,
          sample_rate: int = AUDIO_RATE, clip_id: str | None = None) -> tuple[int, float]:
    """Copy the video stream of ``src`` into the mp4 ``dst`` without decoding or re-encoding it (PyAV stream
    copy: the same compressed packets, so every decoded frame is identical), atomically.

    ``audio`` (float32 mono) replaces the audio track (AAC), trimmed or zero-padded to the video's length
    (packets / frame rate); otherwise the source's first audio stream is copied when ``keep_audio``.
    Returns (video packets copied = frames, seconds of video). Raises :class:`MediaError` when the codec
    cannot be stored in mp4 or the source is unreadable."""
    dst = Path(dst)
    n = 0
    with _open(src, clip_id) as c:
        if not c.streams.video:
            raise MediaError(clip_id, f"{src} has no video stream")
        vin = c.streams.video[0]
        ain = c.streams.audio[0] if (audio is None and keep_audio and c.streams.audio) else None
        try:
            with atomic_write(dst) as tmp:
                with _av().open(str(tmp), mode="w", format="mp4") as out:
                    vout = out.add_stream_from_template(vin)
                    aout = out.add_stream_from_template(ain) if ain is not None else None
                    if audio is not None:
                        aout = out.add_stream("aac", rate=sample_rate)
                        aout.layout = "mono"
                    streams = [vin] + ([ain] if ain is not None else [])
                    for pkt in c.demux(*streams):
                        if pkt.dts is None:          # demuxer flush packets carry no data
                            continue
                        if pkt.stream is vin:
                            pkt.stream = vout
                            n += 1
                        else:
                            pkt.stream = aout
                        out.mux(pkt)
                    if n == 0:
                        raise MediaError(clip_id, f"{src} has zero video packets", status="empty")
                    rate = vin.average_rate or vin.guessed_rate
                    seconds = n / float(rate) if rate else 0.0
                    if audio is not None:
                        want = int(round(seconds * sample_rate))
                        a = np.asarray(audio, np.float32).reshape(-1)
                        _encode_audio(out, aout, np.pad(a[:want], (0, max(0, want - len(a)))), sample_rate)
        except MediaError:
            raise
        except Exception as e:  # FFmpeg refuses the codec in mp4, or a damaged packet
            raise MediaError(clip_id, f"cannot stream-copy the video of {src} into mp4 "
                                      f"({vin.codec_context.name}; {type(e).__name__}: {e})") from None
    return n, seconds


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = AUDIO_RATE) -> Path:
    """Write float32 mono audio as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    path = Path(path)
    with atomic_write(path) as tmp:
        sf.write(str(tmp), np.asarray(audio, np.float32), sample_rate, subtype="PCM_16", format="WAV")
    return path


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".flv", ".webm")


def read_image(path: str | Path, *, clip_id: str | None = None) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB; a video file gives its first frame (a manifest's
    ``ref_image`` may name a neutral clip's video, see :mod:`bench.core.references`)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise MediaError(clip_id, f"image {p} does not exist", status="missing")
    if is_video_path(p):
        return first_frame(p, clip_id=clip_id)
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(clip_id, f"image {p} is corrupt or not an image ({e})") from None


def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image (format from the suffix), atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_write(path) as tmp:
        Image.fromarray(np.asarray(img, np.uint8)).save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    return path


def first_frame(path: str | Path, *, clip_id: str | None = None) -> np.ndarray:
    """The first decoded frame of a video as ``(H, W, 3)`` uint8."""
    return frame_at(path, 0, clip_id=clip_id)


def frame_at(path: str | Path, index: int, *, clip_id: str | None = None) -> np.ndarray:
    """Decoded frame ``index`` (0-based, in decode order, no resampling) of a video as ``(H, W, 3)`` uint8."""
    seen = 0
    for chunk in FrameReader(path, chunk=1, clip_id=clip_id):
        if seen == index:
            return chunk[0]
        seen += 1
    raise MediaError(clip_id, f"{path} has {seen} decodable frames, no frame {index}", status="empty")


VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv"})


def is_video_path(path: str | Path) -> bool:
    """Whether ``path`` names a video container by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
