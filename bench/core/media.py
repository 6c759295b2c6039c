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

Decoding shows a file as ``ffmpeg -i FILE -f rawvideo -pix_fmt rgb24 -`` (the ffmpeg CLI) shows it, and says
per clip (:attr:`FrameReader.notes`) whatever it did beyond a plain decode:

* the video stream is the one the CLI picks by default (:func:`choose_video_stream`), unless
  ``video_stream=N`` names the N-th video stream (the CLI's ``-map 0:v:N``);
* the display matrix (rotation, flips) is applied as the CLI's autorotate does (:func:`display_filters`);
* pixels go to rgb24 as the CLI converts them: unrotated 8-bit YUV/RGB frames by PyAV's ``to_ndarray``
  (bit-identical there), every other frame through an FFmpeg filter graph ending in ``format=rgb24`` (high bit
  depths included: PyAV's ``to_ndarray`` differs from the CLI on 10-bit sources);
* packets an edit list discards are neither decoded nor counted (a trimmed file is not "truncated");
* every path handed to PyAV or the ffmpeg binary is absolute (:func:`ffmpeg_path`), so no file name is read
  as a protocol (``concat:``) or an option (``-``);
* audio read from a video file is aligned to the chosen video stream's first frame
  (:func:`read_audio` with ``align_to_video``); the offset is noted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from moee_bench.bench.core.errors import MediaError
from moee_bench.bench.core.ffmpeg import ffmpeg_path
from moee_bench.bench.core.paths import atomic_write
# imported inside the functions that use them (seconds to import, or optional): PIL, av, cv2, soundfile

AUDIO_RATE = 16000

RESIZE_KERNEL = "cv2.INTER_AREA"   # the one resize kernel of ingest (pixel-area relation; bilinear when enlarging)
DECODE = ("PyAV: the ffmpeg CLI's default video stream, display matrix applied (autorotate), edit lists honoured, "
          "rgb24 by an FFmpeg format=rgb24 filter graph at the source size")

#: AVStream dispositions (libavformat/avformat.h)
_DISPOSITION_DEFAULT = 0x1
_DISPOSITION_ATTACHED_PIC = 0x400
#: 8-bit formats whose PyAV ``to_ndarray(format="rgb24")`` equals the ffmpeg CLI's rgb24 bit for bit (tested)
_DIRECT_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "rgb24"})


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
        return av.open(ffmpeg_path(p))
    except PermissionError:
        raise MediaError(clip_id, f"file {p} is not readable (permission denied)") from None
    except Exception as e:  # PyAV raises several FFmpeg error types
        raise MediaError(clip_id, f"cannot open {p}: corrupt or not a media file ({type(e).__name__}: {e})") from None


def choose_video_stream(container, index: int | None = None, *, path: str | Path = "",
                        clip_id: str | None = None) -> tuple[object, str | None]:
    """The video stream to read and a note saying why when the file has several (None when it has one).

    ``index`` N picks the N-th video stream (the ffmpeg CLI's ``-map 0:v:N``). Without it, the stream the
    ffmpeg CLI maps by default for ``ffmpeg -i FILE -f rawvideo -`` (fftools/ffmpeg_mux_init.c,
    ``map_auto_video``): the highest score ``width*height + 1e8*(packets seen while probing) + 5e6*(default
    disposition)``, attached pictures scoring 1, the first stream winning a tie. PyAV does not expose libavformat's
    ``AVSTREAM_EVENT_FLAG_NEW_PACKETS``; a stream with a known frame size stands for "packets seen"."""
    videos = list(container.streams.video)
    if not videos:
        raise MediaError(clip_id, f"{path} has no video stream")
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise MediaError(clip_id, f"video_stream={index!r} is not a video stream number (0 is the first)")
        if not 0 <= index < len(videos):
            raise MediaError(clip_id, f"video_stream={index}: {path} has {len(videos)} video stream(s), "
                                      f"numbered 0 to {len(videos) - 1}")
        vs = videos[int(index)]
        return vs, (f"video stream 0:v:{index} of {len(videos)} ({_wxh(vs)}) read, as video_stream={index} asks"
                    if len(videos) > 1 else None)
    best, best_score = None, 0
    for vs in videos:
        cc, disp = vs.codec_context, int(vs.disposition)
        score = (cc.width * cc.height + 100_000_000 * (cc.width > 0 and cc.height > 0)
                 + 5_000_000 * bool(disp & _DISPOSITION_DEFAULT))
        if disp & _DISPOSITION_ATTACHED_PIC:
            score = 1
        if score > best_score:
            best, best_score = vs, score
    if best is None:
        best = videos[0]
    if len(videos) == 1:
        return best, None
    k = videos.index(best)
    others = ", ".join(f"0:v:{i} {_wxh(v)}{' default' if int(v.disposition) & _DISPOSITION_DEFAULT else ''}"
                       for i, v in enumerate(videos) if v is not best)
    return best, (f"video stream 0:v:{k} of {len(videos)} ({_wxh(best)}"
                  f"{', default' if int(best.disposition) & _DISPOSITION_DEFAULT else ''}) read, the one the ffmpeg CLI "
                  f"picks (highest resolution, then the default disposition; not read: {others}); "
                  "video_stream=N reads another")


def _wxh(vs) -> str:
    return f"{vs.codec_context.width}x{vs.codec_context.height}"


def _display_matrix(frame) -> tuple[int, ...] | None:
    for sd in frame.side_data:
        if sd.type.name == "DISPLAYMATRIX":
            return tuple(int(x) for x in np.frombuffer(bytes(sd), dtype="<i4")[:9])
    return None


def display_rotation(matrix: tuple[int, ...] | None) -> float:
    """The ffmpeg CLI's ``get_rotation`` (fftools/cmdutils.c) of a display matrix: the clockwise angle in
    degrees, rounded and brought to [0, 360) (NaN for a degenerate matrix, 0 without one)."""
    if matrix is None:
        return 0.0
    fx = [v / 65536.0 for v in matrix]         # 16.16 fixed point (libavutil/display.c)
    s0, s1 = math.hypot(fx[0], fx[3]), math.hypot(fx[1], fx[4])
    if s0 == 0.0 or s1 == 0.0:
        return float("nan")
    theta = -float(round(-math.degrees(math.atan2(fx[1] / s1, fx[0] / s0))))
    return theta - 360 * math.floor(theta / 360 + 0.9 / 360)


def display_filters(matrix: tuple[int, ...] | None) -> list[tuple[str, str | None]]:
    """The filters the ffmpeg CLI inserts to autorotate a frame with this display matrix (fftools/ffmpeg_filter.c,
    ``configure_input_video_filter``): transpose for 90 and 270 degrees (flipped when the matrix mirrors), hflip
    and/or vflip for 180, rotate for any other angle, vflip for a mirrored 0."""
    if matrix is None:
        return []
    theta = display_rotation(matrix)
    if abs(theta - 90) < 1.0:
        return [("transpose", "cclock_flip" if matrix[3] > 0 else "clock")]
    if abs(theta - 180) < 1.0:
        return ([("hflip", None)] if matrix[0] < 0 else []) + ([("vflip", None)] if matrix[4] < 0 else [])
    if abs(theta - 270) < 1.0:
        return [("transpose", "clock_flip" if matrix[3] < 0 else "cclock")]
    if abs(theta) > 1.0:
        return [("rotate", f"{theta:f}*PI/180")]
    if abs(theta) < 1.0 and matrix[4] < 0:
        return [("vflip", None)]
    return []


def _mirrored(matrix: tuple[int, ...] | None) -> bool:
    return matrix is not None and matrix[0] * matrix[4] - matrix[1] * matrix[3] < 0


class _RGB:
    """Decoded frames to ``(H, W, 3)`` uint8 rgb24 as the ffmpeg CLI makes them: a filter graph
    ``buffer -> [autorotate filters] -> format=rgb24 -> buffersink`` (libavfilter inserts the same swscale
    conversion as the CLI's graph), rebuilt when a frame's size, pixel format, colour tags or display matrix change.

    An unrotated 8-bit frame in :data:`_DIRECT_FORMATS` takes PyAV's ``to_ndarray`` instead: bit-identical to the
    CLI there (``tests/test_media_ffmpeg.py``), the decoder of every earlier number, and faster in wall time on a
    busy machine (the graph's push/pull costs the same CPU but waits on threads)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.graph = None
        self.filters: list[tuple[str, str | None]] = []
        self.matrix: tuple[int, ...] | None = None
        self.changes: list[tuple[int, tuple]] = []      # (frame index, key) where the input changed

    def __call__(self, frame, index: int) -> np.ndarray:
        # the display matrix is read again only when the cheap per-frame rotation angle (or the size, format, tags)
        # changes: reading ``side_data`` costs ~1.5 ms a frame in wall time. A mid-stream change of flips alone
        # (same angle) is therefore not followed.
        key = (frame.width, frame.height, frame.format.name, int(frame.colorspace), int(frame.color_range),
               frame.rotation)
        if key != self.key:
            self.matrix = _display_matrix(frame)
            self.filters = display_filters(self.matrix)
            self.graph = None if not self.filters and frame.format.name in _DIRECT_FORMATS else self._build(frame)
            self.key = key
            self.changes.append((index, key))
        if self.graph is None:
            return frame.to_ndarray(format="rgb24")
        self.graph.push(frame)
        return self.graph.pull().to_ndarray()

    def _build(self, frame):
        av = _av()
        g = av.filter.Graph()
        # the pixel aspect ratio changes no pixel on this path (the CLI keeps it as metadata too)
        last = g.add("buffer", video_size=f"{frame.width}x{frame.height}", pix_fmt=frame.format.name,
                     time_base=str(frame.time_base or "1/25"), pixel_aspect="1/1",
                     colorspace=str(int(frame.colorspace)), range=str(int(frame.color_range)))
        for name, arg in self.filters + [("format", "rgb24")]:
            nxt = g.add(name, arg) if arg is not None else g.add(name)
            last.link_to(nxt)
            last = nxt
        sink = g.add("buffersink")
        last.link_to(sink)
        g.configure()
        return g


def probe(path: str | Path, *, clip_id: str | None = None, video_stream: int | None = None) -> VideoInfo:
    """Container metadata of the video stream :class:`FrameReader` reads (the ffmpeg CLI's default one, or the
    ``video_stream``-th); ``width``/``height`` are the displayed size (display matrix applied, as the CLI shows
    it, read from the first frame). Raises :class:`MediaError` if the file has no video stream."""
    with _open(path, clip_id) as c:
        vs, _ = choose_video_stream(c, video_stream, path=path, clip_id=clip_id)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        if vs.duration is not None and vs.time_base is not None:
            dur = float(vs.duration * vs.time_base)
        elif c.duration is not None:
            dur = c.duration / 1_000_000
        else:
            dur = 0.0
        auds = c.streams.audio
        w, h = vs.codec_context.width, vs.codec_context.height
        try:
            first = next(c.decode(vs), None)
        except Exception:               # a damaged file: FrameReader names the failure when it decodes
            first = None
        if first is not None:
            w, h = first.width, first.height
            if any(name == "transpose" for name, _ in display_filters(_display_matrix(first))):
                w, h = h, w
        return VideoInfo(str(path), w, h, fps, int(vs.frames or 0), dur,
                         bool(auds), int(auds[0].rate) if auds else None, vs.codec_context.name)


class FrameReader:
    """Stream the frames of a video in bounded-memory chunks, optionally resampled and resized.

    Iterating yields ``(n, H, W, 3)`` uint8 arrays of at most ``chunk`` frames, as the ffmpeg CLI shows the file
    (see the module notes). After the iteration, :attr:`n_frames`, :attr:`source_fps`, :attr:`source_indices`
    describe what was produced and :attr:`notes` says what decoding did beyond a plain decode (stream choice,
    rotation, edit list, untimed stream, size change). ``video_stream`` N reads the N-th video stream.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, size: tuple[int, int] | None = None,
                 chunk: int = 32, clip_id: str | None = None, video_stream: int | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.size = size  # (height, width)
        self.chunk = max(1, int(chunk))
        self.clip_id = clip_id
        self.video_stream = video_stream
        self.source_fps: float | None = None
        self.source_size: tuple[int, int] | None = None    # (height, width) as decoded and displayed
        self.source_indices: list[int] = []
        self.n_frames = 0
        self.start_time: float | None = None                # seconds: the chosen stream's first timestamp
        self.notes: list[str] = []

    @property
    def resized(self) -> bool:
        """Whether frames were resized (known once the first frame is decoded)."""
        return self.size is not None and self.source_size is not None and tuple(self.size) != self.source_size

    @property
    def resampled(self) -> bool:
        """Whether the frame rate was converted (some source frame dropped or repeated)."""
        return self.fps is not None and self.source_indices != list(range(len(self.source_indices)))

    def _convert(self, img: np.ndarray) -> np.ndarray:
        if self.source_size is None:
            self.source_size = (img.shape[0], img.shape[1])
        if self.size is None and img.shape[:2] != self.source_size:
            return resize_frames(img, self.source_size)      # a mid-stream size change: back to the first size
        return img if self.size is None else resize_frames(img, self.size)

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        with _open(self.path, self.clip_id) as c:
            vs, note = choose_video_stream(c, self.video_stream, path=self.path, clip_id=self.clip_id)
            self.notes = [note] if note else []
            # default (slice) threading: frame threading can deadlock when a generator is closed mid-stream
            rate = vs.average_rate or vs.guessed_rate
            self.source_fps = float(rate) if rate else None
            expected = int(vs.frames or 0)
            tb = vs.time_base
            self.start_time = float(vs.start_time * tb) if vs.start_time is not None and tb else None
            if c.streams.audio:
                offset = _start(c.streams.audio[0]) - _start(vs)
                if abs(offset) >= 0.001:
                    self.notes.append(f"audio starts {abs(offset):.3f} s {'after' if offset > 0 else 'before'} the video "
                                      "in the file: audio read from it is aligned to frame 0 (moee-bench's read_video_audio)")
            rgb = _RGB()
            count = discarded = untimed = 0
            t0 = None
            try:
                for pkt in c.demux(vs):
                    if pkt.size and pkt.is_discard:      # outside the edit list: decoded for reference only, never shown
                        discarded += 1
                    for frame in pkt.decode():
                        if frame.pts is None or tb is None:
                            t = count / (self.source_fps or 25.0)
                            untimed += 1
                        else:
                            t = float(frame.pts * tb)
                        if t0 is None:
                            t0 = t
                        img = self._convert(rgb(frame, count))
                        if count == 0 and rgb.filters:
                            self.notes.append(self._rotation_note(rgb))
                        yield t - t0, img
                        count += 1
            except MediaError:
                raise
            except MemoryError:                     # the machine, not the file
                h, w = self.size or self.source_size or (0, 0)
                raise MediaError(self.clip_id, f"out of memory at frame {count} of {self.path} ({h}x{w} RGB frames, "
                                 f"{h * w * 3 / 2**20:.0f} MiB each): the file is not at fault; use a smaller --size or "
                                 "free memory", status="error") from None
            except Exception as e:
                raise MediaError(self.clip_id, f"{self.path} is truncated or corrupt: decoding failed after {count} frames "
                                 f"({type(e).__name__}: {e})") from None
            if count == 0:
                raise MediaError(self.clip_id, f"{self.path} has zero decodable video frames", status="empty")
            listed = expected - discarded
            if expected and count < listed * 0.9 - 1:
                kept = f" ({expected} samples, {discarded} outside its edit list)" if discarded else ""
                raise MediaError(self.clip_id, f"{self.path} is truncated: the container lists {listed} frames{kept}, "
                                 f"only {count} decoded")
            if discarded:
                self.notes.append(f"edit list: {count} frames shown of {expected} stored ({discarded} outside the edit "
                                  "list, not shown, as the ffmpeg CLI does)")
            if untimed:
                how = (f"at {self.source_fps:g} fps, the rate the {c.format.name} demuxer states"
                       if self.source_fps else "at an assumed 25 fps")
                self.notes.append(f"no timestamps in {c.format.name}: {untimed} frames timed {how}")
            if count == 1 and c.format.name.endswith("_pipe"):
                self.notes.append(f"a still image ({c.format.name.removesuffix('_pipe')}), read as a 1-frame video")
            sizes = [(k, key[0], key[1]) for k, key in rgb.changes]
            if any((w, h) != sizes[0][1:] for _, w, h in sizes):
                h0, w0 = self.source_size or (0, 0)
                steps = ", ".join(f"{w}x{h} at frame {k}" for k, w, h in sizes[1:])
                target = self.size or self.source_size
                self.notes.append(f"frame size changes mid-stream ({sizes[0][1]}x{sizes[0][2]} first, then {steps}): "
                                  f"every frame resized to {target[1]}x{target[0]} ({RESIZE_KERNEL})")

    @staticmethod
    def _rotation_note(rgb: "_RGB") -> str:
        turn = (-display_rotation(rgb.matrix)) % 360     # av_display_rotation_get's angle
        how = ", ".join(f"{n}={a}" if a else n for n, a in rgb.filters)
        return (f"display matrix applied as the ffmpeg CLI autorotates (rotation {turn:g} degrees, "
                f"{'mirrored, ' if _mirrored(rgb.matrix) else ''}{how}): stored {rgb.key[0]}x{rgb.key[1]}")

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
    """Decode the first audio stream of ``path`` (a video or an audio file) to float32 mono at ``sample_rate``,
    from its first sample (its start time ignored: see :func:`read_video_audio` for audio aligned to the video)."""
    return _read_audio(path, sample_rate, clip_id, align=False, video_stream=None)[0]


def read_video_audio(path: str | Path, *, sample_rate: int = AUDIO_RATE, clip_id: str | None = None,
                     video_stream: int | None = None) -> tuple[np.ndarray, str | None]:
    """The first audio stream of a video file, float32 mono at ``sample_rate``, aligned to the first frame of the
    video stream :class:`FrameReader` reads: sample 0 is heard with frame 0, as in the file's own timeline (the
    ffmpeg CLI keeps both streams' timestamps). Audio that starts later is preceded by silence, audio that starts
    earlier loses its head; the note (None when the offset is under 1 ms) says which and by how much."""
    return _read_audio(path, sample_rate, clip_id, align=True, video_stream=video_stream)


def _start(stream) -> float:
    """A stream's start time in seconds (0 when the container gives none)."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0


def _read_audio(path: str | Path, sample_rate: int, clip_id: str | None, *, align: bool,
                video_stream: int | None) -> tuple[np.ndarray, str | None]:
    av = _av()
    offset = 0.0
    with _open(path, clip_id) as c:
        if not c.streams.audio:
            raise MediaError(clip_id, f"{path} has no audio stream", status="no_audio")
        st = c.streams.audio[0]
        if align and c.streams.video:
            vs, _ = choose_video_stream(c, video_stream, path=path, clip_id=clip_id)
            offset = _start(st) - _start(vs)
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
    note = None
    if abs(offset) >= 0.001:
        n = int(round(abs(offset) * sample_rate))
        if offset > 0:
            audio = np.concatenate([np.zeros(n, np.float32), audio])
            note = (f"audio starts {offset:.3f} s after the video in the file: {offset:.3f} s of silence put before it "
                    "so that it plays with the frames it belongs to")
        else:
            audio = audio[n:]
            note = (f"audio starts {-offset:.3f} s before the video in the file: its first {-offset:.3f} s (heard before "
                    "frame 0) left out so that it plays with the frames it belongs to")
    return audio, note


#: x264 threads of :func:`write_video` (fixed: the encoded bits depend on it)
X264_THREADS = 2


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, audio: np.ndarray | None = None,
                sample_rate: int = AUDIO_RATE, crf: int = 18, clip_id: str | None = None) -> Path:
    """Write H.264 (yuv420p) + AAC mp4 atomically. ``frames`` yields ``(H,W,3)`` or ``(n,H,W,3)`` uint8 arrays.

    Width and height must be even (yuv420p). The audio, if given, is float32 mono in [-1, 1].
    """
    av = _av()
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_write(path) as tmp:
        with av.open(ffmpeg_path(tmp), mode="w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=rate)
            vs.pix_fmt = "yuv420p"
            # x264's bits depend on its thread count, which it otherwise takes from the machine's cores (1 core and
            # 2 cores gave other bits for the same frames): a fixed count makes a written video, and so the
            # built-in sample and every number read from it, the same on every machine (2: what 2 cores chose)
            vs.options = {"crf": str(crf), "preset": "medium", "threads": str(X264_THREADS)}
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
          sample_rate: int = AUDIO_RATE, clip_id: str | None = None, video_stream: int | None = None) -> tuple[int, float]:
    """Copy the video stream of ``src`` into the mp4 ``dst`` without decoding or re-encoding it (PyAV stream
    copy: the same compressed packets, so every decoded frame is identical), atomically.

    ``audio`` (float32 mono) replaces the audio track (AAC), trimmed or zero-padded to the video's length
    (packets / frame rate); otherwise the source's first audio stream is copied when ``keep_audio``.
    The video stream is the one :class:`FrameReader` reads (:func:`choose_video_stream`); its display matrix and
    edit list travel with it. Returns (frames shown: packets copied less those outside the edit list, seconds of
    video). Raises :class:`MediaError` when the codec
    cannot be stored in mp4 or the source is unreadable."""
    dst = Path(dst)
    n = 0
    with _open(src, clip_id) as c:
        vin, _ = choose_video_stream(c, video_stream, path=src, clip_id=clip_id)
        ain = c.streams.audio[0] if (audio is None and keep_audio and c.streams.audio) else None
        try:
            with atomic_write(dst) as tmp:
                with _av().open(ffmpeg_path(tmp), mode="w", format="mp4") as out:
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
                            n += not pkt.is_discard
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
