"""Bootstrap confidence intervals over clips (our own few lines: percentile bootstrap, seeded)."""

from __future__ import annotations

import numpy as np


def mean_ci(values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of per-clip ``values`` (NaNs dropped)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    if len(v) == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired_diff_ci(base: np.ndarray, new: np.ndarray, *, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``new - base`` over clips scored in both, with its paired percentile CI."""
    b, n = np.asarray(base, np.float64), np.asarray(new, np.float64)
    ok = np.isfinite(b) & np.isfinite(n)
    d = n[ok] - b[ok]
    if len(d) == 0:
        return (float("nan"),) * 3
    lo, hi = mean_ci(d, n_boot=n_boot, level=level, seed=seed)
    return float(d.mean()), lo, hi
