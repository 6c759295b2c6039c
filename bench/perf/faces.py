"""``moee-bench bench faces``: AKD's per-frame face pass (MTCNN box + dlib 68 landmarks at 256x256, what AKD,
FLMD and dynamics run per frame) with the detector on one torch thread (:data:`bench.core.faces.DETECT_THREADS`,
the default) against torch's own thread setting (the path before), in alternating rounds on ``--frames`` distinct
frames of a real portrait (scikit-image's astronaut, shifted a pixel a frame); the detection memo is emptied before
every pass. Prints ms per frame of each (median, min-max), the ratio, and whether the landmarks are identical."""

from __future__ import annotations

import statistics
import time

import numpy as np

from moee_bench.bench.perf.common import report


def portrait_frames(n: int, size: int = 256) -> np.ndarray:
    """``n`` distinct (n, size, size, 3) uint8 frames of a real face: the astronaut portrait, shifted 1 px a frame."""
    import cv2
    from skimage import data

    face = cv2.resize(np.ascontiguousarray(data.astronaut()[0:300, 100:400]), (size + n, size + n),
                      interpolation=cv2.INTER_AREA)
    return np.stack([face[i:i + size, i:i + size] for i in range(n)])


def face_pass(frames: np.ndarray, threads: int | None) -> tuple[float, np.ndarray]:
    """(seconds, (n, 68, 2) landmarks) of AKD's landmark pass with the detector on ``threads`` torch threads."""
    from moee_bench.bench.core import faces
    from moee_bench.metrics.motion.akd import landmarks_256

    det, lm = faces.FaceDetector(), faces.Landmarks68()
    before = faces.DETECT_THREADS
    faces.DETECT_THREADS = threads
    faces.DETECTIONS.clear()
    try:
        t = time.perf_counter()
        kp = landmarks_256(frames, det, lm)
        return time.perf_counter() - t, kp
    finally:
        faces.DETECT_THREADS = before
        faces.DETECTIONS.clear()


def run(args) -> int:
    import torch

    frames = portrait_frames(args.frames)
    face_pass(frames[:2], None)                                        # warm-up: networks built, first calls paid
    times: dict[str, list[float]] = {"before": [], "after": []}
    kps: dict[str, np.ndarray] = {}
    for _ in range(max(1, args.repeats)):
        for side, threads in (("before", None), ("after", 1)):
            dt, kps[side] = face_pass(frames, threads)
            times[side].append(1e3 * dt / len(frames))
    ratios = [b / a for b, a in zip(times["before"], times["after"])]
    same = bool(np.array_equal(kps["before"], kps["after"], equal_nan=True))
    rows = {"frames": len(frames), "faces found": int(np.isfinite(kps["after"][:, 0, 0]).sum()),
            "torch threads (before)": torch.get_num_threads(),
            "before: ms / frame (median, min-max)": f"{statistics.median(times['before']):.1f} "
                                                     f"({min(times['before']):.1f}-{max(times['before']):.1f})",
            "after (detector on 1 thread): ms / frame": f"{statistics.median(times['after']):.1f} "
                                                         f"({min(times['after']):.1f}-{max(times['after']):.1f})",
            "speed-up (median, min-max)": f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
            "landmarks identical": same, "raw": {"ms_per_frame": times}}
    report("faces: AKD per-frame face pass", rows, args.json)
    return 0 if same else 1
