"""LPIPS with the ``lpips`` package (v0.1, alex by default, vgg as an option).

The calibration layers ship in the lpips wheel; the backbone comes from the weights registry
(torchvision's ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``), hash-checked and loaded
with ``weights_only=True`` into ``lpips.LPIPS(pnet_rand=True)``'s backbone slices (lpips would
otherwise download it unchecked). Frames: uint8 RGB -> [-1, 1]; mean of per-frame values.
With ``precision=bf16`` the network runs under bf16 autocast (:mod:`moee_bench.metrics.core.precision`); per-frame values
are float64. (channels_last was measured and not kept: no gain at 128x128, 0.80 vs 0.80 s per 100 pairs.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, load_into, load_state_dict, must_fit, skip_init
from moee_bench.metrics.core.base import ClipContext, Features, FrameChunk, FrameMeanMetric, Param
from moee_bench.metrics.core.precision import autocast, of_options
# imported inside the functions that use them (seconds to import, or optional): lpips, torch

BACKBONE_WEIGHTS = {"alex": "lpips_alexnet", "vgg": "lpips_vgg16"}
MIN_SIZE = {"alex": 31, "vgg": 16}       # smaller frames leave an empty feature map in the backbone


def build_lpips(net: str, weights: WeightsOptions, device: str = "cpu"):
    """An ``lpips.LPIPS`` model with its backbone loaded from the registry."""
    import lpips

    resolved = weights.resolve(BACKBONE_WEIGHTS[net])
    sd = load_state_dict(resolved)
    with skip_init():             # every tensor is loaded: the backbone by load_into below, the linear layers by lpips
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    what = f"LPIPS {net} backbone {resolved.path}"
    with must_fit(what):
        # lpips slices keep torchvision's module indices: slice2.3.weight <- features.3.weight
        mapped = {name: sd[f"features.{name.split('.', 1)[1]}"] for name in model.net.state_dict()}
    load_into(model.net, mapped, what=what)
    return model.eval().to(device), resolved


class _Extractor:
    def __init__(self, metric: "LPIPS") -> None:
        self.m = metric
        self.vals: list[np.ndarray] = []

    def add(self, chunk: FrameChunk) -> None:
        import torch

        def t(x: np.ndarray):
            return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(self.m.device)

        with torch.no_grad(), autocast(self.m.precision, self.m.device):
            d = self.m.model(t(chunk.pred), t(chunk.gt))
        self.vals.append(d.reshape(-1).double().cpu().numpy())

    def finish(self) -> Features:
        return {"lpips": np.concatenate(self.vals) if self.vals else np.zeros(0)}


class LPIPS(FrameMeanMetric):
    name = "lpips"
    reference = "lpips 0.1.4 (Zhang et al. 2018), AlexNet v0.1 (lpips_net=vgg: VGG)"
    keys = ("lpips",)
    higher_is_better = {"lpips": False}
    needs_gt = True
    PARAMS = {"lpips_net": Param(str, "alex", tuple(BACKBONE_WEIGHTS), help="LPIPS backbone")}

    def __init__(self, options: Any) -> None:
        self.net = str(self.param_value(options, "lpips_net"))
        self.min_size = MIN_SIZE.get(self.net, 1)
        self.device = options.device
        self.precision = of_options(options)
        self.model, self.weights = build_lpips(self.net, options.weights, self.device)
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {"impl": "lpips 0.1.4", "net": self.net, "version": "0.1", "input": "RGB in [-1,1]",
                "backbone_sha256": self.weights.sha256, "verified": self.weights.verified,
                "aggregate": "mean over frames", "precision": self.precision}

    def weight_files(self) -> list[ResolvedWeights]:
        return [self.weights]

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self)
