"""MoEE's training loss: ``L_latent + lambda * cos(t*pi/(2T)) * (L1 + perceptual)`` (paper section 2.6).

``L_latent`` is the epsilon-prediction MSE. The spatial term decodes the one-step estimate
``x0 = (z_t - sqrt(1 - a_t) * eps) / sqrt(a_t)`` through the frozen VAE for ``train.spatial_loss_frames``
frames per sample and compares it with the ground-truth frames by L1 and by the LPIPS network of the
metrics module (the paper's ``V`` is an unnamed perceptual network; LPIPS is the one the suite
already trusts). Both terms honour the loss mask (the stage-2 mouth mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from moee_ref.config import MoEEConfig


def build_perceptual(cfg: MoEEConfig, weights=None) -> nn.Module:
    """The frozen LPIPS network: ``registry`` = metrics' alexnet from the weights registry; ``random`` = the
    lpips package's calibration layers on a random alexnet (offline tiny runs)."""
    if cfg.train.lpips_backbone == "registry":
        from bench.weights import WeightsOptions
        from metrics.lpips_metric import build_lpips

        model, _ = build_lpips("alex", weights or WeightsOptions())
    else:
        import lpips

        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
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
