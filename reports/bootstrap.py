"""Bootstrap confidence intervals over clips (our own few lines: percentile bootstrap, seeded)."""

from __future__ import annotations

import numpy as np

from moee_bench.reports.source import ResultSource


def percentile_ci_method(n_boot: int = 1000, level: float = 0.95, what: str = "clips") -> str:
    """How :func:`mean_ci` (and the other resampling CIs here) are made, in words, for tables and charts."""
    return f"{level:.0%} percentile bootstrap over {what} ({n_boot} resamples)"


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The estimator a leaderboard cell shows: the plain mean of per-clip values, or with ``weights`` (each
    clip's number of scored frames) the frame-weighted mean = the mean over every frame of every clip."""
    v = np.asarray(values, np.float64)
    if weights is None:
        return float(v.mean())
    w = np.asarray(weights, np.float64)
    return float((v * w).sum() / w.sum())


def _clean(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    if weights is not None:
        w = np.asarray(weights, np.float64)
        ok &= np.isfinite(w) & (w > 0)
        return v[ok], w[ok]
    return v[ok], None


def mean_ci(values: np.ndarray, weights: np.ndarray | None = None, *, n_boot: int = 1000, level: float = 0.95,
            seed: int = 0) -> tuple[float, float]:
    """Percentile CI of :func:`weighted_mean` of per-clip ``values`` (NaNs dropped), clips resampled: with
    ``weights`` the CI is of the frame-weighted mean, the same estimator as the value it surrounds."""
    v, w = _clean(values, weights)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    if len(v) == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), (n_boot, len(v)))
    means = v[idx].mean(axis=1) if w is None else (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired_diff_ci(base: np.ndarray, new: np.ndarray, *, base_weights: np.ndarray | None = None,
                   new_weights: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """``estimator(new) - estimator(base)`` over clips scored in both, with its paired percentile CI (the same
    clips resampled on both sides). With weights the estimator is each side's frame-weighted mean."""
    b, n = np.asarray(base, np.float64), np.asarray(new, np.float64)
    ok = np.isfinite(b) & np.isfinite(n)
    weighted = base_weights is not None and new_weights is not None
    if weighted:
        wb, wn = np.asarray(base_weights, np.float64), np.asarray(new_weights, np.float64)
        ok &= np.isfinite(wb) & np.isfinite(wn) & (wb > 0) & (wn > 0)
        wb, wn = wb[ok], wn[ok]
    b, n = b[ok], n[ok]
    if len(b) == 0:
        return (float("nan"),) * 3
    if not weighted:
        d = n - b
        lo, hi = mean_ci(d, n_boot=n_boot, level=level, seed=seed)
        return float(d.mean()), lo, hi
    diff = weighted_mean(n, wn) - weighted_mean(b, wb)
    if len(b) == 1:
        return diff, diff, diff
    idx = np.random.default_rng(seed).integers(0, len(b), (n_boot, len(b)))
    ds = (n[idx] * wn[idx]).sum(1) / wn[idx].sum(1) - (b[idx] * wb[idx]).sum(1) / wb[idx].sum(1)
    a = (1 - level) / 2
    return diff, float(np.quantile(ds, a)), float(np.quantile(ds, 1 - a))


def set_metric_ci(store: ResultSource, run_id: str, method: str, metric: str = "fid", *, n_boot: int = 100, level: float = 0.95,
                  seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap CI of a set-level metric (FID, FVD) by resampling clips and recomputing from cached features.

    Returns None when it cannot be made (:func:`set_metric_bootstrap` says why). Each resample is recomputed by
    the metric's own formula (:meth:`Metric.from_features`, the one its ``compute`` calls) in its bootstrap form,
    with the run's recorded protocol."""
    return set_metric_bootstrap(store, run_id, method, metric, n_boot=n_boot, level=level, seed=seed)[0]


def set_metric_bootstrap(store, run_id: str, method: str, metric: str = "fid", *, n_boot: int = 100,
                         level: float = 0.95, seed: int = 0) -> tuple[tuple[float, float] | None, str]:
    """:func:`set_metric_ci` and, when there is no CI, the one-line reason: the bootstrap resamples exactly the
    clips the value was computed from, so a clip whose cached features are gone, unreadable or fail their
    digest check makes it refuse (it never resamples a subset) and name that clip."""
    from moee_bench.metrics.core.registry import METRICS, metric_class

    if metric not in METRICS or not metric_class(metric).set_level:
        return None, f"no set-level bootstrap for {metric}"
    cls = metric_class(metric)
    run = next((r for r in store.runs() if r["run_id"] == run_id), {"meta": {}})
    settings = run["meta"].get("protocol", {}).get(metric, {})

    def recompute(fs: list) -> float | None:
        # the metric's own formula (the one its compute calls) in its bootstrap form: FID's eigh Fréchet distance,
        # KID/KVD's 10 subsets per resample (the bootstrap spread dominates the subset noise)
        return cls.from_features(fs, settings, resample=True)[metric]

    keys = store.feature_keys(run_id, method, metric)
    st = store.status_table(run_id)
    scored = set(st[(st.method == method) & (st.metric == metric) & (st.status == "ok")].clip_id) if not st.empty else set()
    unkeyed = sorted(scored - set(keys))
    if unkeyed:
        return None, (f"no bootstrap: {len(unkeyed)} of {len(scored)} scored clips have no cached {metric} features "
                      f"recorded (e.g. {unkeyed[0]})")
    combine = cls.combine
    feats, lost = [], []
    for clip_id, parts in keys.items():
        got = {p: store.features.get(k) for p, k in parts.items()}
        bad = [p for p, f in got.items() if f is None]
        if bad:
            why = store.features.rejected.get(parts[bad[0]], "file missing")
            lost.append(f"{clip_id} ({metric}/{bad[0]}: {why})")
        else:
            feats.append(combine(got))
    if lost:
        return None, (f"no bootstrap: the cached {metric} features of {len(lost)} of {len(keys)} clips cannot be used "
                      f"({'; '.join(lost[:3])}))")
    if len(feats) < 2:
        return None, f"no bootstrap: {len(feats)} clip(s) with cached {metric} features (2 needed)"
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        v = recompute([feats[i] for i in rng.integers(0, len(feats), len(feats))])
        if v is not None and np.isfinite(v):
            vals.append(v)
    if not vals:
        return None, f"no bootstrap: no resample of {metric} gave a finite value"
    a = (1 - level) / 2
    return (float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))), ""
