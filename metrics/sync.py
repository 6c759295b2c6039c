"""Sync-C / Sync-D (SyncNet confidence and min distance) with the published syncnet-python protocol.

Per clip: pred frames at 25 fps (the evaluator resamples by timestamps) -> face tracks and 224x224
crops (:mod:`metrics.face_track`; or the whole frame resized to 224 with ``face_cropped=true``) ->
the JPEG round trip of the reference (``ffmpeg -i crop %06d.jpg`` at ffmpeg's default mjpeg settings,
read back with ``cv2.imread``; ``sync_pixels=exact`` skips it and is recorded) -> audio as int16
16 kHz -> :class:`metrics.syncnet_core.SyncNetScorer`.

Audio: the driving audio from the manifest (MoChaBench convention) by default; ``sync_audio=video``
uses the pred video's own track. Track rule (``sync_track_rule``): ``longest`` (default; conf and
dist from the same, longest track) or ``pypi`` (max conf / min dist over tracks, as syncnet-python).
Params: ``face_cropped``, ``sync_audio``, ``sync_pixels``, ``sync_min_track`` (default 25 frames:
talking-head clips are 2-5 s, the reference's 100 and the wheel's 50 drop 2 s clips; 25 still gives
>= 20 windows), ``sync_detector`` (s3fd | retinaface), ``sync_track_rule``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics import face_track, syncnet_core
from moee_bench.metrics.base import ClipContext, Features, FrameChunk, MeanState, Metric
from moee_bench.metrics.precision import of_options

STATUSES = ("no_face", "too_short", "no_audio", "error")


def _truthy(v: Any) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


def jpeg_roundtrip(frames_bgr: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """Encode BGR frames with ffmpeg's image2 muxer at its default mjpeg settings and decode with cv2.imread.

    The reference dumps the crop video with ``ffmpeg -i crop.avi -f image2 %06d.jpg`` (no ``-q``), whose
    mjpeg quality comes from ffmpeg's rate control, not a fixed quality, so ffmpeg itself is run here."""
    from moee_bench.bench.core.ffmpeg import ensure_ffmpeg_on_path

    ensure_ffmpeg_on_path()
    n, h, w, _ = frames_bgr.shape
    with tempfile.TemporaryDirectory(prefix="moee_sync_") as d:
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-", "-f", "image2", "-threads", "1", str(Path(d) / "%06d.jpg")]
        subprocess.run(cmd, input=np.ascontiguousarray(frames_bgr).tobytes(), check=True, capture_output=True)
        files = sorted(Path(d).glob("*.jpg"))
        return np.stack([cv2.imread(str(f)) for f in files])


class _Extractor:
    def __init__(self, metric: "Sync", ctx: ClipContext) -> None:
        self.m, self.ctx = metric, ctx
        self.frames: list[np.ndarray] = []

    def add(self, chunk: FrameChunk) -> None:
        self.frames.extend(chunk.pred)

    def finish(self) -> Features:
        m, ctx = self.m, self.ctx
        audio, source = ctx.audio, ctx.audio_source
        if m.audio_source == "video":
            source = "video"
            from moee_bench.bench.core import media

            try:
                audio = media.read_audio(ctx.clip.pred, clip_id=ctx.clip_id)
            except ClipError:
                audio = None
        if audio is None or len(audio) == 0:
            return {"status": np.array("no_audio"), "message": np.array("no audio to score against")}
        a16 = syncnet_core.float_to_int16(audio)
        if m.face_cropped:
            crops = [np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), (224, 224)) for f in self.frames])] \
                if self.frames else []
            starts = [0]
        else:
            tracks, n_det = m.tracker_tracks(self.frames)
            if not tracks:
                st = "no_face" if n_det == 0 else "too_short"
                return {"status": np.array(st), "message": np.array(
                    f"{n_det} face detections, no track longer than {m.min_track} frames")}
            crops = [face_track.crop_track(self.frames, t) for t in tracks]
            starts = [int(t.frames[0]) for t in tracks]
        res = []
        for c, s in zip(crops, starts):
            if m.pixels == "jpeg":
                c = jpeg_roundtrip(c)
            seg = a16[s * 640:]
            if syncnet_core.n_windows(len(c), len(seg)) <= 0:
                continue
            res.append((m.scorer().score(c, seg), len(c), s))
        if not res:
            return {"status": np.array("too_short"), "message": np.array("fewer than 6 frames of face and audio")}
        return {"status": np.array("ok"), "message": np.array(""), "audio_source": np.array(str(source)),
                "offset": np.array([r.offset for r, _, _ in res]), "conf": np.array([r.conf for r, _, _ in res]),
                "dist": np.array([r.dist for r, _, _ in res]), "mdist": np.stack([r.mdist for r, _, _ in res]),
                "length": np.array([n for _, n, _ in res]), "start": np.array([s for _, _, s in res])}


class Sync(Metric):
    """Sync-C (higher better) and Sync-D (lower better) per clip, averaged over scored clips."""

    name = "sync"
    keys = ("sync_c", "sync_d")
    higher_is_better = {"sync_c": True, "sync_d": False}
    needs_audio = True

    def __init__(self, options: Any = None) -> None:
        from moee_bench.metrics.registry import MetricOptions

        self.options = options or MetricOptions()
        p = self.options.param
        self.face_cropped = _truthy(p("face_cropped", False))
        self.audio_source = str(p("sync_audio", "driving"))
        self.pixels = str(p("sync_pixels", "jpeg"))
        self.min_track = int(p("sync_min_track", face_track.DEFAULT_MIN_TRACK))
        self.detector_name = str(p("sync_detector", "s3fd"))
        self.track_rule = str(p("sync_track_rule", "longest"))
        for k, v, ok in (("sync_audio", self.audio_source, ("driving", "video")), ("sync_pixels", self.pixels, ("jpeg", "exact")),
                         ("sync_detector", self.detector_name, ("s3fd", "retinaface")),
                         ("sync_track_rule", self.track_rule, ("longest", "pypi"))):
            if v not in ok:
                raise ValueError(f"{k} must be one of {ok}, got {v!r}")
        self._scorer: syncnet_core.SyncNetScorer | None = None
        self._detector: Any = None
        self._weights: dict[str, str] = {}
        super().__init__()
        self.scorer()                       # missing or tampered SyncNet weights fail here, before any clip is decoded

    def scorer(self) -> syncnet_core.SyncNetScorer:
        """The SyncNet scorer with ``syncnet_v2`` weights from the registry (loaded once)."""
        if self._scorer is None:
            from moee_bench.bench.core.weights import load_state_dict

            r = self.options.weights.resolve("syncnet_v2")
            self._weights["syncnet_v2"] = r.sha256
            self._scorer = syncnet_core.SyncNetScorer.from_state_dict(load_state_dict(r), device=self.options.device,
                                                                      precision=of_options(self.options))
        return self._scorer

    def detector(self) -> Any:
        if self._detector is None:
            from moee_bench.bench.core.weights import load_state_dict

            if self.detector_name == "s3fd":
                r = self.options.weights.resolve("sfd_face")
                self._detector = face_track.S3FDDetector(load_state_dict(r), device=self.options.device)
            else:
                r = self.options.weights.resolve("retinaface_resnet50")
                self._detector = face_track.RetinaFaceDetector(str(r.path), device=self.options.device)
            self._weights[r.spec.name] = r.sha256
        return self._detector

    def tracker_tracks(self, frames: list[np.ndarray]) -> tuple[list[face_track.Track], int]:
        """Tracks over all scenes and the total number of detections."""
        det = self.detector()
        dets = [det(f) for f in frames]
        tracks: list[face_track.Track] = []
        for a, b in face_track.scene_cuts(frames):
            if b - a >= self.min_track:
                tracks += face_track.track_faces(dets[a:b], a, min_track=self.min_track)
        return tracks, int(sum(len(d) for d in dets))

    def reset(self) -> None:
        self.c, self.d = MeanState(), MeanState()
        self.counts = {s: 0 for s in STATUSES}

    def config(self) -> dict[str, Any]:
        return {"face_cropped": self.face_cropped, "audio": self.audio_source, "pixels": self.pixels,
                "min_track": self.min_track, "detector": None if self.face_cropped else self.detector_name,
                "crop_scale": 0.4, "vshift": syncnet_core.VSHIFT, "fps": 25, "track_rule": self.track_rule,
                "impl": "moee-bench syncnet_core (syncnet_python.SyncNetModel.S, folded 2D form)",
                "precision": of_options(self.options)}

    def protocol(self) -> dict[str, Any]:
        return {"metric": "sync", **self.config(), "weights_sha256": dict(self._weights)}

    def extractor(self, ctx: ClipContext) -> _Extractor:
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
        tracks = [{"start": int(s), "length": int(n), "offset": int(o), "conf": float(cc), "dist": float(dd)}
                  for s, n, o, cc, dd in zip(feats["start"], length, feats["offset"], conf, dist)]
        return {"sync_c": c, "sync_d": d, "offset": off, "sync_tracks": tracks,
                "sync_audio": str(feats["audio_source"]) if "audio_source" in feats else self.audio_source}

    def state_dict(self) -> dict[str, Any]:
        return {"c": self.c.state(), "d": self.d.state(), "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.c.load(state["c"])
        self.d.load(state["d"])
        self.counts = {s: int(state["counts"].get(s, 0)) for s in STATUSES}

    def merge_state(self, state: Mapping[str, Any]) -> None:
        self.c.merge(state["c"])
        self.d.merge(state["d"])
        for s in STATUSES:
            self.counts[s] += int(state["counts"].get(s, 0))

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"sync_n_{s}": n for s, n in self.counts.items()}
        out["sync_n_scored"] = self.c.count
        if not self.c.count:
            return {"sync_c": None, "sync_d": None, "sync_c_reason": "no clip could be scored", **out}
        return {"sync_c": self.c.mean(), "sync_d": self.d.mean(), **out}
