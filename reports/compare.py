"""Regression compare between two runs: paired bootstrap CI of the per-clip difference per metric."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from moee_bench.metrics.keys import KEYS
from moee_bench.reports.bootstrap import paired_diff_ci


@dataclass
class Verdict:
    key: str
    method: str
    base: float
    new: float
    diff: float
    lo: float
    hi: float
    n: int
    verdict: str      # regressed | improved | no significant change | not comparable


def compare_tables(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = 0.0, metrics: list[str] | None = None,
                   n_boot: int = 2000, seed: int = 0) -> list[Verdict]:
    """Per method and clip-averaged metric: regression when the whole CI of (new - base) lies on the worse side
    beyond ``threshold`` (in the metric's units); improvement symmetric."""
    out: list[Verdict] = []
    keys = metrics or [k for k, i in KEYS.items() if i.kind == "clip_mean" and not i.closer_to_gt]  # ≈GT keys have no direction
    for method in sorted(set(base.method) & set(new.method)):
        b = base[base.method == method].set_index("clip_id")
        n = new[new.method == method].set_index("clip_id")
        common = b.index.intersection(n.index)
        for k in keys:
            if k not in b.columns or k not in n.columns:
                continue
            bv, nv = b.loc[common, k].to_numpy(float), n.loc[common, k].to_numpy(float)
            ok = np.isfinite(bv) & np.isfinite(nv)
            if ok.sum() < 2:
                out.append(Verdict(k, method, np.nan, np.nan, np.nan, np.nan, np.nan, int(ok.sum()), "not comparable"))
                continue
            d, lo, hi = paired_diff_ci(bv[ok], nv[ok], n_boot=n_boot, seed=seed)
            sign = 1.0 if KEYS[k].higher_is_better else -1.0
            worse_hi, worse_lo = sorted((sign * lo, sign * hi))
            if worse_lo > threshold:
                v = "improved"
            elif worse_hi < -threshold:
                v = "regressed"
            else:
                v = "no significant change"
            out.append(Verdict(k, method, float(bv[ok].mean()), float(nv[ok].mean()), d, lo, hi, int(ok.sum()), v))
    return out


def render(verdicts: list[Verdict], base_name: str, new_name: str) -> str:
    lines = [f"# moee-bench compare: `{base_name}` -> `{new_name}`", "",
             "Paired bootstrap over clips scored in both runs (95% CI of new - base).", "",
             "| method | metric | base | new | diff [95% CI] | N | verdict |", "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        f = KEYS[v.key].fmt
        if v.verdict == "not comparable":
            lines.append(f"| `{v.method}` | {KEYS[v.key].label} | — | — | — | {v.n} | not comparable |")
            continue
        mark = {"regressed": "❌ regressed", "improved": "✅ improved"}.get(v.verdict, v.verdict)
        lines.append(f"| `{v.method}` | {KEYS[v.key].label} {'↑' if KEYS[v.key].higher_is_better else '↓'} | "
                     f"{f.format(v.base)} | {f.format(v.new)} | {v.diff:+.4f} [{v.lo:+.4f}, {v.hi:+.4f}] | {v.n} | {mark} |")
    return "\n".join(lines) + "\n"
