"""FID exactly as pytorch-fid 0.3.0 computes it, fed from our single decode pass.

Network: ``pytorch_fid.inception.InceptionV3([3])`` (pool3, 2048-d), built through pytorch-fid's
own code with the registry's ``pt_inception-2015-12-05-6726825d.pth`` (hash-checked, loaded with
``weights_only=True``) instead of its unchecked download. Input as pytorch-fid reads PNGs:
uint8 RGB -> float32 [0, 1] (ToTensor) -> in-model bilinear resize to 299 (no antialias) -> [-1, 1].
Real = GT frames, generated = pred frames, pooled over all clips. Statistics: float64 mergeable
moments, unbiased covariance (np.cov). Fréchet distance (``fid_frechet``): ``eigh`` by default, the
pivoted-Cholesky + symmetric-eigenvalue form of pytorch-fid's quantity (equal within 1e-6 relative, 9-120x
faster at 2048 dims, as accurate or more against an extended-precision value: :mod:`metrics.core.frechet`);
``fid_frechet=pytorch-fid`` calls pytorch-fid's ``calculate_frechet_distance`` itself. The method is named
in the protocol (``frechet``). N is recorded; with N <= 2048 the covariance is rank-deficient and the
result carries a loud warning.
"""

from __future__ import annotations

from typing import Any, Mapping
from unittest import mock

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, load_state_dict, must_fit, skip_init
from moee_bench.metrics.core.base import ClipContext, Features, Param, State, VideoChunk
from moee_bench.metrics.core import fusion
from moee_bench.metrics.core.precision import autocast, check_precision, of_options
from moee_bench.metrics.core.frechet import Moments, MomentsMetric, PairedMoments, frechet_distance
# imported inside the functions that use them (seconds to import, or optional): pytorch_fid, torch

DIM = 2048
CPU_BATCH = 8                # frames per Inception pass on CPU (inception_features)
#: ``fid_frechet`` -> what the protocol says
FRECHET = {"eigh": "eigh: sum sqrt(eigvalsh(F^T S2 F)), S1 = F F^T by pivoted Cholesky (float64)",
           "pytorch-fid": "pytorch-fid calculate_frechet_distance (scipy sqrtm of S1 S2)"}


def build_inception(weights: WeightsOptions, device: str = "cpu", precision: str = "fp32"):
    """pytorch-fid's InceptionV3 (block 3) with the registry's FID weights, prepared for inference
    (:func:`prepare_for_inference`) at ``precision``."""
    import pytorch_fid.inception as pfi

    resolved = weights.resolve("fid_inception")
    sd = load_state_dict(resolved)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: sd), \
            must_fit(f"FID Inception {resolved.path}"), skip_init():      # pytorch-fid loads every tensor, strict
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[DIM]])
    return prepare_for_inference(model.eval(), device, precision).to(device), resolved


def prepare_for_inference(model, device: str = "cpu", precision: str = "fp32"):
    """The same network, faster on CPU: every eval-mode BatchNorm folded into its convolution (torch's
    ``fuse_conv_bn_weights``, what ``fuse_conv_bn_eval`` computes, in place: its deep copy of each convolution
    cost more than the folding) and channels_last layout (oneDNN). Features differ from the unfused default
    layout by < 1e-6 relative (float rounding), far inside the FID parity tolerance (1e-4,
    tests/test_visual_metrics.py); measured 1.65x (layout) and ~1.15x more (folding) on CPU.

    On CPU (:func:`moee_bench.metrics.core.fusion.available`) each convolution and its ReLU also run as one oneDNN
    call (bit-identical features; on one core 1.11x at fp32, 1.5x at bf16 with the batch of
    :func:`inception_features`), and at ``precision="bf16"`` the weights are converted to bf16 once instead of at every
    autocast call; the input stays float32 through the resize and the normalisation and is cast to bf16 by the first
    convolution, as autocast casts it, so bf16 features are those of the autocast model, bit for bit."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_weights
    from torchvision.models.inception import BasicConv2d

    for mod in model.modules():
        conv, bn = getattr(mod, "conv", None), getattr(mod, "bn", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):   # torchvision BasicConv2d
            conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                          bn.eps, bn.weight, bn.bias)
            mod.bn = torch.nn.Identity()
    if fusion.available(device):
        # BasicConv2d.forward is relu(bn(conv(x))) and bn is now the identity
        fusion.fuse_modules(model, lambda m: m.conv if isinstance(m, BasicConv2d) and isinstance(m.bn, torch.nn.Identity)
                            else None)
        if check_precision(precision) == "bf16":
            model = model.to(torch.bfloat16)
    return model.to(memory_format=torch.channels_last)


def inception_features(model, frames: np.ndarray, device: str = "cpu", batch: int | None = None) -> np.ndarray:
    """(n, 2048) float32 activations of uint8 RGB frames (under an enclosing bf16 autocast, :mod:`moee_bench.metrics.core.precision`,
    the network runs in bf16 and the activations are cast back to float32). ``batch``: frames per forward pass; by
    default 8 on CPU (its activations stay in cache: 1.08x faster than 32 at fp32, 1.13x at bf16, one core) and 50
    (pytorch-fid's) elsewhere. Each frame's features do not depend on the batch."""
    import torch

    batch = batch or (CPU_BATCH if str(device).split(":")[0] == "cpu" else 50)
    out = []
    with torch.no_grad():
        for s in range(0, len(frames), batch):
            x = torch.from_numpy(frames[s:s + batch]).permute(0, 3, 1, 2).float().div(255.0).to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x)[0].squeeze(3).squeeze(2).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, DIM), np.float32)


class _Extractor:
    """Inception activations of every frame of one video (either side: GT activations are reused by every method)."""

    def __init__(self, m: "FID") -> None:
        self.m = m
        self.acts: list[np.ndarray] = []

    def add(self, chunk: VideoChunk) -> None:
        with autocast(self.m.precision, self.m.device):
            self.acts.append(inception_features(self.m.model, chunk.frames, self.m.device))

    def finish(self) -> Features:
        return {"x": np.concatenate(self.acts).astype(np.float32) if self.acts else np.zeros((0, DIM), np.float32)}


class FID(MomentsMetric):
    name = "fid"
    reference = "pytorch-fid 0.3.0 (Heusel et al. 2017), InceptionV3 pool3 over all frames"
    keys = ("fid",)
    higher_is_better = {"fid": False}
    needs_gt = True
    parts = {"pred": ("pred",), "gt": ("gt",)}
    states = {"moments": State(lambda: PairedMoments(DIM))}
    unit = "frames"
    PARAMS = {"fid_frechet": Param(str, "eigh", ("eigh", "pytorch-fid"),
                                   help="how tr sqrt(S1 S2) is taken: eigh (exact, fast) or pytorch-fid's sqrtm function")}

    def __init__(self, options: Any) -> None:
        self.device = options.device
        self.precision = of_options(options)
        self.frechet = str(self.param_value(options, "fid_frechet"))
        self.model, self.weights = build_inception(options.weights, self.device, self.precision)
        super().__init__()

    def weight_files(self) -> list[ResolvedWeights]:
        return [self.weights]

    def config(self) -> dict[str, Any]:
        return {"impl": "pytorch-fid 0.3.0 InceptionV3 pool3", "dims": DIM, "weights_sha256": self.weights.sha256,
                "verified": self.weights.verified, "input": "uint8 RGB -> [0,1], bilinear 299 in-model (no antialias)",
                "covariance": "unbiased (N-1)", "pooling": "all frames of all clips", "precision": self.precision,
                "frechet": FRECHET[self.frechet]}

    def feature_config(self) -> dict[str, Any]:
        """The config less the distance method (it does not change the features)."""
        return {k: v for k, v in self.config().items() if k != "frechet"}

    def part_extractor(self, ctx: ClipContext, part: str) -> _Extractor:
        return _Extractor(self)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        if len(feats["pred"]) == 0:
            raise ClipError(ctx.clip_id if ctx else None, "no frames", status="too_short")
        self.moments.add(feats["pred"], feats["gt"])
        return {}

    def settings(self) -> dict[str, Any]:
        return {"frechet": self.frechet}

    @classmethod
    def distance(cls, fake: Moments, real: Moments, settings: Mapping[str, Any], resample: bool) -> float:
        """The Fréchet distance on unbiased covariances, taken by ``settings["frechet"]`` (``eigh``, the default,
        or ``pytorch-fid``'s function; a recorded protocol's description is read back); bootstrap resamples
        always take the eigh form."""
        method = settings.get("frechet", "eigh")
        method = next((k for k, v in FRECHET.items() if method in (k, v)), "eigh")
        return frechet_distance(*fake.mean_cov(True), *real.mean_cov(True), method="eigh" if resample else method)


def fid_from_features(clip_feats: list[Features], frechet: str = "eigh") -> float | None:
    """:meth:`FID.from_features`'s value over pooled per-clip ``pred`` / ``gt`` activations; ``frechet``: ``eigh``
    (the headline's default) or ``pytorch-fid`` (``sqrtm``: pytorch-fid's function)."""
    method = "pytorch-fid" if frechet == "sqrtm" else frechet
    return FID.from_features(clip_feats, {"frechet": method})["fid"]
