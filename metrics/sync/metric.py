"""Sync-C / Sync-D (SyncNet confidence and min distance) with the published syncnet-python protocol.

Per clip, default ``sync_pixels=jpeg`` (the reference's pixel path, every lossy file step of syncnet-python
0.2.3 run with the same ffmpeg/OpenCV calls, :mod:`moee_bench.metrics.sync.sync_io`):

* face-cropped (``face_cropped=true`` / ``score --face-cropped``): the pred file's own decoded (yuv420p)
  frames dumped by ffmpeg to JPEG at its default mjpeg settings and read with ``cv2.imread``, audio by
  ffmpeg to mono s16 16 kHz with ``aresample=async=1`` (``inference`` step 8 / ``demo_syncnet``). Every
  frame ffmpeg writes is scored, as the reference does (a stream starting late gets ffmpeg's leading
  duplicate, keeping it aligned with the audio). Frames that are not 224x224 are resized after the JPEG
  read (``cv2.resize``, Wav2Lip's order); a file that is not 25 fps gets ``-r 25`` in the dump (ffmpeg's
  own rate conversion, as the pipeline's step 1; the reference itself would score it at the wrong rate).
* tracked (default): the file re-encoded to a 25-fps MPEG-4 AVI (``-q:v 2``), JPEG frames at ``-q:v 2``,
  S3FD on batches of those frames, PySceneDetect on the AVI, tracks (:mod:`moee_bench.metrics.sync.face_track`), each
  track's crops through an XVID ``cv2.VideoWriter`` AVI and a default-quality JPEG dump, its audio cut
  from the 16 kHz speech at the track's frame boundaries.

``sync_pixels=exact`` instead uses the evaluator's decoded frames (RGB -> BGR) and audio, with no file
step; it is recorded in the protocol. The ffmpeg version that did the JPEG steps is in the protocol.

Audio: the driving audio from the manifest (MoChaBench convention) by default; ``sync_audio=video``
uses the pred video's own track. Track rule (``sync_track_rule``): ``longest`` (default; conf and
dist from the same, longest track) or ``pypi`` (max conf / min dist over tracks, as syncnet-python).
Params: ``face_cropped``, ``sync_audio``, ``sync_pixels``, ``sync_min_track`` (default 25 frames:
talking-head clips are 2-5 s, the reference's 100 and the wheel's 50 drop 2 s clips; 25 still gives
>= 20 windows), ``sync_detector`` (s3fd | retinaface), ``sync_track_rule``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.sync import face_track, sync_io, syncnet_core
from moee_bench.metrics.core.base import ClipContext, Features, MeanState, Metric, Param, State, VideoChunk
from moee_bench.metrics.core.precision import of_options
from moee_bench.bench.core import media
from moee_bench.bench.core.ffmpeg import ffmpeg_exe
from moee_bench.bench.core.weights import load_state_dict
from moee_bench.metrics.core.registry import MetricOptions

STATUSES = ("no_face", "too_short", "no_audio", "error")
SAMPLES_PER_FRAME = syncnet_core.SAMPLES_PER_FRAME


def _to_224(frames_bgr: np.ndarray) -> np.ndarray:
    if frames_bgr.shape[1:3] == (224, 224):
        return frames_bgr
    return np.stack([cv2.resize(f, (224, 224)) for f in frames_bgr])


PIXEL_PATHS = {
    ("jpeg", True): "syncnet-python 0.2.3 step 8 on the pred file: ffmpeg image2 JPEG (default mjpeg rate control) "
                    "from its decoded frames, cv2.imread; audio ffmpeg -ac 1 -ar 16000 pcm_s16le aresample=async=1",
    ("jpeg", False): "syncnet-python 0.2.3 inference: ffmpeg -q:v 2 -r 25 MPEG-4 AVI, -q:v 2 JPEG frames, S3FD, "
                     "PySceneDetect on the AVI, crops via cv2 XVID AVI and default JPEG; speech ffmpeg 16 kHz cut per track",
    ("exact", True): "evaluator-decoded frames (RGB->BGR, cv2.resize to 224), evaluator audio; no file step",
    ("exact", False): "evaluator-decoded frames (RGB->BGR) for detection and crops, evaluator audio; no file step",
}


class _Extractor:
    def __init__(self, metric: "Sync", ctx: ClipContext) -> None:
        self.m, self.ctx = metric, ctx
        self.frames: list[np.ndarray] = []

    def add(self, chunk: VideoChunk) -> None:
        if self.m.pixels == "exact":        # the file-based path re-reads the pred file as the reference does
            self.frames.extend(chunk.frames)

    def _audio_file(self) -> Path:
        ctx = self.ctx
        if self.m.audio_source == "video" or ctx.audio_source == "video" or ctx.clip.audio is None:
            return ctx.clip.pred
        return ctx.clip.audio

    def finish(self) -> Features:
        m, ctx = self.m, self.ctx
        audio, source = ctx.audio, ctx.audio_source
        if m.audio_source == "video":
            source = "video"
            try:
                audio = media.read_video_audio(ctx.clip.pred, clip_id=ctx.clip_id,
                                               video_stream=ctx.clip.video_stream)[0]
            except ClipError:
                audio = None
        if audio is None or len(audio) == 0:
            return {"status": np.array("no_audio"), "message": np.array("no audio to score against")}
        if float(np.abs(audio).max()) < 0.5 / 32768:        # rounds to 0 in SyncNet's 16-bit input
            return {"status": np.array("no_audio"), "message": np.array(
                f"{'the video' + chr(39) + 's own' if source == 'video' else 'the driving'} audio is digital silence "
                "(every sample is 0 in 16-bit): nothing to sync to")}
        length_note = _length_note(audio, ctx)
        with tempfile.TemporaryDirectory(prefix="moee_sync_") as work:
            w = Path(work)
            if m.pixels == "exact":
                a16 = syncnet_core.float_to_int16(audio)
                got = self._exact(a16)
            elif m.face_cropped:
                got = self._face_cropped_jpeg(w)
            else:
                got = self._tracked_jpeg(w)
            if isinstance(got, dict):
                return got
            res = []
            for c, seg, s in got:
                if syncnet_core.n_windows(len(c), len(seg)) <= 0:
                    continue
                res.append((m.scorer().score(c, seg), len(c), s))
        if not res:
            return {"status": np.array("too_short"), "message": np.array("fewer than 6 frames of face and audio")}
        return {"status": np.array("ok"), "message": np.array(length_note), "audio_source": np.array(str(source)),
                "offset": np.array([r.offset for r, _, _ in res]), "conf": np.array([r.conf for r, _, _ in res]),
                "dist": np.array([r.dist for r, _, _ in res]), "mdist": np.stack([r.mdist for r, _, _ in res]),
                "length": np.array([n for _, n, _ in res]), "start": np.array([s for _, _, s in res])}

    def _no_track(self, n_det: int) -> Features:
        st = "no_face" if n_det == 0 else "too_short"
        return {"status": np.array(st), "message": np.array(
            f"{n_det} face detections, no track longer than {self.m.min_track} frames")}

    def _exact(self, a16: np.ndarray) -> list | Features:
        """The evaluator's decoded frames and audio, no file step."""
        m = self.m
        if m.face_cropped:
            if not self.frames:
                return []
            return [(_to_224(np.stack(self.frames)[..., ::-1]), a16, 0)]
        bgr = [f[..., ::-1] for f in self.frames]
        tracks, n_det = m.tracker_tracks(bgr, face_track.scene_cuts(bgr, self.ctx.fps))
        if not tracks:
            return self._no_track(n_det)
        return [(face_track.crop_track(bgr, t), a16[int(t.frames[0]) * SAMPLES_PER_FRAME:], int(t.frames[0]))
                for t in tracks]

    def _face_cropped_jpeg(self, w: Path) -> list:
        """syncnet-python's step 8 on the pred file: ffmpeg JPEG dump + aresample'd s16 wav."""
        ctx, cid = self.ctx, self.ctx.clip_id
        fps = media.probe(ctx.clip.pred, clip_id=cid).fps
        rate = None if abs(fps - sync_io.FRAME_RATE) < 1e-3 else sync_io.FRAME_RATE
        frames = _to_224(sync_io.jpeg_frames(ctx.clip.pred, w / "frames", rate=rate, clip_id=cid))
        a16 = sync_io.wav16k(self._audio_file(), w / "audio.wav", clip_id=cid)
        return [(frames, a16, 0)]

    def _tracked_jpeg(self, w: Path) -> list | Features:
        """syncnet-python's ``inference`` steps 1-8 on the pred file (detection batched, crops in memory)."""
        m, cid = self.m, self.ctx.clip_id
        avi = sync_io.reencode_25fps(self.ctx.clip.pred, w / "video.avi", clip_id=cid)
        files = sync_io.jpeg_dump(avi, w / "frames", qscale=2, clip_id=cid)
        tracks, n_det = m.tracker_tracks(_JpegFrames(files), face_track.scene_cuts_video(str(avi)))
        if not tracks:
            return self._no_track(n_det)
        speech = sync_io.speech_wav(self._audio_file(), w / "speech.wav", clip_id=cid)
        out = []
        for k, t in enumerate(tracks):
            crops = face_track.crop_track(_JpegFrames(files), t)
            crops = sync_io.xvid_roundtrip(crops, w / f"crop{k:05d}", clip_id=cid)
            f0, f1 = int(t.frames[0]), int(t.frames[-1]) + 1
            out.append((crops, speech[f0 * SAMPLES_PER_FRAME: f1 * SAMPLES_PER_FRAME], f0))
        return out


def _length_note(audio: np.ndarray, ctx: ClipContext) -> str:
    """A note when the audio is much shorter or longer than the pred video (> 0.5 s and 10 %): SyncNet then
    scores only the part both cover, and its best offset may sit at the search edge."""
    from moee_bench.bench.core import media

    try:
        video_s = media.probe(ctx.clip.pred, clip_id=ctx.clip_id).duration
    except ClipError:
        return ""
    audio_s = len(audio) / media.AUDIO_RATE
    if not np.isfinite(video_s) or abs(audio_s - video_s) <= max(0.5, 0.1 * video_s):
        return ""
    return (f"sync: the audio lasts {audio_s:.2f} s and the video {video_s:.2f} s; "
            f"scored over the {min(audio_s, video_s):.2f} s both cover")


class _JpegFrames:
    """Frames of a JPEG dump read on demand (``cv2.imread``), so long clips never sit in memory at once."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [cv2.imread(str(f)) for f in self.files[i]]
        return cv2.imread(str(self.files[i]))


class Sync(Metric):
    """Sync-C (higher better) and Sync-D (lower better) per clip, averaged over scored clips."""

    name = "sync"
    reference = "joonson/syncnet_python via syncnet-python 0.2.3 (Sync-C, Sync-D)"
    extractor_version = 2        # 2: digital-silence audio is no_audio; an audio/video length mismatch is noted
    keys = ("sync_c", "sync_d")
    states = {"c": State(MeanState), "d": State(MeanState), "counts": State(lambda: {s: 0 for s in STATUSES})}
    higher_is_better = {"sync_c": True, "sync_d": False}
    needs_audio = True
    parts = {"pred": ("pred", "audio")}
    DETECTOR_WEIGHTS = {"s3fd": "sfd_face", "retinaface": "retinaface_resnet50"}
    PARAMS = {"face_cropped": Param(bool, False, help="frames are already face crops (no detection)"),
              "sync_audio": Param(str, "driving", ("driving", "video"), help="audio scored: the driving audio or the video's track"),
              "sync_pixels": Param(str, "jpeg", ("jpeg", "exact"), help="jpeg: syncnet-python's file steps; exact: decoded pixels"),
              "sync_min_track": Param(int, face_track.DEFAULT_MIN_TRACK, minimum=1, help="shortest face track (frames)"),
              "sync_detector": Param(str, "s3fd", ("s3fd", "retinaface"), help="face detector of the tracked mode"),
              "sync_track_rule": Param(str, "longest", ("longest", "pypi"), help="which face track is scored")}

    def __init__(self, options: Any = None) -> None:
        self.options = options or MetricOptions()
        p = lambda key: self.param_value(self.options, key)   # noqa: E731
        self.face_cropped = bool(p("face_cropped"))
        self.audio_source = str(p("sync_audio"))
        self.pixels = str(p("sync_pixels"))
        self.min_track = int(p("sync_min_track"))
        self.detector_name = str(p("sync_detector"))
        self.track_rule = str(p("sync_track_rule"))
        if self.pixels == "jpeg":
            ffmpeg_exe()                    # no usable ffmpeg: Sync is "not computed" with the reason, not a crash mid-run
        self._scorer: syncnet_core.SyncNetScorer | None = None
        self._detector: Any = None
        self._weights: dict[str, str] = {}
        self._resolved: dict[str, Any] = {}
        super().__init__()
        self.scorer()                       # missing or tampered SyncNet weights fail here, before any clip is decoded
        if not self.face_cropped:           # the detector's weights are part of the features' identity: checked now,
            self._resolve(self.DETECTOR_WEIGHTS[self.detector_name])     # loaded on first use

    def _resolve(self, name: str) -> Any:
        if name not in self._resolved:
            r = self.options.weights.resolve(name)
            self._resolved[name], self._weights[name] = r, r.sha256
        return self._resolved[name]

    def weight_files(self) -> list:
        return list(self._resolved.values())

    def feature_parts(self):
        """The pred video's own audio track (``sync_audio=video``) is covered by the pred video's identity."""
        return {"pred": ("pred",)} if self.audio_source == "video" else self.parts

    def scorer(self) -> syncnet_core.SyncNetScorer:
        """The SyncNet scorer with ``syncnet_v2`` weights from the registry (loaded once)."""
        if self._scorer is None:
            r = self._resolve("syncnet_v2")
            self._scorer = syncnet_core.SyncNetScorer.from_state_dict(load_state_dict(r), device=self.options.device,
                                                                      precision=of_options(self.options))
        return self._scorer

    def detector(self) -> Any:
        if self._detector is None:
            r = self._resolve(self.DETECTOR_WEIGHTS[self.detector_name])
            if self.detector_name == "s3fd":
                self._detector = face_track.S3FDDetector(load_state_dict(r), device=self.options.device)
            else:
                self._detector = face_track.RetinaFaceDetector(str(r.path), device=self.options.device)
        return self._detector

    def tracker_tracks(self, frames_bgr: Any, scenes: list[tuple[int, int]]) -> tuple[list[face_track.Track], int]:
        """Tracks over all scenes and the total number of detections; ``frames_bgr`` supports len and slicing."""
        det = self.detector()
        bs = getattr(det, "batch_size", 8)
        dets: list[np.ndarray] = []
        for i in range(0, len(frames_bgr), bs):
            dets += det.detect_batch(frames_bgr[i:i + bs])
        tracks: list[face_track.Track] = []
        for a, b in scenes:
            if b - a >= self.min_track:
                tracks += face_track.track_faces(dets[a:b], a, min_track=self.min_track)
        return tracks, int(sum(len(d) for d in dets))

    def config(self) -> dict[str, Any]:
        return {"face_cropped": self.face_cropped, "audio": self.audio_source, "pixels": self.pixels,
                "min_track": self.min_track, "detector": None if self.face_cropped else self.detector_name,
                "crop_scale": 0.4, "vshift": syncnet_core.VSHIFT, "fps": 25, "track_rule": self.track_rule,
                "impl": "moee-bench syncnet_core (syncnet_python.SyncNetModel.S, folded 2D form)",
                "pixel_path": PIXEL_PATHS[(self.pixels, self.face_cropped)], "precision": of_options(self.options),
                **({"ffmpeg": sync_io.ffmpeg_version(), "opencv": cv2.__version__} if self.pixels == "jpeg" else {})}

    def protocol(self) -> dict[str, Any]:
        extra = {"ffmpeg_path": sync_io.ffmpeg_exe()} if self.pixels == "jpeg" else {}
        return {"metric": "sync", **self.config(), **extra, "weights_sha256": dict(self._weights)}

    def part_extractor(self, ctx: ClipContext, part: str) -> _Extractor:
        return _Extractor(self, ctx)

    def update(self, ctx: ClipContext, feats: Features) -> dict[str, Any]:
        st = str(feats["status"])
        if st != "ok":
            self.counts[st if st in self.counts else "error"] += 1
            raise ClipError(ctx.clip_id if ctx else None, str(feats["message"]) or st, status=st)
        conf, dist, length = (np.asarray(feats[k]) for k in ("conf", "dist", "length"))
        if self.track_rule == "longest":
            i = int(np.argmax(length))
            c, d, off = float(conf[i]), float(dist[i]), int(feats["offset"][i])
        else:
            c, d, off = float(conf.max()), float(dist.min()), int(feats["offset"][int(np.argmax(conf))])
        self.c.add(c)
        self.d.add(d)
        if ctx is not None:
            if str(feats["message"]):                 # an audio/video length mismatch (see _length_note)
                ctx.notes.append(str(feats["message"]))
        tracks = [{"start": int(s), "length": int(n), "offset": int(o), "conf": float(cc), "dist": float(dd)}
                  for s, n, o, cc, dd in zip(feats["start"], length, feats["offset"], conf, dist)]
        return {"sync_c": c, "sync_d": d, "offset": off, "sync_tracks": tracks,
                "sync_audio": str(feats["audio_source"]) if "audio_source" in feats else self.audio_source}

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"sync_n_{s}": n for s, n in self.counts.items()}
        out["sync_n_scored"] = self.c.count
        if not self.c.count:
            return {"sync_c": None, "sync_d": None, "sync_c_reason": "no clip could be scored", **out}
        return {"sync_c": self.c.mean(), "sync_d": self.d.mean(), **out}
