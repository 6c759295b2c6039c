"""FLMD, the Fréchet Landmark-Motion Distance: FVMD's motion features on face landmarks (not FVMD).

FVMD (Liu et al. 2024, ljh0v0/FMD-frechet-motion-distance) tracks a 20x20 grid of points with PIPs++
over 16-frame clips, turns their velocity and acceleration into orientation histograms weighted by a
quantised log magnitude, and takes the Fréchet distance between the histogram vectors of generated and
real clips. FLMD keeps FVMD's histogram recipe and distance but replaces the point tracker by the
68 dlib face landmarks of :mod:`moee_bench.metrics.motion.landmarks` and FVMD's 5x5 spatial cells by five facial regions
(jaw, brows, nose, eyes, mouth). Its values are not comparable with FVMD's.

Per clip and side, every non-overlapping 16-frame window from frame 0 whose 16 frames all have a face
(windows with a missing face are skipped and counted):

1. landmarks scaled so that the clip's median outer-eye-corner distance is 64 px (FVMD's magnitudes are
   in pixels of whatever resolution the video has; a fixed face scale makes FLMD resolution-independent);
2. velocity ``v_t = p_t - p_{t-1}`` with ``v_0 = 0``, acceleration ``a_t = v_t - v_{t-1}`` with
   ``a_0 = a_1 = 0`` (FVMD's ``calc_velocity`` / ``calc_acceleration``);
3. for each of 4 temporal cubes of 4 frames and each region, an 8-bin histogram of
   ``atan2(dx, dy)`` (FVMD's argument order) weighted by ``ceil(log2(min(|v|, 255) + 1)) / 8``
   (FVMD's ``count_subcube_hist``);
4. the window's feature = velocity histograms (4 x 5 x 8) then acceleration histograms: 320 values.

FLMD = pytorch-fid's Fréchet distance between the generated and GT windows' features (unbiased
covariance, FVMD's ``calculate_activation_statistics``), pooled over clips; mergeable float64 moments.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.core.base import ClipContext, Features, FrameChunk, State
from moee_bench.metrics.core.frechet import Moments, MomentsMetric, PairedMoments, frechet_distance
from moee_bench.metrics.motion.landmarks import DLIB68, build_backend

WINDOW = 16
CUBE = 4
ANGLE_BINS = 8
MAG_BINS = 256
FACE_SCALE = 64.0
REGIONS = tuple(DLIB68.regions) if DLIB68.regions else ()
DIM = 2 * (WINDOW // CUBE) * len(REGIONS) * ANGLE_BINS


def motion_histograms(vectors: np.ndarray, regions: dict[str, tuple[int, ...]]) -> np.ndarray:
    """``(T, K, 2)`` motion vectors -> ``(T // 4, n_regions, 8)`` FVMD histograms (orientation bins weighted by
    the quantised log magnitude), summed over the frames of each 4-frame cube and the points of each region."""
    v = np.asarray(vectors, np.float64)
    t = (len(v) // CUBE) * CUBE
    v = v[:t]
    angle = np.arctan2(v[..., 0], v[..., 1])
    bins = np.clip((angle + np.pi) // (2 * np.pi / ANGLE_BINS), 0, ANGLE_BINS - 1).astype(int)
    mag = np.clip(np.linalg.norm(v, axis=-1), 0, MAG_BINS - 1)
    w = np.ceil(np.clip(np.log2(mag + 1), 0, int(np.log2(MAG_BINS)))) / np.log2(MAG_BINS)
    out = np.zeros((t // CUBE, len(regions), ANGLE_BINS))
    for r, idx in enumerate(regions.values()):
        b = bins[:, list(idx)].reshape(t // CUBE, -1)
        ww = w[:, list(idx)].reshape(t // CUBE, -1)
        for c in range(t // CUBE):
            out[c, r] = np.bincount(b[c], weights=ww[c], minlength=ANGLE_BINS)
    return out


def window_features(points: np.ndarray, regions: dict[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """One 16-frame window of ``(16, K, 2)`` (scaled) landmarks -> its ``(320,)`` FLMD feature."""
    regions = regions or DLIB68.regions or {}
    p = np.asarray(points, np.float64)
    vel = np.concatenate([np.zeros_like(p[:1]), np.diff(p, axis=0)])
    acc = np.concatenate([np.zeros_like(p[:2]), np.diff(vel[1:], axis=0)])
    return np.concatenate([motion_histograms(vel, regions).reshape(-1), motion_histograms(acc, regions).reshape(-1)])


def clip_windows(points: np.ndarray, scheme=DLIB68) -> tuple[np.ndarray, int]:
    """``(n_windows, 320)`` features of a clip's complete-face 16-frame windows, and the number of windows skipped."""
    p = np.asarray(points, np.float64)
    ok = np.isfinite(p).all(axis=(1, 2))
    n_win = len(p) // WINDOW
    if not ok.any() or n_win == 0:
        return np.zeros((0, DIM)), n_win
    a, b = scheme.eye_outer
    scale = FACE_SCALE / np.median(np.linalg.norm(p[ok, a] - p[ok, b], axis=1))
    feats, skipped = [], 0
    for w in range(n_win):
        sl = slice(w * WINDOW, (w + 1) * WINDOW)
        if not ok[sl].all():
            skipped += 1
            continue
        feats.append(window_features(p[sl] * scale, scheme.regions))
    return (np.stack(feats) if feats else np.zeros((0, DIM))), skipped


class _Extractor:
    def __init__(self, m: "FLMD", clip_id: str) -> None:
        self.clip_id = clip_id
        self.pred, self.gt = m.backend.tracker(), m.backend.tracker()

    def add(self, chunk: FrameChunk) -> None:
        self.pred.add(chunk.pred)
        self.gt.add(chunk.gt)

    def finish(self) -> Features:
        fp, sp = clip_windows(self.pred.result()[0])
        fg, sg = clip_windows(self.gt.result()[0])
        k = min(len(fp), len(fg))
        if k == 0:
            raise ClipError(self.clip_id, f"no {WINDOW}-frame window with a face in every frame on both sides "
                                          f"({sp} generated and {sg} GT windows lacked a face)", status="no_face")
        return {"pred": fp.astype(np.float32), "gt": fg.astype(np.float32),
                "skipped": np.array([sp, sg], np.int64)}


class FLMD(MomentsMetric):
    """Fréchet distance between landmark-motion histograms of generated and GT 16-frame windows."""

    name = "flmd"
    reference = "FVMD's motion histograms (ljh0v0/FMD-frechet-motion-distance) on dlib landmarks; not FVMD"
    keys = ("flmd",)
    higher_is_better = {"flmd": False}
    needs_gt = True
    states = {"moments": State(lambda: PairedMoments(DIM)), "skipped": State(int)}
    unit = "windows"
    rank_note = "the value is biased upward"

    def __init__(self, options: Any = None) -> None:
        self.backend = build_backend("dlib", getattr(options, "device", "cpu"))
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {"recipe": "FVMD histograms (Liu et al. 2024) on dlib face landmarks; not FVMD", **self.backend.describe(),
                "window": WINDOW, "cube_frames": CUBE, "regions": {k: [v[0], v[-1]] for k, v in (DLIB68.regions or {}).items()},
                "angle_bins": ANGLE_BINS, "magnitude": "ceil(log2(min(|v|,255)+1))/8", "face_scale_px": FACE_SCALE,
                "windows": "non-overlapping 16-frame windows from frame 0 with a face in every frame",
                "covariance": "unbiased (N-1)", "distance": "pytorch-fid Frechet distance"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self, ctx.clip_id)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        k = min(len(feats["pred"]), len(feats["gt"]))
        self.moments.add(feats["pred"], feats["gt"])
        skipped = int(np.asarray(feats["skipped"]).sum())
        self.skipped += skipped
        return {"flmd_windows": k, "flmd_windows_skipped": skipped}

    @classmethod
    def distance(cls, fake: Moments, real: Moments, settings: Mapping[str, Any], resample: bool) -> float:
        """pytorch-fid's Fréchet distance on unbiased covariances."""
        return frechet_distance(*fake.mean_cov(True), *real.mean_cov(True))

    def compute(self) -> dict[str, Any]:
        return {**super().compute(), "flmd_windows_skipped": self.skipped}


def flmd_from_features(clip_feats: list[Features]) -> float | None:
    """:meth:`FLMD.from_features`'s value over pooled per-clip window features."""
    return FLMD.from_features(clip_feats, {})["flmd"]
