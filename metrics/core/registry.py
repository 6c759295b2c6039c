"""Metric names -> implementing classes (imported lazily, so asking for PSNR never loads SyncNet)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.base import Metric

METRICS: dict[str, str] = {
    "psnr": "moee_bench.metrics.visual.psnr:PSNR",
    "ssim": "moee_bench.metrics.visual.ssim:SSIM",
    "lpips": "moee_bench.metrics.visual.lpips:LPIPS",
    "fid": "moee_bench.metrics.visual.fid:FID",
    "fvd": "moee_bench.metrics.visual.fvd:FVD",
    "csim": "moee_bench.metrics.visual.csim:CSIM",
    "akd": "moee_bench.metrics.motion.akd:AKD",
    "sync": "moee_bench.metrics.sync.metric:Sync",
    "emotion": "moee_bench.metrics.emotion.metric:Emotion",
    "dynamics": "moee_bench.metrics.motion.dynamics:Dynamics",
    "kid": "moee_bench.metrics.visual.kid:KID",
    "kvd": "moee_bench.metrics.visual.kid:KVD",
    "flmd": "moee_bench.metrics.motion.flmd:FLMD",
}


@dataclass
class MetricOptions:
    """Options every metric constructor receives: weights lookup, device, and metric-specific parameters."""

    weights: WeightsOptions = field(default_factory=WeightsOptions)
    device: str = "cpu"
    params: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"     # feature networks: fp32 or bf16 (moee_bench.metrics.core.precision)

    def __post_init__(self) -> None:
        from moee_bench.metrics.core.precision import check_precision

        self.precision = check_precision(self.precision)

    def param(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


def metric_class(name: str) -> type[Metric]:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    mod, _, cls = METRICS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def metric_classes(names: list[str]) -> dict[str, type[Metric] | None]:
    """Name -> class for each requested metric (None when its module cannot be imported here);
    an unknown name is a :class:`BenchError` naming the known ones."""
    out: dict[str, type[Metric] | None] = {}
    for n in names:
        try:
            out[n] = metric_class(n)
        except KeyError as e:
            raise BenchError(e.args[0]) from None
        except ImportError:
            out[n] = None
    return out


def check_params(names: list[str], params: dict[str, Any], *, source: str = "--param") -> dict[str, Any]:
    """Refuse parameter keys no requested metric declares (naming the known ones) and values of the
    wrong type or range; return the params parsed to their declared types. Done before any work."""
    classes = metric_classes(names)
    declared = {k: (n, spec) for n, cls in classes.items() if cls is not None for k, spec in cls.parameters().items()}
    out: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in declared:
            # parameter keys start with their metric's name (sync's face_cropped aside): import only that one
            owner = next((n for n in METRICS if n not in classes and key.startswith(n) and _declares(n, key)), None)
            if owner:
                raise BenchError(f"{source}: {key!r} is a parameter of metric {owner!r}, which is not requested "
                                 f"(metrics: {', '.join(names)})")
            known = ", ".join(sorted(declared)) or "no parameters"
            raise BenchError(f"{source}: unknown key {key!r}; the requested metrics ({', '.join(names)}) know: {known}")
        metric, spec = declared[key]
        try:
            out[key] = spec.parse(raw)
        except ValueError as e:
            raise BenchError(f"{source}: {key}={raw!r} (metric {metric}): {e}") from None
    return out


def check_size(metrics: list[Metric], size: tuple[int, int] | None, *, source: str = "--size") -> None:
    """Refuse an evaluation size smaller than a requested metric can score (before any work)."""
    if size is None:
        return
    for m in metrics:
        if min(size) < m.min_size:
            raise BenchError(f"{source} {size[0]} {size[1]}: metric {m.name} needs frames of at least "
                             f"{m.min_size}x{m.min_size} pixels")


def _declares(name: str, key: str) -> bool:
    try:
        return key in metric_class(name).parameters()
    except ImportError:
        return False


def build_metrics(names: list[str], options: MetricOptions | None = None) -> tuple[list[Metric], dict[str, str]]:
    """Instantiate the named metrics with shared options, for ``run`` and ``score`` alike.

    Returns the metrics that can run here and, for the others, metric name -> reason. Only the
    errors that mean "cannot run on this machine" (missing or refused weights, a missing optional
    package) make a metric unavailable; anything else is a bug and propagates. An unknown name, an
    unknown parameter key or a bad parameter value is a :class:`BenchError` (:func:`check_params`).
    """
    options = options or MetricOptions()
    options.params = check_params(names, dict(options.params))
    built, unavailable = [], {}
    for n in names:
        try:
            cls = metric_class(n)
        except KeyError as e:
            raise BenchError(e.args[0]) from None
        except ImportError as e:
            unavailable[n] = f"{type(e).__name__}: {e}"
            continue
        try:                    # each metric resolves its weights through a view that records them under its name
            built.append(cls(replace(options, weights=options.weights.for_metric(n))))
        except (BenchError, ImportError) as e:
            unavailable[n] = f"{type(e).__name__}: {e}"
    return built, unavailable
