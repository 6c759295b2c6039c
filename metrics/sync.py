"""Sync-C / Sync-D (LSE-C / LSE-D) with the SyncNet protocol.

Frames at 25 fps (timestamp resampling by the evaluator), audio at 16 kHz mono (the driving audio
from the manifest by default, MoChaBench convention; ``sync_audio=video`` uses the video's track).
Face crops, per the reference ``run_pipeline`` geometry: per frame a face box (``sync_detector``:
``s3fd``, the reference detector, weights ``sfd_face.pth`` via the registry; or ``mtcnn``, the
offline default shipped with facenet-pytorch), a single track of the largest face with gaps
linearly interpolated, centre and size median-filtered (kernel 13), the frame padded with grey 110,
the crop spanning rows y-s..y+1.8s and columns x+-1.4s (crop_scale 0.4, s = max(w,h)/2), resized
to 224x224. ``face_cropped=1``: the frames already are face crops (resized to 224 only).
Then the published protocol's last JPEG round trip (ffmpeg image2 at its default mjpeg settings,
read back with OpenCV) unless ``sync_pixels=exact``. Scoring: :mod:`metrics.syncnet_core`.

Per clip: ``sync_c``, ``sync_d``, ``offset``; status no_face / too_short / no_audio, never 0.0.
Not handled in this version: scene cuts and several face tracks (one track per clip).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from bench.errors import ClipError
from bench.weights import load_state_dict
from metrics.base import ClipContext, Features, FrameChunk, MeanState, Metric
from metrics.syncnet_core import VSHIFT, load_syncnet, score, to_int16

CROP_SCALE = 0.4
MEDIAN_KERNEL = 13


def jpeg_roundtrip(frames_bgr: np.ndarray) -> np.ndarray:
    """Encode frames with ffmpeg's image2/mjpeg defaults and decode them with OpenCV, as the reference does."""
    from bench.ffmpeg import ensure_ffmpeg_on_path

    exe = ensure_ffmpeg_on_path()
    n, h, w, _ = frames_bgr.shape
    with tempfile.TemporaryDirectory() as d:
        cmd = [exe, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", "25",
               "-i", "pipe:0", "-threads", "1", "-f", "image2", str(Path(d) / "%06d.jpg")]
        subprocess.run(cmd, input=np.ascontiguousarray(frames_bgr, np.uint8).tobytes(), check=True, capture_output=True,
                       timeout=300)
        files = sorted(Path(d).glob("*.jpg"))
        return np.stack([cv2.imread(str(f)) for f in files])


def smooth_track(boxes: np.ndarray) -> np.ndarray:
    """(T, 3) centre x, centre y, half-size per frame from (T, 4) boxes with NaN gaps: interpolated, median-filtered."""
    from scipy.signal import medfilt

    t = np.arange(len(boxes))
    ok = np.all(np.isfinite(boxes), axis=1)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    s = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    out = []
    for v in (cx, cy, s):
        v = np.interp(t, t[ok], v[ok])
        k = min(MEDIAN_KERNEL, len(v) if len(v) % 2 else len(v) - 1)
        out.append(medfilt(v, kernel_size=max(1, k)))
    return np.stack(out, 1)


def crop_faces(frames_rgb: np.ndarray, track: np.ndarray) -> np.ndarray:
    """224x224 BGR crops with the reference pipeline's geometry."""
    out = []
    for img, (x, y, s) in zip(frames_rgb, track):
        bsi = int(s * (1 + 2 * CROP_SCALE))
        pad = cv2.copyMakeBorder(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), bsi, bsi, bsi, bsi, cv2.BORDER_CONSTANT,
                                 value=(110, 110, 110))
        my, mx = y + bsi, x + bsi
        face = pad[int(my - s):int(my + s * (1 + 2 * CROP_SCALE)), int(mx - s * (1 + CROP_SCALE)):int(mx + s * (1 + CROP_SCALE))]
        out.append(cv2.resize(face, (224, 224)))
    return np.stack(out)


class _Extractor:
    def __init__(self, m: "Sync", ctx: ClipContext) -> None:
        self.m, self.ctx = m, ctx
        self.frames: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        if ctx.audio is None:
            raise ClipError(ctx.clip_id, "no audio to score lip sync against (no driving audio, no audio track)",
                            status="no_audio")

    def add(self, chunk: FrameChunk) -> None:
        if self.m.face_cropped:
            self.frames.append(np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), (224, 224)) for f in chunk.pred]))
            return
        self.frames.append(chunk.pred)
        self.boxes.append(self.m.detect(chunk.pred))

    def finish(self) -> Features:
        frames = np.concatenate(self.frames)
        if not self.m.face_cropped:
            boxes = np.concatenate(self.boxes)
            found = int(np.all(np.isfinite(boxes), axis=1).sum())
            if found == 0:
                raise ClipError(self.ctx.clip_id, f"no face found in {len(boxes)} frames", status="no_face")
            if found < self.m.min_track:
                raise ClipError(self.ctx.clip_id, f"face found in {found} frames < min_track {self.m.min_track}",
                                status="too_short")
            frames = crop_faces(frames, smooth_track(boxes))
        if self.m.pixels == "jpeg":
            frames = jpeg_roundtrip(frames)
        try:
            r = score(self.m.net, frames, to_int16(self.ctx.audio), device=self.m.device)
        except ValueError as e:
            raise ClipError(self.ctx.clip_id, str(e), status="too_short") from None
        return {"offset": np.array(r.offset), "conf": np.array(r.conf), "dist": np.array(r.dist),
                "n_windows": np.array(r.n_windows), "mdist": r.mdist}


class Sync(Metric):
    name = "sync"
    keys = ("sync_c", "sync_d")
    higher_is_better = {"sync_c": True, "sync_d": False}
    needs_audio = True

    def __init__(self, options: Any) -> None:
        p = options.param
        self.device = options.device
        self.face_cropped = str(p("face_cropped", "0")).lower() in ("1", "true", "yes")
        self.pixels = str(p("sync_pixels", "jpeg"))
        self.detector_name = str(p("sync_detector", "s3fd"))
        self.min_track = int(p("min_track", 25))
        self.weights = options.weights.resolve("syncnet_v2")
        self.net = load_syncnet(load_state_dict(self.weights), self.device)
        self._s3fd = None
        self._mtcnn = None
        if not self.face_cropped:
            if self.detector_name == "s3fd":
                from syncnet_python.detectors.s3fd import S3FD
                from syncnet_python.detectors.s3fd.nets import S3FDNet

                r = options.weights.resolve("sfd_face")
                net = S3FDNet(device=self.device)
                net.load_state_dict(load_state_dict(r))
                self._s3fd = S3FD(net=net, device=self.device)
            elif self.detector_name == "mtcnn":
                from metrics.faces import FaceDetector

                self._mtcnn = FaceDetector(device=self.device)
            else:
                raise ValueError(f"sync_detector must be s3fd or mtcnn, got {self.detector_name!r}")
        super().__init__()

    def detect(self, frames: np.ndarray) -> np.ndarray:
        """(n, 4) largest-face boxes, NaN rows where none."""
        out = np.full((len(frames), 4), np.nan)
        if self._mtcnn is not None:
            for i, f in enumerate(self._mtcnn.detect(frames)):
                if f is not None:
                    out[i] = f.box
            return out
        for i, img in enumerate(frames):
            b = self._s3fd.detect_faces(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), conf_th=0.9, scales=[0.25])
            if len(b):
                j = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
                out[i] = b[j, :4]
        return out

    def reset(self) -> None:
        self.c = MeanState()
        self.d = MeanState()
        self.offsets: dict[int, int] = {}

    def config(self) -> dict[str, Any]:
        return {"impl": "syncnet_python S + vectorised offsets (SyncNetInstance.evaluate numbers)", "vshift": VSHIFT,
                "fps": 25, "audio": "16 kHz mono int16, MFCC (python_speech_features defaults)",
                "crop": "face_cropped" if self.face_cropped else f"{self.detector_name} track, crop_scale {CROP_SCALE}",
                "min_track": self.min_track, "pixels": "ffmpeg JPEG round trip" if self.pixels == "jpeg" else "exact",
                "syncnet_sha256": self.weights.sha256, "verified": self.weights.verified,
                "aggregate": "mean over clips of per-clip conf / min dist (one face track per clip)"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self, ctx)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        c, d, off = float(feats["conf"]), float(feats["dist"]), int(feats["offset"])
        self.c.add(c)
        self.d.add(d)
        self.offsets[off] = self.offsets.get(off, 0) + 1
        return {"sync_c": c, "sync_d": d, "offset": off}

    def state_dict(self) -> dict[str, Any]:
        return {"c": self.c.state(), "d": self.d.state(), "offsets": dict(self.offsets)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reset()
        self.merge_state(state)

    def merge_state(self, state: Mapping[str, Any]) -> None:
        self.c.merge(state["c"])
        self.d.merge(state["d"])
        for k, v in state["offsets"].items():
            self.offsets[int(k)] = self.offsets.get(int(k), 0) + int(v)

    def compute(self) -> dict[str, Any]:
        if not self.c.count:
            return {"sync_c": None, "sync_d": None, "sync_c_reason": "no clip could be scored", "sync_n": 0}
        return {"sync_c": self.c.mean(), "sync_d": self.d.mean(), "sync_n": self.c.count}
