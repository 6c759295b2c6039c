"""Face detection and landmarks from weights that ship inside installed packages (offline).

* :class:`FaceDetector`: MTCNN from facenet-pytorch (bundled P/R/O-net weights): box, score and
  5 landmarks (eyes, nose, mouth corners) per frame, batched.
* :class:`Landmarks68`: dlib's 68-point shape predictor from ``face_recognition_models``
  (located without importing that package, whose ``__init__`` needs ``pkg_resources``).

Both are wrappers around the libraries; the only logic here is choosing the largest face and
converting their outputs to plain float arrays.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in pixel coordinates of the frame it came from."""

    box: np.ndarray          # (4,) x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray   # (5, 2) x, y: left eye, right eye, nose, left mouth, right mouth


class FaceDetector:
    """MTCNN face detector (facenet-pytorch, bundled weights). Keeps the largest face of each frame."""

    name = "mtcnn-facenet-pytorch"

    def __init__(self, device: str = "cpu", min_score: float = 0.9, min_face_size: int = 20) -> None:
        from facenet_pytorch import MTCNN

        self.device = device
        self.min_score = min_score
        self.mtcnn = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)

    def detect(self, frames: np.ndarray) -> list[Face | None]:
        """Detect in ``(n, H, W, 3)`` uint8 RGB frames; ``None`` where no face reaches ``min_score``."""
        frames = np.ascontiguousarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        boxes, probs, points = self.mtcnn.detect(frames, landmarks=True)
        out: list[Face | None] = []
        for b, p, l in zip(boxes, probs, points):
            if b is None:
                out.append(None)
                continue
            b = np.asarray(np.asarray(b).tolist(), np.float64).reshape(-1, 4)
            p = np.asarray(np.asarray(p).tolist(), np.float64).reshape(-1)
            l = np.asarray(np.asarray(l).tolist(), np.float64).reshape(-1, 5, 2)
            keep = p >= self.min_score
            if not keep.any():
                out.append(None)
                continue
            b, p, l = b[keep], p[keep], l[keep]
            i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            out.append(Face(b[i], float(p[i]), l[i]))
        return out


def _fr_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed (pip install face_recognition_models dlib-bin)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(_fr_models_dir() / "shape_predictor_68_face_landmarks.dat"))


class Landmarks68:
    """dlib 68-point landmarks (iBUG 300-W layout) inside a given face box."""

    name = "dlib-shape_predictor_68 (face_recognition_models)"

    def __call__(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(68, 2)`` float64 x, y for the face in ``box`` (x1, y1, x2, y2) of an ``(H, W, 3)`` uint8 RGB frame."""
        import dlib

        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = _shape_predictor()(np.ascontiguousarray(frame), dlib.rectangle(x1, y1, x2, y2))
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
