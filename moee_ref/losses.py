"""MoEE's training loss: ``L_latent + lambda * cos(t*pi/(2T)) * (L1 + perceptual)`` (paper section 2.6).

``L_latent`` is the epsilon-prediction MSE. The spatial term decodes the one-step estimate
``x0 = (z_t - sqrt(1 - a_t) * eps) / sqrt(a_t)`` through the frozen VAE for ``train.spatial_loss_frames``
frames per sample and compares it with the ground-truth frames by L1 and by a perceptual feature
loss. Both terms honour the loss mask (the stage-2 mouth mask).

The paper's ``V`` is an unnamed perceptual network. We use a VGG-16 feature loss (mean L1 of the
relu1_2, relu2_2, relu3_3 and relu4_3 activations of ImageNet-normalised inputs), deliberately
*not* LPIPS: LPIPS is a reported metric, and a model trained on its own evaluation metric would
flatter itself. The weights are torchvision's VGG-16 file from the registry (entry ``lpips_vgg16``;
only the convolutional features are used); ``train.perceptual_backbone = "random"`` uses a random
VGG-16 for offline tiny runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from moee_bench.moee_ref.config import MoEEConfig
from moee_bench.bench.core.weights import load_into, load_state_dict, WeightsOptions
# imported inside the functions that use them (seconds to import, or optional): torchvision


VGG_LAYERS = (3, 8, 15, 22)   # relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's vgg16().features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatureLoss(nn.Module):
    """Per-sample mean L1 distance between VGG-16 activations of two image batches in [-1, 1]."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features[: VGG_LAYERS[-1] + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG_LAYERS:
                out.append(h)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = [(a - b).abs().mean(dim=(1, 2, 3)) for a, b in zip(self._taps(pred), self._taps(target))]
        return torch.stack(losses).mean(0)


def build_perceptual(cfg: MoEEConfig, weights=None) -> nn.Module:
    """The frozen VGG-16 feature loss: ``registry`` = torchvision's ImageNet VGG-16 from the weights
    registry; ``random`` = a random VGG-16 (offline tiny runs)."""
    from torchvision.models.vgg import cfgs, make_layers

    if cfg.train.perceptual_backbone not in ("registry", "random"):
        raise ValueError(f"train.perceptual_backbone must be 'registry' or 'random', got {cfg.train.perceptual_backbone!r}")
    # torchvision's VGG-16 convolutional stack only: the 120 M-parameter classifier is never used
    features = make_layers(cfgs["D"], batch_norm=False)
    if cfg.train.perceptual_backbone == "registry":
        resolved = (weights or WeightsOptions()).resolve("lpips_vgg16")
        sd = load_state_dict(resolved)
        other = sorted(k for k in sd if not k.startswith(("features.", "classifier.")))
        if other:
            raise ValueError(f"{resolved.path} is not a torchvision VGG-16 state dict (unexpected keys {other[:5]})")
        load_into(features, {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")},
                  what="VGG-16 features (perceptual loss)")
    model = VGGFeatureLoss(features)
    model.eval().requires_grad_(False)
    return model


def spatial_weight(t: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """``w(t) = cos(t * pi / (2T))``: full weight at t = 0, none at t = T."""
    return torch.cos(t.float() * math.pi / (2 * num_train_timesteps))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where the broadcast ``mask`` is 1 (per sample)."""
    mask = mask.expand_as(x)
    dims = tuple(range(1, x.ndim))
    return (x * mask).sum(dims) / mask.sum(dims).clamp_min(1.0)


def x0_estimate(noisy: torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
    """One-step clean-latent estimate from an epsilon prediction (t per sample, broadcast over the rest)."""
    a = alphas_cumprod.to(noisy.device)[t].float().reshape(-1, *([1] * (noisy.ndim - 1)))
    return (noisy - (1 - a).sqrt() * eps) / a.sqrt()


def latent_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A pixel loss mask (B, 1, H, W) at latent resolution: a latent cell counts only if all its pixels do."""
    return (-F.adaptive_max_pool2d(-mask, size) > 0).float()
