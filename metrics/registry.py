"""Metric names -> implementing classes (imported lazily, so asking for PSNR never loads SyncNet)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.base import Metric

METRICS: dict[str, str] = {
    "psnr": "moee_bench.metrics.psnr:PSNR",
    "ssim": "moee_bench.metrics.ssim:SSIM",
    "lpips": "moee_bench.metrics.lpips_metric:LPIPS",
    "fid": "moee_bench.metrics.fid:FID",
    "fvd": "moee_bench.metrics.fvd:FVD",
    "csim": "moee_bench.metrics.csim:CSIM",
    "akd": "moee_bench.metrics.akd:AKD",
    "sync": "moee_bench.metrics.sync:Sync",
    "emotion": "moee_bench.metrics.emotion:Emotion",
}


@dataclass
class MetricOptions:
    """Options every metric constructor receives: weights lookup, device, and metric-specific parameters."""

    weights: WeightsOptions = field(default_factory=WeightsOptions)
    device: str = "cpu"
    params: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"     # feature networks: fp32 or bf16 (metrics.precision)

    def __post_init__(self) -> None:
        from moee_bench.metrics.precision import check_precision

        self.precision = check_precision(self.precision)

    def param(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


def metric_class(name: str) -> type[Metric]:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    mod, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def build_metrics(names: list[str], options: MetricOptions | None = None) -> tuple[list[Metric], dict[str, str]]:
    """Instantiate the named metrics with shared options, for ``run`` and ``score`` alike.

    Returns the metrics that can run here and, for the others, metric name -> reason. Only the
    errors that mean "cannot run on this machine" (missing or refused weights, a missing optional
    package) make a metric unavailable; anything else is a bug and propagates. An unknown name is
    a :class:`BenchError` naming the known ones.
    """
    options = options or MetricOptions()
    built, unavailable = [], {}
    for n in names:
        try:
            cls = metric_class(n)
        except KeyError as e:
            raise BenchError(e.args[0]) from None
        try:
            built.append(cls(options))
        except (BenchError, ImportError) as e:
            unavailable[n] = f"{type(e).__name__}: {e}"
    return built, unavailable
