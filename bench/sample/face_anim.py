"""Animate a still portrait: mouth opening from a speech envelope, an emotion expression, small head motion.

Our own code (no library animates a face from landmarks without a trained model): a smooth
displacement field built from 68-point landmark offsets with Gaussian radial weights, applied with
``cv2.remap``; the inner-mouth polygon is darkened in proportion to the opening; the whole frame
gets a small rotation/translation. It is a deterministic puppet, not a generative model: lips,
brows and mouth corners move, teeth and tongue do not exist, identity and lighting never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from moee_bench.bench.core.emotions import BASIC

# iBUG 68-point groups
JAW_LOW = list(range(5, 12))
BROW_L, BROW_R = list(range(17, 22)), list(range(22, 27))
BROW_INNER = [20, 21, 22, 23]
NOSE_LOW = list(range(31, 36))
UPPER_LIP = [49, 50, 51, 52, 53, 61, 62, 63]
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
CORNERS = [48, 54, 60, 64]
INNER_MOUTH = list(range(60, 68))
CHEEKS = [1, 2, 3, 13, 14, 15]


@dataclass(frozen=True)
class FaceGeometry:
    """Landmarks of a portrait and its scale (inter-ocular distance in pixels)."""

    lm: np.ndarray        # (68, 2)

    @property
    def scale(self) -> float:
        return float(np.linalg.norm(self.lm[36:42].mean(0) - self.lm[42:48].mean(0)))

    @property
    def centre_x(self) -> float:
        return float(self.lm[27:31, 0].mean())


def _expression_offsets(geo: FaceGeometry, name: str) -> dict[int, np.ndarray]:
    """Landmark displacements (pixels) of one basic emotion at full intensity."""
    s = geo.scale
    cx = geo.centre_x
    out: dict[int, np.ndarray] = {}

    def add(idx: list[int], dx: float, dy: float, outward: bool = False, inward: bool = False) -> None:
        for i in idx:
            sx = np.sign(geo.lm[i, 0] - cx)
            x = dx * (sx if outward else (-sx if inward else 1.0))
            out[i] = out.get(i, np.zeros(2)) + np.array([x * s, dy * s])

    if name == "happiness":
        add([48, 60], 0.10, -0.12, outward=True)
        add([54, 64], 0.10, -0.12, outward=True)
        add(CHEEKS, 0.0, -0.06)
        add([41, 40, 46, 47], 0.0, -0.04)
    elif name == "sadness":
        add(CORNERS, 0.0, 0.10)
        add(BROW_INNER, 0.0, -0.10)
        add([17, 26], 0.0, 0.05)
    elif name == "anger":
        add(BROW_L + BROW_R, 0.0, 0.10)
        add(BROW_INNER, 0.08, 0.06, inward=True)
        add(UPPER_LIP, 0.0, 0.03)
        add(LOWER_LIP, 0.0, -0.03)
    elif name == "disgust":
        add([50, 51, 52, 61, 62, 63], 0.0, -0.10)
        add(NOSE_LOW, 0.0, -0.05)
        add(BROW_INNER, 0.04, 0.06, inward=True)
    elif name == "fear":
        add(BROW_L + BROW_R, 0.0, -0.10)
        add(BROW_INNER, 0.05, 0.0, inward=True)
        add(CORNERS, 0.10, 0.02, outward=True)
    elif name == "surprise":
        add(BROW_L + BROW_R, 0.0, -0.16)
        add(LOWER_LIP, 0.0, 0.12)
        add(JAW_LOW, 0.0, 0.08)
    return out


def _field(shape: tuple[int, int], points: np.ndarray, disp: np.ndarray, sigma: float) -> np.ndarray:
    """Dense (H, W, 2) displacement: Gaussian-weighted blend of control displacements."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    num = np.zeros((h, w, 2), np.float32)
    den = np.zeros((h, w), np.float32)
    for (px, py), d in zip(points, disp):
        g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        num += g[..., None] * d.astype(np.float32)
        den += g
    return num / np.maximum(den, 1.0)[..., None]


class Puppet:
    """Precomputed displacement bases for one portrait."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        self.image = image
        self.geo = FaceGeometry(np.asarray(landmarks, np.float64))
        self.h, self.w = image.shape[:2]
        s = self.geo.scale
        self.sigma = 0.35 * s
        open_disp = {i: np.array([0.0, 0.30 * s]) for i in LOWER_LIP}
        open_disp.update({i: np.array([0.0, 0.20 * s]) for i in JAW_LOW})
        open_disp.update({i: np.array([0.0, -0.04 * s]) for i in UPPER_LIP})
        self.open_field = self._bases(open_disp)
        self.emotion_fields = {b: self._bases(_expression_offsets(self.geo, b)) for b in BASIC}
        self._grid = np.dstack(np.meshgrid(np.arange(self.w, dtype=np.float32), np.arange(self.h, dtype=np.float32)))

    def _bases(self, offsets: dict[int, np.ndarray]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        idx = sorted(offsets)
        pts = self.geo.lm[idx]
        disp = np.stack([offsets[i] for i in idx]) if idx else np.zeros((0, 2))
        # anchor the rest of the face so the field stays local
        anchors = [i for i in range(68) if i not in offsets]
        pts = np.concatenate([pts, self.geo.lm[anchors]])
        disp = np.concatenate([disp, np.zeros((len(anchors), 2))])
        return _field((self.h, self.w), pts, disp, self.sigma), offsets

    def frame(self, mouth_open: float, emotion_weights: np.ndarray, intensity: float, head: tuple[float, float, float]) -> np.ndarray:
        """Render one frame. ``head`` = (dx, dy, degrees)."""
        field = self.open_field[0] * mouth_open
        lm = self.geo.lm.copy()
        for i, d in self.open_field[1].items():
            lm[i] += d * mouth_open
        for b, wgt in zip(BASIC, emotion_weights):
            if wgt > 0:
                f, offs = self.emotion_fields[b]
                field = field + f * (wgt * intensity)
                for i, d in offs.items():
                    lm[i] += d * wgt * intensity
        mapping = np.ascontiguousarray((self._grid - field).astype(np.float32))
        img = cv2.remap(self.image, np.ascontiguousarray(mapping[..., 0]), np.ascontiguousarray(mapping[..., 1]), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if mouth_open > 0.05:
            poly = lm[INNER_MOUTH].round().astype(np.int32)
            mask = np.zeros((self.h, self.w), np.uint8)
            cv2.fillPoly(mask, [poly], 255)
            mask = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0
            dark = np.array([60, 20, 25], np.float32)
            alpha = mask * min(0.85, 0.25 + 0.6 * mouth_open)
            img = (img.astype(np.float32) * (1 - alpha) + dark * alpha).astype(np.uint8)
        dx, dy, deg = head
        m = cv2.getRotationMatrix2D((self.w / 2, self.h / 2), deg, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(img, m, (self.w, self.h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
