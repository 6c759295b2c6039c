"""FVD (Fréchet Video Distance), two named variants, fed from the single decode pass.

``styleganv`` (default; StyleGAN-V ``fvd2048_16f``, anchors.md section 3.1):
  detector = the I3D TorchScript of StyleGAN-V (``i3d_styleganv`` in the weights registry) called as
  ``detector(x, rescale=False, resize=False, return_features=True)`` -> 400-d; we do the preprocessing
  ourselves as fvd-comparison does: uint8 frames -> float -> bilinear resize to 224x224 (aspect not
  kept; torch ``interpolate``, ``align_corners=False``, no antialias) -> ``2x/255 - 1``; covariance
  biased (÷N), distance ``|mu1-mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` with scipy ``sqrtm`` (real part).
``videogpt`` (VideoGPT / TATS / cd-fvd): the PyTorch ``InceptionI3d`` (:mod:`metrics.i3d`) with
  ``i3d_pretrained_400.pt`` (``i3d_tats``), the same preprocessing, logits averaged over time;
  covariance unbiased (÷N-1); trace of the square root by TF-GAN's SVD route, as TATS computes it.

Clips: 16 consecutive frames; by default every non-overlapping 16-frame window from frame 0 of each
video (``fvd_clips = "all"``), or only the first (``"first"``, StyleGAN-V's one clip per video, at
offset 0 because talking-head outputs are aligned with the GT by the audio). Real = GT, generated =
pred, pooled over clips of all videos. A video shorter than 16 frames is ``too_short``, never 0.
The variant, clip rule and N are part of the output's protocol.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.weights import WeightsOptions, load_state_dict
from moee_bench.metrics.base import ClipContext, Features, FrameChunk
from moee_bench.metrics.frechet import MomentsMetric, PairedMoments, frechet_sym_sqrt
from moee_bench.metrics.precision import autocast, of_options

DIM = 400
CLIP_LEN = 16
SIZE = 224
VARIANTS = ("styleganv", "videogpt")


def build_detector(variant: str, weights: WeightsOptions, device: str = "cpu"):
    """(callable (B, 3, T, 224, 224) in [-1, 1] -> (B, 400), resolved weights) for a variant."""
    import torch

    if variant == "styleganv":
        resolved = weights.resolve("i3d_styleganv")
        try:
            module = torch.jit.load(str(resolved.path), map_location=device).eval()
        except Exception as e:
            from moee_bench.bench.core.errors import WeightsError

            raise WeightsError(f"I3D TorchScript {resolved.path} cannot be loaded: {type(e).__name__}: {e}") from None

        def run(x):
            return module(x, rescale=False, resize=False, return_features=True)
        return run, resolved
    if variant == "videogpt":
        from moee_bench.metrics.i3d import InceptionI3d

        resolved = weights.resolve("i3d_tats")
        net = InceptionI3d()
        net.load_state_dict(load_state_dict(resolved))
        net = net.eval().to(device)
        return net, resolved
    raise ValueError(f"unknown FVD variant {variant!r}; known: {VARIANTS}")


def preprocess(frames: np.ndarray, device: str = "cpu"):
    """(T, H, W, 3) uint8 -> (3, T, 224, 224) float32 in [-1, 1] (bilinear, align_corners=False)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (2.0 * x / 255.0 - 1.0).permute(1, 0, 2, 3).contiguous()


def frechet_styleganv(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """StyleGAN-V's distance: ``np.real(|mu1-mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 @ S2)))``."""
    import scipy.linalg

    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * covmean)))


def frechet_tfgan(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, eps: float = 1e-10) -> float:
    """TF-GAN / TATS distance: ``tr(sqrt(sqrt(S1) S2 sqrt(S1)))`` through SVD square roots (float64 here)."""
    def sym_sqrt(m: np.ndarray) -> np.ndarray:
        u, s, vt = np.linalg.svd(m)
        si = np.where(s < eps, s, np.sqrt(s))
        return (u * si) @ vt

    return frechet_sym_sqrt(mu1, s1, mu2, s2, sym_sqrt)


class _Extractor:
    def __init__(self, m: "FVD", clip_id: str) -> None:
        self.m, self.clip_id = m, clip_id
        self.buf: dict[str, list[np.ndarray]] = {"pred": [], "gt": []}
        self.feats: dict[str, list[np.ndarray]] = {"pred": [], "gt": []}
        self.n = 0

    def add(self, chunk: FrameChunk) -> None:
        if self.m.clips == "first" and self.n >= CLIP_LEN:
            return
        self.n += len(chunk.pred)
        for side, frames in (("pred", chunk.pred), ("gt", chunk.gt)):
            self.buf[side].extend(frames)
            while len(self.buf[side]) >= CLIP_LEN:
                clip = np.stack(self.buf[side][:CLIP_LEN])
                del self.buf[side][:CLIP_LEN]
                if self.m.clips == "first" and self.feats[side]:
                    continue
                self.feats[side].append(self.m.embed(clip))

    def finish(self) -> Features:
        if not self.feats["pred"] or not self.feats["gt"]:
            raise ClipError(self.clip_id, f"{self.n} frames: FVD needs at least {CLIP_LEN} frames per video",
                            status="too_short")
        k = min(len(self.feats["pred"]), len(self.feats["gt"]))
        return {"pred": np.stack(self.feats["pred"][:k]).astype(np.float32),
                "gt": np.stack(self.feats["gt"][:k]).astype(np.float32)}


class FVD(MomentsMetric):
    name = "fvd"
    keys = ("fvd",)
    higher_is_better = {"fvd": False}
    needs_gt = True
    dim = DIM

    def __init__(self, options: Any) -> None:
        self.variant = str(options.param("fvd_variant", "styleganv"))
        self.clips = str(options.param("fvd_clips", "all"))
        if self.variant not in VARIANTS:
            raise ValueError(f"fvd_variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.clips not in ("all", "first"):
            raise ValueError(f"fvd_clips must be 'all' or 'first', got {self.clips!r}")
        self.device = options.device
        self.precision = of_options(options)
        self.detector, self.weights = build_detector(self.variant, options.weights, self.device)
        super().__init__()

    def embed(self, clip: np.ndarray) -> np.ndarray:
        """(16, H, W, 3) uint8 -> (400,) float64 features."""
        import torch

        x = preprocess(clip, self.device)[None]
        with torch.no_grad(), autocast(self.precision, self.device):
            out = self.detector(x)
        return np.asarray(out.reshape(-1).double().cpu().numpy())

    def config(self) -> dict[str, Any]:
        det = ("StyleGAN-V I3D TorchScript, rescale=False resize=False return_features=True" if self.variant == "styleganv"
               else "InceptionI3d (VideoGPT/TATS port) Kinetics-400 logits, mean over time")
        return {"variant": self.variant, "detector": det, "weights_sha256": self.weights.sha256,
                "verified": self.weights.verified, "clip_frames": CLIP_LEN,
                "clips": "non-overlapping 16-frame windows from frame 0" if self.clips == "all" else "first 16 frames",
                "resize": "bilinear 224x224 (torch, align_corners=False, aspect not kept)", "range": "2x/255-1",
                "covariance": "biased (N)" if self.variant == "styleganv" else "unbiased (N-1)",
                "distance": "scipy sqrtm (StyleGAN-V)" if self.variant == "styleganv" else "TF-GAN SVD trace sqrt (TATS)",
                "precision": self.precision}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self, ctx.clip_id)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        if len(feats["pred"]) == 0:
            raise ClipError(ctx.clip_id if ctx else None, "no 16-frame clip", status="too_short")
        self.moments.add(feats["pred"], feats["gt"])
        return {"fvd_clips": int(len(feats["pred"]))}

    def compute(self) -> dict[str, Any]:
        real, fake = self.moments.real, self.moments.fake
        n_r, n_f = real.n, fake.n
        out: dict[str, Any] = {"fvd_variant": self.variant, "fvd_n_real": n_r, "fvd_n_fake": n_f}
        if min(n_r, n_f) < 2:
            return {**out, "fvd": None, "fvd_reason": f"FVD needs at least 2 clips of {CLIP_LEN} frames per side "
                                                      f"(got {n_r} real, {n_f} generated)"}
        if min(n_r, n_f) <= DIM:
            msg = (f"FVD over {min(n_r, n_f)} clips <= {DIM} feature dims: the covariance is rank-deficient; the value "
                   "is not comparable with published FVD (StyleGAN-V uses 2048 clips)")
            warnings.warn(msg, stacklevel=2)
            out["fvd_warning"] = msg
        unbiased = self.variant == "videogpt"
        mu1, s1 = fake.mean_cov(unbiased=unbiased)
        mu2, s2 = real.mean_cov(unbiased=unbiased)
        dist = frechet_styleganv if self.variant == "styleganv" else frechet_tfgan
        out["fvd"] = dist(mu1, s1, mu2, s2)
        return out


def fvd_from_features(clip_feats: list[Features], variant: str = "styleganv") -> float | None:
    """FVD over pooled per-clip I3D features (``pred`` / ``gt``), as :class:`FVD` computes it for ``variant``.

    Used to recompute FVD on bootstrap resamples of clips from cached features, without the network."""
    m = PairedMoments.pooled(clip_feats, DIM)
    real, fake = m.real, m.fake
    if min(real.n, fake.n) < 2:
        return None
    unbiased = variant == "videogpt"
    dist = frechet_styleganv if variant == "styleganv" else frechet_tfgan
    return dist(*fake.mean_cov(unbiased=unbiased), *real.mean_cov(unbiased=unbiased))
