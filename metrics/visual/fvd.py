"""FVD (Fréchet Video Distance), two named variants, fed from the single decode pass.

``styleganv`` (default; StyleGAN-V ``fvd2048_16f``, anchors.md section 3.1):
  detector = the I3D TorchScript of StyleGAN-V (``i3d_styleganv`` in the weights registry) called as
  ``detector(x, rescale=False, resize=False, return_features=True)`` -> 400-d; we do the preprocessing
  ourselves as fvd-comparison does: uint8 frames -> float -> bilinear resize to 224x224 (aspect not
  kept; torch ``interpolate``, ``align_corners=False``, no antialias) -> ``2x/255 - 1``; covariance
  biased (÷N), distance ``|mu1-mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))``: StyleGAN-V takes it with scipy
  ``sqrtm`` of ``S1 @ S2`` (real part: ``fvd_frechet=sqrtm-product``); the default ``eigh`` takes the same
  trace from the eigenvalues of a symmetric product (:mod:`moee_bench.metrics.core.frechet`: exact, as accurate or more).
``videogpt`` (VideoGPT / TATS / cd-fvd): the PyTorch ``InceptionI3d`` (:mod:`moee_bench.metrics.visual.i3d`) with
  ``i3d_pretrained_400.pt`` (``i3d_tats``), the same preprocessing, logits averaged over time;
  covariance unbiased (÷N-1); trace of the square root by TF-GAN's SVD route, as TATS computes it
  (``fvd_frechet=tfgan-svd``, the variant's default).

Clips (``fvd_clips``; StyleGAN-V ``src/metrics/frechet_video_distance.py`` with its dataset's
``load_n_consecutive``): 16 consecutive frames at the evaluation fps.

* ``styleganv`` (default): one clip per video, as StyleGAN-V's protocol takes them: the generated clip
  from frame 0 (StyleGAN-V generates ``t = 0..15``; for a dataset of generated videos it sets
  ``load_n_consecutive_random_offset = False``), the real clip from a uniformly random offset in
  ``[0, T - 16]`` (its ``random.randint`` over the real video). Our offset is seeded per clip
  (``fvd_seed`` and the clip id, so it does not depend on the order or the rank that scores the clip)
  and recorded per clip (``fvd_real_offset``). T is the number of frames of
  the GT video at the evaluation fps (its features are extracted alone, once per dataset).
* ``first``: one clip per video, real and generated both from frame 0 (the named from-0 option).
* ``windows``: every non-overlapping 16-frame window from frame 0 of each video, pooled (a separately
  named variant; not StyleGAN-V's protocol).

Real = GT, generated = pred. A video shorter than 16 frames is ``too_short``, never 0. The output
names the variant, the clip rule and N (``fvd_variant``, ``fvd_clip_rule``, ``fvd_n_real``,
``fvd_n_fake``).
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any, Mapping

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, load_into, load_state_dict, load_torchscript
from moee_bench.metrics.core.base import ClipContext, Features, Param, State, VideoChunk
from moee_bench.metrics.core.frechet import Moments, MomentsMetric, PairedMoments, frechet_distance, frechet_sym_sqrt
from moee_bench.metrics.core.precision import autocast, of_options
# imported inside the functions that use them (seconds to import, or optional): scipy, torch; our modules that import such packages: i3d

DIM = 400
CLIP_LEN = 16
SIZE = 224
VARIANTS = ("styleganv", "videogpt")
CLIP_RULES = {
    "styleganv": "one 16-frame clip per video: generated from frame 0, real from a seeded uniform random offset "
                 "in [0, T-16] (StyleGAN-V protocol; offset per clip in fvd_real_offset)",
    "first": "one 16-frame clip per video: generated and real both from frame 0",
    "windows": "every non-overlapping 16-frame window from frame 0 of each video, pooled (not StyleGAN-V's protocol)",
}


def build_detector(variant: str, weights: WeightsOptions, device: str = "cpu"):
    """(callable (B, 3, T, 224, 224) in [-1, 1] -> (B, 400), resolved weights) for a variant."""
    if variant == "styleganv":
        resolved = weights.resolve("i3d_styleganv")
        module = load_torchscript(resolved, map_location=device).eval()     # verified files only: it runs code

        def run(x):
            return module(x, rescale=False, resize=False, return_features=True)
        return run, resolved
    if variant == "videogpt":
        from moee_bench.metrics.visual.i3d import InceptionI3d

        resolved = weights.resolve("i3d_tats")
        net = InceptionI3d()
        load_into(net, load_state_dict(resolved), what=f"I3D {resolved.path}")
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
    return frechet_distance(mu1, s1, mu2, s2, method="sqrtm-product")


def frechet_tfgan(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, eps: float = 1e-10) -> float:
    """TF-GAN / TATS distance: ``tr(sqrt(sqrt(S1) S2 sqrt(S1)))`` through SVD square roots (float64 here)."""
    def sym_sqrt(m: np.ndarray) -> np.ndarray:
        u, s, vt = np.linalg.svd(m)
        si = np.where(s < eps, s, np.sqrt(s))
        return (u * si) @ vt

    return frechet_sym_sqrt(mu1, s1, mu2, s2, sym_sqrt)


#: ``fvd_frechet`` -> (function, what the protocol says); None picks the variant's default (:data:`DEFAULT_FRECHET`)
FRECHET = {"eigh": (lambda *a: frechet_distance(*a, method="eigh"),
                    "eigh: sum sqrt(eigvalsh(F^T S2 F)), S1 = F F^T by pivoted Cholesky (float64)"),
           "sqrtm-product": (frechet_styleganv, "scipy sqrtm of S1 @ S2, real part (StyleGAN-V)"),
           "tfgan-svd": (frechet_tfgan, "TF-GAN SVD trace sqrt (TATS)")}
DEFAULT_FRECHET = {"styleganv": "eigh", "videogpt": "tfgan-svd"}


def real_offset_rng(seed: int, clip_id: str) -> np.random.Generator:
    """The generator of a clip's real-clip offset: seeded by ``seed`` and the clip id only."""
    return np.random.default_rng([int(seed), zlib.crc32(str(clip_id).encode("utf-8"))])


class _Extractor:
    """I3D embeddings of one video's 16-frame clip(s) under the clip rule, fed the video's frames once.

    ``side`` is ``pred`` (generated: the clip from frame 0) or ``gt`` (real: under ``styleganv`` a uniform
    choice over every window start by reservoir sampling, so the number of frames need not be known in
    advance; seeded by ``fvd_seed`` and the clip id). Under ``windows`` both sides keep every
    non-overlapping window. The pairing of the sides happens in :meth:`FVD.combine`."""

    def __init__(self, m: "FVD", clip_id: str, side: str) -> None:
        self.m, self.clip_id, self.side = m, clip_id, side
        self.n = 0
        self.head: list[np.ndarray] = []                      # first 16 frames
        self.window: deque = deque(maxlen=CLIP_LEN)           # last 16 frames (real side, styleganv)
        self.chosen: np.ndarray | None = None
        self.offset = -1
        self.rng = real_offset_rng(m.seed, clip_id)
        self.buf: list[np.ndarray] = []                       # windows rule
        self.feats: list[np.ndarray] = []

    @property
    def _random_offset(self) -> bool:
        return self.m.clips == "styleganv" and self.side == "gt"

    def add(self, chunk: VideoChunk) -> None:
        frames = chunk.frames
        if self.m.clips == "windows":
            self.buf.extend(frames)
            while len(self.buf) >= CLIP_LEN:
                clip = np.stack(self.buf[:CLIP_LEN])
                del self.buf[:CLIP_LEN]
                self.feats.append(self.m.embed(clip))
        elif self._random_offset:
            for i, frame in enumerate(frames):
                self.window.append(frame)
                start = chunk.start + i - CLIP_LEN + 1
                if start >= 0 and self.rng.random() * (start + 1) < 1.0:    # keep window `start` w.p. 1/(start+1)
                    self.chosen, self.offset = np.stack(self.window), start
        elif len(self.head) < CLIP_LEN:
            self.head.extend(frames[:CLIP_LEN - len(self.head)])
        self.n += len(frames)

    def finish(self) -> Features:
        if self.n < CLIP_LEN:
            raise ClipError(self.clip_id, f"{self.n} frames: FVD needs at least {CLIP_LEN} frames per video",
                            status="too_short")
        if self.m.clips == "windows":
            return {"x": np.stack(self.feats).astype(np.float32)}
        if self._random_offset:
            return {"x": self.m.embed(self.chosen)[None].astype(np.float32),
                    "real_offset": np.array([self.offset], np.int64)}
        out = {"x": self.m.embed(np.stack(self.head))[None].astype(np.float32)}
        if self.side == "gt":
            out["real_offset"] = np.array([0], np.int64)
        return out


class FVD(MomentsMetric):
    name = "fvd"
    reference = "StyleGAN-V fvd2048_16f I3D (fvd_variant=videogpt: VideoGPT/TATS I3D)"
    keys = ("fvd",)
    higher_is_better = {"fvd": False}
    needs_gt = True
    parts = {"pred": ("pred",), "gt": ("gt",)}
    states = {"moments": State(lambda: PairedMoments(DIM))}
    unit = f"clips of {CLIP_LEN} frames"
    rank_note = "the value is not comparable with published FVD (StyleGAN-V uses 2048 clips)"
    PARAMS = {"fvd_variant": Param(str, "styleganv", VARIANTS, help="I3D detector and preprocessing"),
              "fvd_clips": Param(str, "styleganv", tuple(CLIP_RULES), retired={"all": "use fvd_clips=windows"},
                                 help="styleganv: generated from frame 0, real from a seeded offset; first: both from "
                                      "frame 0; windows: every 16-frame window"),
              "fvd_seed": Param(int, 0, minimum=0, help="seed of the real clips' offsets (fvd_clips=styleganv)"),
              "fvd_frechet": Param(str, "auto", ("auto", *FRECHET),
                                   help="how tr sqrt(S1 S2) is taken: auto (eigh for styleganv, tfgan-svd for videogpt), "
                                        "eigh, sqrtm-product (StyleGAN-V's own function) or tfgan-svd")}

    def __init__(self, options: Any) -> None:
        self.variant = str(self.param_value(options, "fvd_variant"))
        self.clips = str(self.param_value(options, "fvd_clips"))
        self.seed = int(self.param_value(options, "fvd_seed"))
        chosen = self.param_value(options, "fvd_frechet")
        self.frechet = DEFAULT_FRECHET[self.variant] if chosen == "auto" else chosen
        self.device = options.device
        self.precision = of_options(options)
        self.detector, self.weights = build_detector(self.variant, options.weights, self.device)
        super().__init__()

    def weight_files(self) -> list[ResolvedWeights]:
        return [self.weights]

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
                "verified": self.weights.verified, "clip_frames": CLIP_LEN, "clip_rule": self.clips,
                "clips": CLIP_RULES[self.clips], "seed": self.seed if self.clips == "styleganv" else None,
                "resize": "bilinear 224x224 (torch, align_corners=False, aspect not kept)", "range": "2x/255-1",
                "covariance": "biased (N)" if self.variant == "styleganv" else "unbiased (N-1)",
                "distance": FRECHET[self.frechet][1], "frechet": self.frechet, "precision": self.precision}

    def feature_config(self) -> dict[str, Any]:
        """The config less the distance (it does not change the features)."""
        return {k: v for k, v in self.config().items() if k not in ("distance", "frechet")}

    def part_config(self, part: str, ctx: ClipContext) -> dict[str, Any]:
        if part == "gt" and self.clips == "styleganv":     # the real clip's offset is seeded by the clip id
            return {"real_clip": "seeded uniform offset", "seed": self.seed, "clip_id": ctx.clip_id}
        return {"clip": "from frame 0" if self.clips != "windows" else "windows"}

    def part_extractor(self, ctx: ClipContext, part: str) -> _Extractor:
        return _Extractor(self, ctx.clip_id, part)

    @classmethod
    def combine(cls, parts: dict[str, Features]) -> Features:
        """As many clips of each side as the side with fewer has; the real clip's offset travels along."""
        p, g = np.asarray(parts["pred"]["x"]), np.asarray(parts["gt"]["x"])
        k = min(len(p), len(g))
        out: Features = {"pred": p[:k], "gt": g[:k]}
        if "real_offset" in parts["gt"]:
            out["real_offset"] = np.asarray(parts["gt"]["real_offset"])
        return out

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        if len(feats["pred"]) == 0:
            raise ClipError(ctx.clip_id if ctx else None, "no 16-frame clip", status="too_short")
        self.moments.add(feats["pred"], feats["gt"])
        out = {"fvd_clips": int(len(feats["pred"]))}
        if "real_offset" in feats and self.clips == "styleganv":
            out["fvd_real_offset"] = int(np.asarray(feats["real_offset"]).reshape(-1)[0])
        return out

    def settings(self) -> dict[str, Any]:
        return {"variant": self.variant, "frechet": self.frechet}

    @classmethod
    def distance(cls, fake: Moments, real: Moments, settings: Mapping[str, Any], resample: bool) -> float:
        """The variant's distance (biased covariances for StyleGAN-V, unbiased for ``videogpt``), its trace
        square root taken by ``settings["frechet"]`` (:data:`FRECHET`; None or absent: the variant's default)."""
        variant = settings.get("variant", "styleganv")
        unbiased = variant == "videogpt"
        method = settings.get("frechet") or DEFAULT_FRECHET[variant]
        return FRECHET[method][0](*fake.mean_cov(unbiased=unbiased), *real.mean_cov(unbiased=unbiased))

    def compute(self) -> dict[str, Any]:
        return {"fvd_variant": self.variant, "fvd_clip_rule": self.clips, **super().compute()}


def fvd_from_features(clip_feats: list[Features], variant: str = "styleganv", frechet: str | None = None) -> float | None:
    """:meth:`FVD.from_features`'s value over pooled per-clip I3D features (``pred`` / ``gt``) for ``variant``
    (``frechet``: an ``fvd_frechet`` value, None for the variant's default)."""
    return FVD.from_features(clip_feats, {"variant": variant, "frechet": frechet})["fvd"]
