"""Regression compare between two runs: paired bootstrap CI of the per-clip difference per metric.

The difference is that of the estimator the leaderboard shows (frame-weighted means for the
frame-averaged metrics, :data:`moee_bench.metrics.core.keys.KeyInfo.weight`). Every caveat stored with either run's
aggregates is listed under the table; a GT-aligned metric of a method that re-crops the face is
``not comparable`` (with the reason), never a regression or an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moee_bench.metrics.core.keys import KEYS
from moee_bench.reports.bootstrap import paired_diff_ci, weighted_mean


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
    verdict: str      # regressed | improved | no significant change | not comparable | missing
    reason: str = ""
    flags: str = ""   # footnote marks: ‡ not comparable, † a warning on either side


@dataclass
class RunCaveats:
    """What the compare needs to know about one run besides its per-clip table (from its store)."""

    not_comparable: dict[str, dict[str, str]] = field(default_factory=dict)   # method -> key -> reason
    warned: dict[str, dict[str, str]] = field(default_factory=dict)           # method -> key -> warning
    lines: dict[str, list[str]] = field(default_factory=dict)                 # method -> caveat lines


def run_caveats(agg: pd.DataFrame) -> RunCaveats:
    """Collect the caveats stored with a run's aggregates (``aggregates.extra``)."""
    import json

    out = RunCaveats()
    if agg.empty or "extra" not in agg.columns:
        return out
    for method, key, extra in zip(agg["method"], agg["key"], agg["extra"]):
        try:
            e = json.loads(extra) if extra else {}
        except (TypeError, ValueError):
            continue
        if e.get("not_comparable"):
            out.not_comparable.setdefault(method, {})[key] = e["not_comparable"]
        for what in ("warning", "unverified"):
            if e.get(what):
                out.warned.setdefault(method, {})[key] = e[what]
        if key == "caveats":
            out.lines[method] = list(e.get("items") or [])
    return out


def _num(v: object) -> bool:
    """Whether an aggregate cell holds a finite number (None/NaN: not computed)."""
    return v is not None and np.isfinite(float(v))


def _finite(df: pd.DataFrame, key: str) -> np.ndarray:
    if df.empty or key not in df.columns:
        return np.zeros(0)
    v = pd.to_numeric(df[key], errors="coerce").to_numpy(float)
    return v[np.isfinite(v)]


def compare_tables(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = 0.0, metrics: list[str] | None = None,
                   n_boot: int = 2000, seed: int = 0, base_caveats: RunCaveats | None = None,
                   new_caveats: RunCaveats | None = None, base_agg: pd.DataFrame | None = None,
                   new_agg: pd.DataFrame | None = None) -> list[Verdict]:
    """Per method and clip-averaged metric: regression when the whole CI of (new - base) lies on the worse side
    beyond ``threshold`` (in the metric's units); improvement symmetric. A key marked not comparable in either
    run is ``not comparable`` with its reason.

    A metric (or a whole method) the base run has values for and the new run has none is the verdict
    ``missing``, never dropped; set-level metrics (FID, FVD) are checked for that through the
    aggregates when ``base_agg``/``new_agg`` are given."""
    out: list[Verdict] = []
    bc, nc = base_caveats or RunCaveats(), new_caveats or RunCaveats()
    keys = metrics or [k for k, i in KEYS.items() if i.kind == "clip_mean" and not i.closer_to_gt]  # ≈GT keys have no direction
    empty = pd.DataFrame(columns=["clip_id"])
    for method in sorted(set(base.method) if not base.empty else []):
        b = base[base.method == method].set_index("clip_id")
        n = (new[new.method == method] if not new.empty else empty).set_index("clip_id")
        common = b.index.intersection(n.index)
        for k in keys:
            if len(_finite(b, k)) == 0:
                continue
            if len(_finite(n, k)) == 0:
                bm = float(_finite(b, k).mean())
                out.append(Verdict(k, method, bm, np.nan, np.nan, np.nan, np.nan, 0, "missing"))
                continue
            w = KEYS[k].weight
            bv, nv = b.loc[common, k].to_numpy(float), n.loc[common, k].to_numpy(float)
            ok = np.isfinite(bv) & np.isfinite(nv)
            bw = nw = None
            if w and w in b.columns and w in n.columns:
                bw, nw = b.loc[common, w].to_numpy(float), n.loc[common, w].to_numpy(float)
                ok &= np.isfinite(bw) & np.isfinite(nw) & (bw > 0) & (nw > 0)
                bw, nw = bw[ok], nw[ok]
            warn = "; ".join(x for x in (bc.warned.get(method, {}).get(k), nc.warned.get(method, {}).get(k)) if x)
            flags = "†" if warn else ""
            nc_reason = nc.not_comparable.get(method, {}).get(k) or bc.not_comparable.get(method, {}).get(k)
            if ok.sum() < 2:
                out.append(Verdict(k, method, np.nan, np.nan, np.nan, np.nan, np.nan, int(ok.sum()), "not comparable",
                                   f"fewer than 2 clips scored in both runs; {warn}".rstrip("; "), flags))
                continue
            d, lo, hi = paired_diff_ci(bv[ok], nv[ok], base_weights=bw, new_weights=nw, n_boot=n_boot, seed=seed)
            bm, nm = weighted_mean(bv[ok], bw), weighted_mean(nv[ok], nw)
            if nc_reason:
                out.append(Verdict(k, method, bm, nm, d, lo, hi, int(ok.sum()), "not comparable", nc_reason, "‡" + flags))
                continue
            sign = 1.0 if KEYS[k].higher_is_better else -1.0
            worse_hi, worse_lo = sorted((sign * lo, sign * hi))
            if worse_lo > threshold:
                v = "improved"
            elif worse_hi < -threshold:
                v = "regressed"
            else:
                v = "no significant change"
            out.append(Verdict(k, method, bm, nm, d, lo, hi, int(ok.sum()), v, warn, flags))
    if base_agg is not None and new_agg is not None and not base_agg.empty:
        for (method, key), v in base_agg.set_index(["method", "key"])["value"].items():
            info = KEYS.get(key)
            if info is None or info.kind != "set" or (metrics and key not in metrics) or not _num(v):
                continue
            nv = new_agg[(new_agg.method == method) & (new_agg.key == key)]["value"] if not new_agg.empty else []
            if not len(nv) or not _num(nv.iloc[0]):
                out.append(Verdict(key, method, float(v), np.nan, np.nan, np.nan, np.nan, 0, "missing"))
    return out


def render(verdicts: list[Verdict], base_name: str, new_name: str, base_caveats: RunCaveats | None = None,
           new_caveats: RunCaveats | None = None) -> str:
    lines = [f"# moee-bench compare: `{base_name}` -> `{new_name}`", "",
             "Paired bootstrap over clips scored in both runs (95% CI of new - base; frame-weighted means for "
             "frame-averaged metrics). ‡ not comparable (never a verdict); † a warning on either side.", "",
             "| method | metric | base | new | diff [95% CI] | N | verdict |", "|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for v in verdicts:
        f = KEYS[v.key].fmt
        label = f"{KEYS[v.key].label} {'↑' if KEYS[v.key].higher_is_better else '↓'}{v.flags}"
        if v.reason:
            notes.append(f"- `{v.method}` {KEYS[v.key].label}{v.flags}: {v.reason}")
        if v.verdict == "not comparable" and not np.isfinite(v.diff):
            lines.append(f"| `{v.method}` | {label} | — | — | — | {v.n} | not comparable |")
            continue
        if v.verdict == "missing":
            lines.append(f"| `{v.method}` | {KEYS[v.key].label} | {f.format(v.base)} | — | — | 0 | "
                         "⚠️ missing in the new run |")
            continue
        mark = {"regressed": "❌ regressed", "improved": "✅ improved"}.get(v.verdict, v.verdict)
        lines.append(f"| `{v.method}` | {label} | {f.format(v.base)} | {f.format(v.new)} | "
                     f"{v.diff:+.4f} [{v.lo:+.4f}, {v.hi:+.4f}] | {v.n} | {mark} |")
    for name, cav in ((base_name, base_caveats), (new_name, new_caveats)):
        for method, items in sorted((cav.lines if cav else {}).items()):
            notes += [f"- `{name}` `{method}`: {x}" for x in items]
    if notes:
        lines += ["", "Caveats:", "", *dict.fromkeys(notes)]
    return "\n".join(lines) + "\n"
