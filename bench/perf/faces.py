"""``moee-bench bench faces``: AKD's per-frame face pass (MTCNN box + dlib 68 landmarks at 256x256, what AKD,
FLMD and dynamics run per frame): the untouched facenet-pytorch ``MTCNN.detect`` + dlib (the reference, "before")
against :class:`~moee_bench.bench.core.mtcnn_fast.FastMTCNN` + dlib (the default, "after"), in alternating
rounds on the same frames (``--real DIR``: the first ``--frames`` frames of the first ``--clips`` videos there,
e.g. the sample's; otherwise ``--frames`` shifted crops of scikit-image's astronaut portrait). The detection and
landmark memos are emptied before every pass. Prints ms per frame of each (median, min-max), the ratio, the
MTCNN / dlib split of the default path, the load average, and whether the landmarks are identical; and the
declared fast mode ``akd_detect_every=--detect-every`` (default 5): its time and how far its landmarks move."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from moee_bench.bench.core import mtcnn_fast
from moee_bench.bench.perf.common import report


def portrait_frames(n: int, size: int = 256) -> np.ndarray:
    """``n`` distinct (n, size, size, 3) uint8 frames of a real face: the astronaut portrait, shifted 1 px a frame."""
    import cv2
    from skimage import data

    face = cv2.resize(np.ascontiguousarray(data.astronaut()[0:300, 100:400]), (size + n, size + n),
                      interpolation=cv2.INTER_AREA)
    return np.stack([face[i:i + size, i:i + size] for i in range(n)])


def real_clips(folder: str, clips: int, frames: int) -> list[np.ndarray]:
    """The first ``frames`` RGB frames of the first ``clips`` videos (sorted ``*.mp4``) of ``folder``."""
    from moee_bench.bench.core.media import read_frames

    paths = sorted(Path(folder).glob("*.mp4"))[:clips]
    if not paths:
        raise FileNotFoundError(f"no *.mp4 in {folder}")
    return [np.asarray(read_frames(str(p)))[:frames] for p in paths]


def _clear() -> None:
    from moee_bench.bench.core import faces

    faces.DETECTIONS.clear()
    faces.LANDMARKS.clear()


def face_pass(frames: np.ndarray | list[np.ndarray], threads: int | None = 1, path: str = "fast",
              every: int = 1) -> tuple[float, np.ndarray]:
    """(seconds, (n, 68, 2) landmarks) of AKD's landmark pass (one ``landmarks_256`` call per clip; ``every`` > 1:
    ``landmarks_256_tracked``, akd_detect_every's mode) with MTCNN through ``path`` ("fast" | "library") on
    ``threads`` torch threads; memos emptied before and after."""
    from moee_bench.bench.core import faces
    from moee_bench.metrics.motion.akd import landmarks_256, landmarks_256_tracked

    clips = [frames] if isinstance(frames, np.ndarray) else list(frames)
    det, lm = faces.FaceDetector(), faces.Landmarks68()
    before = faces.DETECT_THREADS, faces.DETECT_PATH
    faces.DETECT_THREADS, faces.DETECT_PATH = threads, path
    _clear()
    try:
        t = time.perf_counter()
        kp = [landmarks_256(c, det, lm) if every == 1 else landmarks_256_tracked(c, det, lm, every, 0, None)[0]
              for c in clips]
        return time.perf_counter() - t, np.concatenate(kp)
    finally:
        faces.DETECT_THREADS, faces.DETECT_PATH = before
        _clear()


def split(clips: list[np.ndarray]) -> tuple[float, float]:
    """Seconds of the default path's MTCNN and of dlib's landmarks over ``clips`` (memos emptied first)."""
    from moee_bench.bench.core import faces

    det, lm = faces.FaceDetector(), faces.Landmarks68()
    _clear()
    t = time.perf_counter()
    found = [det.detect(c) for c in clips]
    t_det = time.perf_counter() - t
    t = time.perf_counter()
    for c, fs in zip(clips, found):
        for f, face in zip(c, fs):
            if face is not None:
                lm(f, face.box)
    t_lm = time.perf_counter() - t
    _clear()
    return t_det, t_lm


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"


def run(args) -> int:
    import torch

    clips = (real_clips(args.real, args.clips, args.frames) if getattr(args, "real", None)
             else [portrait_frames(args.frames)])
    n = sum(len(c) for c in clips)
    face_pass(clips[0][:2], 1, "library")                              # warm-up: networks built, first calls paid
    face_pass(clips[0][:2], 1, "fast")
    every = int(getattr(args, "detect_every", None) or 5)
    times: dict[str, list[float]] = {"before": [], "before, torch threads": [], "after": [], "declared": []}
    kps: dict[str, np.ndarray] = {}
    det_ms: list[float] = []
    lm_ms: list[float] = []
    load = [os.getloadavg()[0]]
    for _ in range(max(1, args.repeats)):
        for side, path in (("before", "library"), ("after", "fast")):
            dt, kps[side] = face_pass(clips, 1, path)
            times[side].append(1e3 * dt / n)
        dt, _ = face_pass(clips, None, "library")
        times["before, torch threads"].append(1e3 * dt / n)
        dt, kps["declared"] = face_pass(clips, 1, "fast", every)
        times["declared"].append(1e3 * dt / n)
        t_det, t_lm = split(clips)
        det_ms.append(1e3 * t_det / n)
        lm_ms.append(1e3 * t_lm / n)
    load.append(os.getloadavg()[0])
    ratios = [b / a for b, a in zip(times["before"], times["after"])]
    same = bool(np.array_equal(kps["before"], kps["after"], equal_nan=True))
    both = np.isfinite(kps["declared"][:, 0, 0]) & np.isfinite(kps["before"][:, 0, 0])
    moved = np.abs(kps["declared"][both] - kps["before"][both]).reshape(int(both.sum()), -1).mean(axis=1)
    declared = [b / a for b, a in zip(times["before"], times["declared"])]
    rows = {"frames": n, "clips": len(clips), "source": args.real or "astronaut portrait, shifted",
            "faces found": int(np.isfinite(kps["after"][:, 0, 0]).sum()),
            "torch threads (process)": torch.get_num_threads(),
            "load average (1 min, start / end)": f"{load[0]:.2f} / {load[1]:.2f}",
            "before: facenet-pytorch detect + dlib, ms / frame (median, min-max)": _ms(times["before"]),
            f"before, library on torch's {torch.get_num_threads()} threads (last bits differ), ms / frame":
                _ms(times["before, torch threads"]),
            "after: FastMTCNN + dlib, ms / frame": _ms(times["after"]),
            "after: how MTCNN runs": f"chunks of up to {mtcnn_fast.CHUNK} frames on {mtcnn_fast.workers()} Python threads, "
                                     f"1 torch thread each",
            "speed-up (median, min-max)": f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
            "after, MTCNN alone: ms / frame": _ms(det_ms),
            "after, dlib 68 alone: ms / frame": _ms(lm_ms),
            "landmarks identical": same,
            f"akd_detect_every={every} (declared, values change): ms / frame": _ms(times["declared"]),
            f"akd_detect_every={every}: speed-up vs before": f"{statistics.median(declared):.2f}x "
                                                              f"({min(declared):.2f}-{max(declared):.2f})",
            f"akd_detect_every={every}: landmark change, px (mean, max frame)":
                f"{moved.mean():.3f}, {moved.max():.3f}" if len(moved) else "no frame with a face",
            "raw": {"ms_per_frame": times, "mtcnn_ms": det_ms, "dlib_ms": lm_ms}}
    report("faces: AKD per-frame face pass", rows, args.json)
    return 0 if same else 1
