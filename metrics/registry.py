"""Metric names -> implementing classes (imported lazily, so asking for PSNR never loads SyncNet)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from bench.weights import WeightsOptions
from metrics.base import Metric

METRICS: dict[str, str] = {
    "psnr": "metrics.psnr:PSNR",
    "ssim": "metrics.ssim:SSIM",
    "lpips": "metrics.lpips_metric:LPIPS",
    "fid": "metrics.fid:FID",
    "fvd": "metrics.fvd:FVD",
    "csim": "metrics.csim:CSIM",
    "akd": "metrics.akd:AKD",
    "sync": "metrics.sync:Sync",
    "emotion": "metrics.emotion:Emotion",
}


@dataclass
class MetricOptions:
    """Options every metric constructor receives: weights lookup, device, and metric-specific parameters."""

    weights: WeightsOptions = field(default_factory=WeightsOptions)
    device: str = "cpu"
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


def metric_class(name: str) -> type[Metric]:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    mod, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def build_metrics(names: list[str], options: MetricOptions | None = None) -> list[Metric]:
    """Instantiate the named metrics with shared options."""
    options = options or MetricOptions()
    return [metric_class(n)(options) for n in names]
