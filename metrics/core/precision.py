"""Numeric precision of the feature networks: ``fp32`` (default, the reference tools' numbers) or ``bf16``.

``bf16`` is a declared fast mode: the feature networks (FID Inception, LPIPS AlexNet/VGG, FVD I3D, CSIM
ArcFace, SyncNet) run under ``torch.autocast`` with bfloat16 (AMX / AVX-512-BF16 on recent x86 CPUs,
tensor cores on CUDA); their outputs are cast back to float32 and every accumulator stays float64. The
precision is part of each metric's ``config()`` (hence of its feature cache key and its protocol), so
bf16 features never mix with fp32 ones. Face detectors, landmark models and the pixel metrics (PSNR,
SSIM) always run in full precision. Measured drift against fp32: ``moee-bench bench drift``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

PRECISIONS = ("fp32", "bf16")
DEFAULT = "fp32"


def check_precision(precision: str | None) -> str:
    """The precision name, validated (None means the default, fp32)."""
    p = DEFAULT if precision is None else str(precision)
    if p not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return p


def autocast(precision: str, device: str = "cpu") -> ContextManager[Any]:
    """The context a feature network runs in: bf16 autocast on ``device``'s type, or nothing for fp32."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16)


def of_options(options: Any) -> str:
    """The precision a metric was built with (``MetricOptions.precision``; fp32 for option-less metrics)."""
    return check_precision(getattr(options, "precision", None))
