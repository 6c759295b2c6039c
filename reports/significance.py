"""The leaderboard's significance marks: per clip-averaged metric, which methods are not significantly different
from the best one (paired bootstrap on the clips both scored; identities then clips when known; the p-values
of every (metric, method) comparison of a run adjusted together, Holm by default)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moee_bench.metrics.core.keys import KEYS
from moee_bench.reports.resampling import CORRECTIONS, adjust, paired_test, two_sided_p


@dataclass
class Ties:
    """key -> methods not significantly different from that key's best method (the best included)."""

    tied: dict[str, set[str]] = field(default_factory=dict)
    estimators: set[str] = field(default_factory=set)
    n_tests: int = 0
    correction: str = "holm"
    alpha: float = 0.05

    def describe(self) -> str:
        """One sentence for the leaderboard's header."""
        how = "; ".join(sorted(self.estimators)) or "no test needed"
        return (f"Bold: the best value per column and every method not significantly different from it (paired "
                f"bootstrap on the clips both scored, {how}; {self.n_tests} comparison(s) adjusted by "
                f"{CORRECTIONS[self.correction]}, alpha {self.alpha:g}).")


def set_paired_p(store, run_id: str, key: str, top: str, other: str, *, n_boot: int = 200,
                 seed: int = 0) -> float | None:
    """Paired bootstrap p-value of "``other``'s set-level metric (FID, FVD) differs from ``top``'s": clips both
    have cached features for are resampled together and the metric recomputed for both per resample (one
    Fréchet distance per method per resample). None without cached features for 2 common clips."""
    from moee_bench.metrics.core.registry import metric_class
    from moee_bench.metrics.visual.fid import fid_from_features
    from moee_bench.metrics.visual.fvd import fvd_from_features

    run = next((r for r in store.runs() if r["run_id"] == run_id), {"meta": {}})
    variant = ((run["meta"].get("protocol") or {}).get("fvd") or {}).get("variant", "styleganv")
    recompute = {"fid": lambda fs: fid_from_features(fs, frechet="eigh"),
                 "fvd": lambda fs: fvd_from_features(fs, variant)}.get(key)
    if recompute is None:
        return None
    combine = metric_class(key).combine
    a, b = store.clip_feature_parts(run_id, top, key), store.clip_feature_parts(run_id, other, key)
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    fa, fb = [combine(a[c]) for c in common], [combine(b[c]) for c in common]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(common), len(common))
        va, vb = recompute([fa[i] for i in idx]), recompute([fb[i] for i in idx])
        if va is not None and vb is not None and np.isfinite(va) and np.isfinite(vb):
            draws.append(vb - va)
    if not draws:
        return None
    return two_sided_p(np.asarray(draws))[0]


def tied_with_best(clips: pd.DataFrame, best: dict[str, str], candidates: dict[str, list[str]], *,
                   alpha: float = 0.05, correction: str = "holm", resample: str = "auto", n_boot: int = 1000,
                   seed: int = 0, store=None, run_id: str = "", set_bootstrap: int = 0) -> Ties:
    """For each key in ``best`` (key -> best method), test every method in ``candidates[key]`` against it.

    Clip-averaged keys: :func:`reports.resampling.paired_test` on the clips both scored. Set-level keys (FID,
    FVD): only with ``set_bootstrap`` > 0 resamples (:func:`set_paired_p`, from ``store``'s cached features).
    A method with fewer than 2 clips scored by both is not marked (it cannot be shown to be tied)."""
    out = Ties(correction=correction, alpha=alpha)
    tests: list[tuple[str, str, float]] = []
    for key, top in best.items():
        if KEYS[key].kind == "set":
            out.tied[key] = {top}
            for method in candidates.get(key, []):
                p = None if method == top or not set_bootstrap else set_paired_p(
                    store, run_id, key, top, method, n_boot=set_bootstrap, seed=seed)
                if p is not None:
                    tests.append((key, method, p))
                    out.estimators.add(f"{KEYS[key].label}: clips resampled, recomputed from cached features "
                                       f"({set_bootstrap} resamples)")
            continue
        out.tied[key] = {top}
        info = KEYS[key]
        b = clips[clips.method == top].set_index("clip_id")
        for method in candidates.get(key, []):
            if method == top:
                continue
            n = clips[clips.method == method].set_index("clip_id")
            common = b.index.intersection(n.index)
            bv, nv = b.loc[common, key].to_numpy(float), n.loc[common, key].to_numpy(float)
            ok = np.isfinite(bv) & np.isfinite(nv)
            bw = nw = None
            if info.weight and info.weight in clips.columns:
                bw, nw = b.loc[common, info.weight].to_numpy(float), n.loc[common, info.weight].to_numpy(float)
                ok &= np.isfinite(bw) & np.isfinite(nw) & (bw > 0) & (nw > 0)
                bw, nw = bw[ok], nw[ok]
            if ok.sum() < 2:
                continue
            groups = b.loc[common, "identity"].to_numpy(object)[ok] if "identity" in b.columns else None
            t = paired_test(bv[ok], nv[ok], base_weights=bw, new_weights=nw, groups=groups, mode=resample,
                            higher_is_better=info.higher_is_better, n_boot=n_boot, level=1 - alpha, seed=seed)
            out.estimators.add(t.resampling.name)
            tests.append((key, method, t.p))
    out.n_tests = len(tests)
    for (key, method, _), p in zip(tests, adjust([p for *_, p in tests], correction)):
        if p >= alpha:
            out.tied[key].add(method)
    return out
