"""The unit of resampling, paired bootstrap tests and multiplicity control (``compare``, the leaderboard's marks).

Clips of one identity are not independent: when the clips carry identities (at least :data:`MIN_IDENTITIES`
of them), the bootstrap resamples identities with replacement, then clips within each drawn identity
(the two-stage cluster bootstrap, Davison & Hinkley 1997, sec. 3.8); otherwise it resamples clips, and the
result says which and why. ``moee-bench bench stats`` measures the coverage of both by simulation.

The resampling is written here (no library draws nested resamples); a resample is a matrix of counts
(resamples x clips), so every estimator is a weighted sum. Benjamini-Hochberg is scipy's
``false_discovery_control``; Holm's step-down (no scipy function) is a few lines below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from moee_bench.reports.bootstrap import mean_ci as clip_mean_ci
# imported inside the functions that use them (scipy.stats: 0.5 s, and every CLI command's parser imports this module): scipy

# Fewest identities for `auto` to use the cluster bootstrap: `bench stats` (1000 simulations, 3 clips per identity,
# ICC 0.3) measured the two-stage bootstrap's 95 % CI of a mean at 90.1 % coverage with 4 identities, 93.2 % with
# 6, 92.2 % with 8, 94.8 % with 12 and 95.4 % with 20: from 6 it is within the 2-point target.
MIN_IDENTITIES = 6
MODES = ("auto", "cluster", "clip")
CORRECTIONS = {"holm": "Holm (family-wise error)", "bh": "Benjamini-Hochberg (false discovery rate)",
               "none": "none (each test at alpha)"}


@dataclass(frozen=True)
class Resampling:
    """Which unit a bootstrap resamples, and why (said in every output that uses it)."""

    unit: str             # "cluster" | "clip"
    n_clips: int
    n_identities: int
    note: str = ""        # why clip resampling was used when identities were asked for or present

    @property
    def name(self) -> str:
        """The estimator's name for tables and JSON."""
        if self.unit == "cluster":
            return f"cluster bootstrap ({self.n_identities} identities, then clips within them)"
        return "clip bootstrap (clips resampled independently)"


def choose(groups: Sequence[object] | None, mode: str = "auto", min_identities: int = MIN_IDENTITIES) -> Resampling:
    """The resampling unit for clips labelled ``groups`` (identities; None or empty labels: unknown).

    ``auto``: cluster when every clip has an identity and there are at least ``min_identities`` of them, else
    clip (with the reason). ``cluster`` asks for it explicitly (still clip, with the reason, under 2
    identities); ``clip`` resamples clips whatever the identities."""
    if mode not in MODES:
        raise ValueError(f"resampling mode {mode!r}; known: {', '.join(MODES)}")
    n = 0 if groups is None else len(groups)
    labels = [g for g in (groups if groups is not None else []) if g is not None and g == g and str(g) != ""]
    k = len(set(labels))
    if mode == "clip":
        return Resampling("clip", n, k, "clip resampling asked for (--resample clip)")
    if n == 0 or len(labels) < n:
        return Resampling("clip", n, k, "clips have no identity in the manifest: clips resampled as independent")
    floor = 2 if mode == "cluster" else min_identities
    if k < floor:
        return Resampling("clip", n, k, f"{k} identit{'y' if k == 1 else 'ies'} (fewer than {floor} needed for the "
                                        "cluster bootstrap): clips resampled as independent")
    return Resampling("cluster", n, k)


def resample_counts(n: int, groups: Sequence[object] | None, n_boot: int, rng: np.random.Generator,
                    unit: str = "cluster") -> np.ndarray:
    """``(n_boot, n)`` counts: how often each clip enters each resample.

    ``clip``: n clips drawn with replacement. ``cluster``: the identities drawn with replacement, then for each
    drawn identity as many clips as it has, drawn with replacement within it."""
    if unit == "clip" or groups is None:
        return rng.multinomial(n, np.full(n, 1 / n), size=n_boot) if n else np.zeros((n_boot, 0), np.int64)
    codes, _ = _codes(groups)
    k = int(codes.max()) + 1
    picks = rng.integers(0, k, (n_boot, k))
    times = np.stack([(picks == g).sum(1) for g in range(k)], 1)          # (n_boot, k): draws of each identity
    counts = np.zeros((n_boot, n), np.int64)
    for g in range(k):
        members = np.flatnonzero(codes == g)
        counts[:, members] = rng.multinomial(times[:, g] * len(members), np.full(len(members), 1 / len(members)))
    return counts


def _codes(groups: Sequence[object]) -> tuple[np.ndarray, list]:
    uniq = sorted({str(g) for g in groups})
    pos = {g: i for i, g in enumerate(uniq)}
    return np.array([pos[str(g)] for g in groups], np.int64), uniq


def mean_ci(values: np.ndarray, weights: np.ndarray | None = None, groups: Sequence[object] | None = None, *,
            mode: str = "auto", n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, Resampling]:
    """Percentile CI of the (frame-weighted) mean of per-clip ``values``, resampling identities then clips when
    :func:`choose` says so; clip resampling is :func:`reports.bootstrap.mean_ci` unchanged (same numbers)."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    w = None if weights is None else np.asarray(weights, np.float64)
    if w is not None:
        ok &= np.isfinite(w) & (w > 0)
    g = None if groups is None else np.asarray(groups, object)[ok]
    res = choose(None if g is None else list(g), mode)
    if res.unit == "clip" or ok.sum() < 2:
        lo, hi = clip_mean_ci(values, weights, n_boot=n_boot, level=level, seed=seed)
        return lo, hi, res
    counts = resample_counts(int(ok.sum()), list(g), n_boot, np.random.default_rng(seed), "cluster")
    draws = weighted_means(v[ok], None if w is None else w[ok], counts)
    a = (1 - level) / 2
    return float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a)), res


def weighted_means(values: np.ndarray, weights: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
    """The estimator (plain or frame-weighted mean) on every resample given as counts."""
    w = np.ones_like(values) if weights is None else weights
    return (counts @ (values * w)) / (counts @ w)


@dataclass
class PairedTest:
    """``estimator(new) - estimator(base)``, its CI, and the p-value of "beyond the threshold" on either side."""

    diff: float
    lo: float
    hi: float
    p: float              # two-sided: the smallest alpha at which the CI at 1 - alpha lies beyond +-threshold
    side: str             # "better" | "worse": the side the interval leans to (after orienting by direction)
    resampling: Resampling


def paired_test(base: np.ndarray, new: np.ndarray, *, base_weights: np.ndarray | None = None,
                new_weights: np.ndarray | None = None, groups: Sequence[object] | None = None, mode: str = "auto",
                higher_is_better: bool = True, threshold: float = 0.0, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> PairedTest:
    """Paired bootstrap of the difference of two runs' estimators on the same clips (same resample both sides).

    The percentile CI at ``level`` and the p-value agree: ``p < 1 - level`` exactly when that CI lies wholly
    beyond ``threshold`` on one side (regression or improvement)."""
    b, n = np.asarray(base, np.float64), np.asarray(new, np.float64)
    wb = None if base_weights is None else np.asarray(base_weights, np.float64)
    wn = None if new_weights is None else np.asarray(new_weights, np.float64)
    res = choose(groups, mode)
    rng = np.random.default_rng(seed)
    counts = resample_counts(len(b), groups, n_boot, rng, res.unit)
    ones = np.ones((1, len(b)))
    diff = float((weighted_means(n, wn, ones) - weighted_means(b, wb, ones))[0])
    draws = weighted_means(n, wn, counts) - weighted_means(b, wb, counts)
    a = (1 - level) / 2
    lo, hi = float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))
    p, side = two_sided_p(draws if higher_is_better else -draws, threshold)
    return PairedTest(diff, lo, hi, p, side, res)


def two_sided_p(oriented: np.ndarray, threshold: float = 0.0) -> tuple[float, str]:
    """p-value of "beyond ``threshold`` on one side" from bootstrap draws oriented so that > 0 is better, and
    the side ("worse" / "better") the draws lean to."""
    oriented = np.asarray(oriented, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):       # a constant bootstrap: z is +-inf or undefined
        sd = oriented.std()
        p_worse = _tail(oriented >= -threshold, (-threshold - oriented.mean()) / sd)   # H0: not worse
        p_better = _tail(oriented <= threshold, (oriented.mean() - threshold) / sd)   # H0: not better
    return float(min(1.0, 2 * min(p_worse, p_better))), ("worse" if p_worse < p_better else "better")


def _tail(beyond: np.ndarray, z: float) -> float:
    """One-sided bootstrap p-value: the share of resamples on the null side, (k + 1) / (B + 1); when no
    resample is there (k = 0), the normal tail at the bootstrap z-score, capped at 1 / (B + 1), so a
    multiplicity correction over many tests is not floored by the number of resamples."""
    from scipy.stats import norm

    k, b = int(beyond.sum()), len(beyond)
    if k:
        return (k + 1) / (b + 1)
    return float(min(1 / (b + 1), norm.sf(z))) if np.isfinite(z) else 1 / (b + 1)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error; scipy has no Holm)."""
    p = np.asarray(p, np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def adjust(p: Sequence[float], correction: str = "holm") -> np.ndarray:
    """Adjusted p-values over one family of tests: ``holm``, ``bh`` (scipy's Benjamini-Hochberg) or ``none``."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, np.float64)
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}; known: {', '.join(CORRECTIONS)}")
    if correction == "none" or len(p) == 0:
        return p
    return holm(p) if correction == "holm" else false_discovery_control(p, method="bh")
