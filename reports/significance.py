"""The leaderboard's significance marks: per clip-averaged metric, which methods are not significantly different
from the best one (paired bootstrap on the clips both scored; identities then clips when known; the p-values
of every (metric, method) comparison of a run adjusted together, Holm by default)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moee_bench.metrics.core.keys import KEYS
from moee_bench.reports.resampling import CORRECTIONS, adjust, paired_test


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


def tied_with_best(clips: pd.DataFrame, best: dict[str, str], candidates: dict[str, list[str]], *,
                   alpha: float = 0.05, correction: str = "holm", resample: str = "auto", n_boot: int = 1000,
                   seed: int = 0) -> Ties:
    """For each key in ``best`` (key -> best method), test every method in ``candidates[key]`` against it.

    A method with fewer than 2 clips scored by both is not marked (it cannot be shown to be tied)."""
    out = Ties(correction=correction, alpha=alpha)
    tests: list[tuple[str, str, float]] = []
    for key, top in best.items():
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
