"""Animate a still portrait: a neutral base, mouth opening from a speech envelope, an emotion expression,
small head motion.

Our own code (no library animates a face from landmarks without a trained model). Three steps:

1. **Neutral base** (once per portrait): a portrait that smiles with parted lips (the astronaut) is brought
   to a closed, level mouth: the teeth are inpainted (OpenCV Telea), the inner lips meet on one level line,
   the corners move inwards, the smile folds are blurred away.
2. **Geometry**: an expression is a set of action-unit-like controls (:data:`CONTROLS`, after the FACS
   action units they imitate) that move the 68 landmarks; a thin-plate spline through every landmark (the
   ones that do not move are pinned) and the pinned image border (scipy's ``RBFInterpolator``) turns the
   landmark offsets into a dense displacement field, applied with ``cv2.remap``. The spline is linear in
   the offsets, so it is fitted once per portrait as a matrix (grid x control points). A Gaussian-weighted
   blend of the control points, the earlier warp, diluted the offsets towards zero.
3. **Appearance cues** that a 64x64 grey expression classifier needs and a warp cannot make: a dark open
   mouth with an upper-teeth band, glabella furrows, forehead lines, nasolabial folds, nose wrinkles,
   marionette lines, shaded lowered brows: blurred strokes on the warped frame.

The six expressions (:data:`EXPRESSIONS`) follow the FACS prototypes; their strengths were calibrated
against the embedded FER2013 classifier (what it reads per portrait: :mod:`moee_bench.bench.suite.sample`). It is a
deterministic puppet, not a generative model: the sample tests the tooling, not any method.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from moee_bench.bench.core.emotions import BASIC
# imported inside the functions that use them (seconds to import, or optional): scipy

# iBUG 68-point groups
JAW_LOW = list(range(5, 12))
BROWS = list(range(17, 27))
UPPER_LIDS = [37, 38, 43, 44]
LOWER_LIDS = [40, 41, 46, 47]
UPPER_LIP_IN = [61, 62, 63]
LOWER_LIP_IN = [65, 66, 67]
INNER_MOUTH = list(range(60, 68))
CHEEKS = [1, 2, 3, 13, 14, 15]

# control -> (landmark, share) pairs and the axis it moves: "y" (down is positive, in eye-to-mouth
# distances), "out" (away from the midline, in inter-ocular distances) or "in" (towards it)
CONTROLS: dict[str, tuple[str, tuple[tuple[tuple[int, ...], float], ...]]] = {
    "brow_inner_y": ("y", (((21, 22), 1.0), ((20, 23), 0.6), ((19, 24), 0.25))),        # AU1 (< 0) / AU4 (> 0)
    "brow_outer_y": ("y", (((17, 26), 1.0), ((18, 25), 0.8), ((19, 24), 0.4))),         # AU2 (< 0)
    "brow_in_x": ("in", (((21, 22), 1.0), ((20, 23), 0.7), ((19, 24), 0.4))),           # AU4 (> 0)
    "upper_lid_y": ("y", ((tuple(UPPER_LIDS), 1.0),)),                                  # AU5 (< 0) / AU7, droop (> 0)
    "lower_lid_y": ("y", ((tuple(LOWER_LIDS), 1.0),)),                                  # AU6/AU7 (< 0)
    "cheek_y": ("y", ((tuple(CHEEKS), 1.0),)),                                          # AU6 (< 0)
    "nose_y": ("y", (((31, 32, 33, 34, 35), 1.0), ((29, 30), 0.5))),                    # AU9 (< 0)
    "corner_x": ("out", (((48, 54, 60, 64), 1.0), ((49, 53, 59, 55), 0.5), ((61, 63, 65, 67), 0.3))),  # AU12/20 (> 0)
    "corner_y": ("y", (((48, 54, 60, 64), 1.0), ((49, 53, 59, 55), 0.5), ((61, 63, 65, 67), 0.3))),    # AU12 (< 0) / AU15 (> 0)
    "upper_lip_y": ("y", (((50, 51, 52, 61, 62, 63), 1.0), ((49, 53), 0.5))),            # AU10 (< 0)
    "lower_lip_y": ("y", (((56, 57, 58, 65, 66, 67), 1.0), ((55, 59), 0.5))),            # AU16 (> 0) / AU17 (< 0)
    "open": ("y", (((55, 56, 57, 58, 59, 65, 66, 67), 0.22), (tuple(JAW_LOW), 0.15),
                   ((49, 50, 51, 52, 53, 61, 62, 63), -0.03))),                         # AU25/26, per unit of opening
}
CUES = ("teeth", "furrow", "forehead", "nasolabial", "nose_wrinkle", "marionette", "brow_dark")

# FACS prototypes (EMFACS): happiness AU6+12+25, sadness AU1+4+15(+17), anger AU4+5+7+10+23/25,
# disgust AU9+10+16+25, fear AU1+2+4+5+20+25/26, surprise AU1+2+5+26. Values at full intensity:
# geometry in face units, ``jaw`` in units of mouth opening, ``speech`` the gain on the speech opening,
# cues in [0, 1]. Calibrated against the embedded FER2013 classifier through the emotion metric's own
# detector, crop and frame averaging, so that it reads each emotion on the frontal sample portraits at
# intensity levels 2-3 (see the module docstring and tests/test_sample_emotions.py). Disgust is not reached:
# FER2013's disgust class (trained on 547 of 35887 images) stays below 0.06 on every disgust clip, which reads as
# anger, the class FER2013 most confuses it with (lfw12's anger expression at 0.8 or more reads disgust, 0.48).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "happiness": {"corner_x": 0.17, "corner_y": -0.19, "cheek_y": -0.07, "lower_lid_y": -0.06,
                  "jaw": 0.3, "speech": 0.7, "teeth": 1.0, "nasolabial": 1.0},
    "sadness": {"brow_inner_y": -0.28, "brow_outer_y": 0.085, "brow_in_x": -0.03, "upper_lid_y": 0.055,
                "corner_y": 0.14, "corner_x": -0.04, "speech": 0.2, "forehead": 0.5},
    "anger": {"brow_inner_y": 0.26, "brow_outer_y": 0.10, "brow_in_x": 0.14, "upper_lid_y": 0.06, "lower_lid_y": -0.08,
              "upper_lip_y": -0.10, "corner_y": 0.06, "corner_x": 0.04, "jaw": 0.3, "speech": 0.4, "teeth": 1.0,
              "furrow": 1.0, "brow_dark": 1.0, "marionette": 0.8, "nasolabial": 1.0, "nose_wrinkle": 0.5},
    "disgust": {"upper_lip_y": -0.12, "nose_y": -0.05, "brow_inner_y": 0.10, "brow_outer_y": 0.08, "brow_in_x": 0.05,
                "lower_lid_y": -0.05, "corner_y": 0.06, "jaw": 0.1, "speech": 0.5, "teeth": 0.7, "nasolabial": 1.0,
                "nose_wrinkle": 1.0, "furrow": 0.6},
    "fear": {"brow_inner_y": -0.30, "brow_outer_y": -0.15, "brow_in_x": 0.10, "upper_lid_y": -0.15, "lower_lid_y": 0.037,
             "corner_x": 0.275, "corner_y": 0.10, "jaw": 1.75, "speech": 0.3, "forehead": 0.8, "furrow": 0.8},
    "surprise": {"brow_inner_y": -0.30, "brow_outer_y": -0.30, "upper_lid_y": -0.12, "lower_lid_y": 0.04, "corner_x": -0.05,
                 "corner_y": 0.10, "jaw": 1.8, "speech": 0.2, "forehead": 1.0},
}

# what undoes a smile beyond the mouth (a smiling portrait only): cheeks down (AU6 released), corners a little
# down, upper lids a little lower; without it the astronaut's neutral base still reads "happy" (0.45)
RELAX: dict[str, float] = {"cheek_y": 0.10, "corner_y": 0.05, "upper_lid_y": 0.02}


@dataclass(frozen=True)
class FaceGeometry:
    """Landmarks of a portrait and its two scales: inter-ocular distance (x) and eye-to-mouth distance (y)."""

    lm: np.ndarray        # (68, 2)

    @property
    def scale(self) -> float:
        return float(np.linalg.norm(self.lm[36:42].mean(0) - self.lm[42:48].mean(0)))

    @property
    def scale_y(self) -> float:
        # a turned head foreshortens the inter-ocular distance, not the eye-to-mouth distance
        return float(max(self.scale, abs(self.lm[48:68, 1].mean() - self.lm[36:48, 1].mean())))

    @property
    def centre_x(self) -> float:
        return float(self.lm[27:31, 0].mean())

    def offsets(self, controls: dict[str, float]) -> np.ndarray:
        """(68, 2) landmark displacements in pixels for control values in face units (:data:`CONTROLS`)."""
        side = np.sign(self.lm[:, 0] - self.centre_x)
        side[side == 0] = 1.0
        out = np.zeros((68, 2))
        for name, value in controls.items():
            if name not in CONTROLS or value == 0:
                continue
            axis, groups = CONTROLS[name]
            for idx, share in groups:
                idx = list(idx)
                if axis == "y":
                    out[idx, 1] += value * share * self.scale_y
                else:
                    out[idx, 0] += value * share * self.scale * side[idx] * (1.0 if axis == "out" else -1.0)
        return out


class _Spline:
    """Thin-plate spline from the 68 landmarks and the pinned image border to a dense field, as a linear map
    (scipy ``RBFInterpolator`` fitted to unit offsets), evaluated on a ``step``-pixel grid and upsampled."""

    def __init__(self, shape: tuple[int, int], points: np.ndarray, step: int = 4) -> None:
        from scipy.interpolate import RBFInterpolator

        h, w = shape
        self.h, self.w, self.n = h, w, len(points)
        border = np.array([(x, y) for x in np.linspace(0, w - 1, 9) for y in (0, h - 1)]
                          + [(x, y) for y in np.linspace(0, h - 1, 9)[1:-1] for x in (0, w - 1)], np.float64)
        pts = np.concatenate([points, border])
        self.gh, self.gw = (h + step - 1) // step + 1, (w + step - 1) // step + 1
        self.step = step
        yy, xx = np.mgrid[0:self.gh, 0:self.gw] * step
        grid = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        # smoothing 1.0: coincident landmarks (closed lips) with different offsets make an exact spline explode
        unit = np.eye(len(pts))[:, : self.n]
        self.matrix = RBFInterpolator(pts, unit, kernel="thin_plate_spline", smoothing=1.0)(grid).astype(np.float32)

    def field(self, disp: np.ndarray) -> np.ndarray:
        """(H, W, 2) displacement through ``disp`` ((n, 2) pixels at the control points) and zero at the border."""
        f = (self.matrix @ disp.astype(np.float32)).reshape(self.gh, self.gw, 2)
        size = ((self.gw - 1) * self.step + 1, (self.gh - 1) * self.step + 1)
        return np.ascontiguousarray(cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)[: self.h, : self.w])


def _remap(img: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """``out(x) = img(x - disp(x))``, reflected at the border."""
    h, w = img.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, np.ascontiguousarray(gx - disp[..., 0]), np.ascontiguousarray(gy - disp[..., 1]),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class _Canvas:
    """Blurred strokes that darken a frame; our own drawing helpers."""

    def __init__(self, h: int, w: int, s: float) -> None:
        self.ink = np.zeros((h, w), np.float32)
        self.s = s

    def line(self, pts, amount: float, width: float = 0.05) -> None:
        if amount <= 0:
            return
        layer = np.zeros_like(self.ink)
        cv2.polylines(layer, [np.asarray(pts).round().astype(np.int32)], False, 1.0,
                      max(1, int(round(width * self.s))), cv2.LINE_AA)
        self.ink = np.maximum(self.ink, layer * min(1.0, amount))

    def apply(self, img: np.ndarray, depth: float = 0.6) -> np.ndarray:
        if not self.ink.any():
            return img
        k = cv2.GaussianBlur(self.ink, (0, 0), max(0.8, 0.03 * self.s))
        return (img.astype(np.float32) * (1.0 - depth * np.clip(k, 0, 1))[..., None]).astype(np.uint8)


def _curve(a, b, c, n: int = 12) -> np.ndarray:
    """Quadratic Bezier from ``a`` to ``c`` with control point ``b``."""
    t = np.linspace(0, 1, n)[:, None]
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t ** 2 * c


def _neutralise(image: np.ndarray, geo: FaceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """A portrait with a closed, level mouth: teeth inpainted, inner lips on one level line, corners inwards
    to at most 0.92 inter-ocular distances, smile folds blurred. Returns (image, landmarks)."""
    lm = geo.lm
    s = geo.scale
    gap = float(np.mean(lm[LOWER_LIP_IN, 1] - lm[UPPER_LIP_IN[::-1], 1]))
    mid_y = float((lm[62, 1] + lm[66, 1]) / 2)
    lift = mid_y - float((lm[48, 1] + lm[54, 1]) / 2)            # > 0: corners above the lip line (a smile)
    width = float(np.linalg.norm(lm[54] - lm[48]))
    if gap < 0.04 * s and lift < 0.05 * s:
        return image, lm
    img = image
    if gap >= 0.04 * s:
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [lm[INNER_MOUTH].round().astype(np.int32)], 255)
        img = cv2.inpaint(image, cv2.dilate(mask, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_TELEA)
    shrink = max(0.0, width - 0.92 * s) / 2
    offs = np.zeros((68, 2))
    for i in INNER_MOUTH + [48, 54]:
        sx = float(np.sign(lm[i, 0] - geo.centre_x)) or 1.0
        dx = -sx * shrink if i in (48, 54, 60, 64) else -sx * shrink * 0.4 * (i not in (62, 66))
        offs[i] = (dx, mid_y + (0.01 * s if i in (48, 54, 60, 64) else 0.0) - lm[i, 1])
    follow = {49: (48, 61), 50: (61,), 51: (62,), 52: (63,), 53: (54, 63),
              59: (48, 67), 58: (67,), 57: (66,), 56: (65,), 55: (54, 65)}
    for i, src in follow.items():
        offs[i] = offs[list(src)].mean(0)
    if lift >= 0.05 * s:
        offs += geo.offsets(RELAX)
    # control points at the displaced positions: remap(grid - field) lands each landmark exactly
    out = _remap(img, _Spline(img.shape[:2], lm + offs).field(offs))
    new = lm + offs
    if lift >= 0.05 * s:
        out = _smooth_folds(out, new, geo)
    cv = _Canvas(out.shape[0], out.shape[1], s)
    cv.line(new[[60, 61, 62, 63, 64]], 1.0, 0.04)          # the line where the closed lips meet
    return cv.apply(out), new


def _smooth_folds(img: np.ndarray, lm: np.ndarray, geo: FaceGeometry) -> np.ndarray:
    """Blur the smile's nasolabial folds away (a feathered band from the nose wings to below the mouth corners)."""
    s, sy = geo.scale, geo.scale_y
    mask = np.zeros(img.shape[:2], np.float32)
    for wing, corner, sx in ((31, 48, -1), (35, 54, 1)):
        a, c = lm[wing] + [sx * 0.05 * s, 0.0], lm[corner] + [sx * 0.05 * s, 0.10 * sy]
        pts = np.array([a + [-0.12 * s * sx, 0], a + [0.22 * s * sx, 0], c + [0.25 * s * sx, 0], c + [-0.02 * s * sx, 0]])
        cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.08 * s)[..., None]
    blurred = cv2.GaussianBlur(img, (0, 0), 0.12 * s).astype(np.float32)
    return (img.astype(np.float32) * (1 - mask) + blurred * mask).astype(np.uint8)


def _draw_cues(img: np.ndarray, lm: np.ndarray, geo: FaceGeometry, cue: dict[str, float]) -> np.ndarray:
    """Wrinkles and shading of the expression, drawn on landmarks ``lm`` already moved."""
    s, sy = geo.scale, geo.scale_y
    cv_ = _Canvas(img.shape[0], img.shape[1], s)
    cx = float(lm[27:31, 0].mean())
    if cue.get("furrow", 0) > 0:        # glabella: two short vertical lines between the inner brows (AU4)
        top = min(lm[21, 1], lm[22, 1]) - 0.06 * sy
        for f in (0.35, 0.65):
            x = lm[21, 0] + f * (lm[22, 0] - lm[21, 0])
            cv_.line([(x, top), (x, top + 0.14 * sy)], cue["furrow"], 0.04)
    if cue.get("brow_dark", 0) > 0:     # lowered brows shade the eyes
        for grp in (BROWS[:5], BROWS[5:]):
            cv_.line(lm[grp] + [0, 0.04 * sy], cue["brow_dark"], 0.08)
    if cue.get("forehead", 0) > 0:      # horizontal forehead lines (AU1+2)
        for k, up in enumerate((0.16, 0.28)):
            y = float(lm[BROWS, 1].min()) - up * sy
            a, c = (lm[19, 0], y + 0.03 * sy), (lm[24, 0], y + 0.03 * sy)
            cv_.line(_curve(a, (cx, y - 0.03 * sy), c), cue["forehead"] * (1.0 - 0.3 * k), 0.035)
    if cue.get("nasolabial", 0) > 0:    # nose wing to beyond the mouth corner (AU6/AU10)
        for wing, corner, sx in ((31, 48, -1), (35, 54, 1)):
            a = lm[wing] + [sx * 0.08 * s, -0.02 * sy]
            c = lm[corner] + [sx * 0.08 * s, 0.10 * sy]
            b = (a + c) / 2 + [sx * 0.08 * s, 0.0]
            cv_.line(_curve(a, b, c), cue["nasolabial"], 0.04)
    if cue.get("nose_wrinkle", 0) > 0:  # short creases across the nose bridge (AU9)
        for k in range(3):
            y = lm[28, 1] + (k - 1) * 0.06 * sy
            cv_.line([(cx - 0.10 * s, y + 0.02 * sy), (cx, y), (cx + 0.10 * s, y + 0.02 * sy)], cue["nose_wrinkle"], 0.03)
    if cue.get("marionette", 0) > 0:    # from the mouth corners down and out (AU15)
        for corner, sx in ((48, -1), (54, 1)):
            a = lm[corner] + [sx * 0.02 * s, 0.02 * sy]
            cv_.line([a, a + [sx * 0.05 * s, 0.16 * sy]], cue["marionette"], 0.04)
    return cv_.apply(img)


def _draw_mouth(img: np.ndarray, lm: np.ndarray, geo: FaceGeometry, opening: float, teeth: float) -> np.ndarray:
    """Dark mouth interior in the inner-lip polygon, with an upper-teeth band when ``teeth`` > 0."""
    gap = float(np.mean(lm[LOWER_LIP_IN, 1] - lm[UPPER_LIP_IN[::-1], 1]))
    if gap < 0.02 * geo.scale_y:
        return img
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [lm[INNER_MOUTH].round().astype(np.int32)], 255)
    out = img.astype(np.float32)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * min(0.9, 0.3 + 0.7 * opening)
    out = out * (1 - alpha) + np.array([45, 15, 20], np.float32) * alpha
    if teeth > 0:
        band = lm[[60, 61, 62, 63, 64]]
        depth = min(gap * 0.5, 0.12 * geo.scale_y)
        tmask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(tmask, [np.concatenate([band, band[::-1] + [0, depth]]).round().astype(np.int32)], 255)
        beta = cv2.GaussianBlur(np.minimum(tmask, mask), (3, 3), 0).astype(np.float32)[..., None] / 255.0 * min(1.0, teeth)
        out = out * (1 - beta) + np.array([235, 230, 220], np.float32) * beta
    return out.astype(np.uint8)


def blend(emotion_weights: np.ndarray, intensity: float) -> dict[str, float]:
    """Control, cue, ``jaw`` and ``speech`` values of a mixture of :data:`BASIC` emotions at ``intensity``
    (geometry and cues of different controls add up, a control that two components move the same way takes the
    larger value; the speech gain is the weighted mean, 1 where no emotion is given)."""
    out: dict[str, float] = {}
    ws = [(b, float(wgt) * intensity) for b, wgt in zip(BASIC, emotion_weights) if wgt > 0]
    for b, wgt in ws:
        for k, v in EXPRESSIONS[b].items():
            if k == "speech":
                continue
            x = v * wgt
            if k in out and out[k] * x > 0:
                # an action unit both components use (fear and surprise share AU1+2+5+26) is not applied twice:
                # it takes the stronger of the two
                out[k] = x if abs(x) > abs(out[k]) else out[k]
            else:
                out[k] = out.get(k, 0.0) + x
    total = sum(wgt for _, wgt in ws)
    out["speech"] = 1.0 + sum(wgt * (EXPRESSIONS[b].get("speech", 1.0) - 1.0) for b, wgt in ws) / max(1.0, total)
    return out


class Puppet:
    """A neutral base of one portrait and its thin-plate spline."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, rest: dict[str, float] | None = None) -> None:
        """``rest``: control values (:data:`CONTROLS`) baked into the neutral base, for a portrait whose resting
        face carries an expression of its own (see :data:`moee_bench.bench.suite.sample.REST`)."""
        self.h, self.w = image.shape[:2]
        self.image, lm = _neutralise(image, FaceGeometry(np.asarray(landmarks, np.float64)))
        if rest:
            offs = FaceGeometry(lm).offsets(rest)
            self.image = _remap(self.image, _Spline(self.image.shape[:2], lm + offs).field(offs))
            lm = lm + offs
        self.geo = FaceGeometry(lm)
        self.spline = _Spline((self.h, self.w), lm)

    @property
    def neutral(self) -> np.ndarray:
        """The neutral still (closed mouth, no expression): the sample's reference image."""
        return self.image

    def render(self, controls: dict[str, float], mouth_open: float, head: tuple[float, float, float]) -> np.ndarray:
        """One frame from control values (:func:`blend`), a speech opening in [0, 1] and ``head`` = (dx, dy, degrees)."""
        opening = mouth_open * controls.get("speech", 1.0) + controls.get("jaw", 0.0)
        disp = self.geo.offsets({**controls, "open": opening})
        lm = self.geo.lm + disp
        img = _remap(self.image, self.spline.field(disp))
        img = _draw_mouth(img, lm, self.geo, opening, controls.get("teeth", 0.0))
        img = _draw_cues(img, lm, self.geo, {k: controls.get(k, 0.0) for k in CUES})
        dx, dy, deg = head
        m = cv2.getRotationMatrix2D((self.w / 2, self.h / 2), deg, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(img, m, (self.w, self.h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def frame(self, mouth_open: float, emotion_weights: np.ndarray, intensity: float, head: tuple[float, float, float]) -> np.ndarray:
        """Render one frame. ``mouth_open`` in [0, 1] (speech envelope), ``emotion_weights`` over
        :data:`BASIC`, ``intensity`` in [0, 1], ``head`` = (dx, dy, degrees)."""
        return self.render(blend(emotion_weights, intensity), mouth_open, head)
