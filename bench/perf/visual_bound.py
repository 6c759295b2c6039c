"""``bench metrics``: the bound each of our sides is measured against, and the one table of ratios beside bounds.

The bound (issue 30) is the work a side cannot do without, at the rates our own code reaches in this process,
measured in every round of the same run (so it sees the same machine load as the sides it bounds):

* cold (``--no-cache``): Inception on every frame (prediction and GT) + LPIPS on every pair + one Fréchet
  distance + decoding both videos;
* warm (GT features in the feature cache): Inception on the prediction frames only + LPIPS + one Fréchet
  distance + decoding both videos (LPIPS, PSNR and SSIM still read the GT frames);
* bf16: the cold bound at the bf16 rates.

Decoding is in the bound because it cannot overlap with the networks here: on 2 cores the networks keep both
busy (oneDNN uses every core), so decode time adds to theirs. Not in the bound: interpreter start, imports,
model construction, PSNR and SSIM. The network rates are those of the metrics' own extractors
(``fid._Extractor``, ``lpips._Extractor``, chunks of the evaluator's 32 frames, after one warm-up chunk) on the
first ``max_pairs`` frame pairs; the Fréchet distance is one :func:`metrics.core.frechet.frechet_distance` call
(FID's method) on those features' moments.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from moee_bench.bench.core import media
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.base import ClipInput, FrameChunk, VideoChunk
from moee_bench.metrics.core.frechet import Moments, frechet_distance
from moee_bench.metrics.core.registry import MetricOptions, build_metrics
from moee_bench.metrics.visual import fid as fid_metric, lpips as lpips_metric

CHUNK = 32                   # the evaluator's default chunk (metrics.core.evaluate.evaluate)
#: the issue's targets per side: (most ours/bound, least chain/ours)
TARGETS: dict[str, tuple[float | None, float | None]] = {"fp32": (1.15, None), "fp32 warm": (1.15, 3.8),
                                                          "bf16": (None, 5.0)}
#: profile lines (visual_profile.ORDER) that stand for a bound component
BOUND_LINES = {"inception": "Inception network", "lpips": "LPIPS", "frechet": "Frechet distance (ours eigh, chain sqrtm)",
               "decode": "decode (H.264 -> RGB)"}


@dataclass
class Rates:
    """Seconds per unit of each bound component, measured in one round."""

    decode: float                       # per frame pair (both videos)
    frechet: float                      # per call
    inception: dict[str, float]         # precision -> per frame
    lpips: dict[str, float]             # precision -> per pair


@dataclass
class Counts:
    pred: int
    gt: int
    pairs: int


def bound_seconds(side: str, r: Rates, n: Counts) -> dict[str, float]:
    """The bound of ``side`` (``fp32``, ``fp32 warm`` or ``bf16``) in seconds, per component and ``total``."""
    precision = side.split()[0]
    frames = n.pred if side.endswith("warm") else n.pred + n.gt
    parts = {"inception": frames * r.inception[precision], "lpips": n.pairs * r.lpips[precision],
             "frechet": r.frechet, "decode": n.pairs * r.decode}
    return {**parts, "total": sum(parts.values())}


class BoundMeter:
    """Measures :class:`Rates` in this process; each call of :meth:`measure` is one round's measurement."""

    def __init__(self, clips: Sequence[ClipInput], wdir: str, precisions: Sequence[str], max_pairs: int = 100) -> None:
        pred, gt = [], []
        for c in clips:
            p, g = media.read_frames(c.pred), media.read_frames(c.gt)
            pred.append(p)
            gt.append(g)
        self.counts = Counts(sum(map(len, pred)), sum(map(len, gt)), sum(min(len(p), len(g)) for p, g in zip(pred, gt)))
        self.pred = np.concatenate(pred)[:max_pairs]
        self.gt = np.concatenate(gt)[:max_pairs]
        self.sample = list(clips)[: max(1, -(-max_pairs // max(1, len(pred[0]))))]     # the clips max_pairs come from
        self.models: dict[str, tuple[Any, Any]] = {}
        for p in precisions:
            opts = MetricOptions(weights=WeightsOptions(wdir, allow_unverified=True), precision=p)
            ms, missing = build_metrics(["lpips", "fid"], opts)
            if missing:
                raise RuntimeError(f"bound: {missing}")
            self.models[p] = (ms[0], ms[1])
        self.frechet_method = self.models[precisions[0]][1].frechet
        self.history: list[Rates] = []

    def _decode(self) -> float:
        """Seconds per frame pair to decode the sample clips (both videos), as the evaluator's reader does."""
        t, n = time.perf_counter(), 0
        for c in self.sample:
            counts = [sum(len(x) for x in media.FrameReader(v, fps=25.0, chunk=CHUNK)) for v in (c.pred, c.gt)]
            n += min(counts)
        return (time.perf_counter() - t) / max(1, n)

    def measure(self) -> Rates:
        inc, lp = {}, {}
        feats: tuple[np.ndarray, np.ndarray] | None = None
        for p, (lm, fm) in self.models.items():
            fid_metric._Extractor(fm).add(VideoChunk(0, self.pred[:CHUNK]))          # warm-up (oneDNN primitives)
            lpips_metric._Extractor(lm).add(FrameChunk(0, self.pred[:CHUNK], self.gt[:CHUNK]))
            out = []
            t = time.perf_counter()
            for frames in (self.pred, self.gt):
                ex = fid_metric._Extractor(fm)
                for s in range(0, len(frames), CHUNK):
                    ex.add(VideoChunk(s, frames[s:s + CHUNK]))
                out.append(ex.finish()["x"])
            inc[p] = (time.perf_counter() - t) / (len(self.pred) + len(self.gt))
            feats = feats or (out[0], out[1])
            ex = lpips_metric._Extractor(lm)
            t = time.perf_counter()
            for s in range(0, len(self.pred), CHUNK):
                ex.add(FrameChunk(s, self.pred[s:s + CHUNK], self.gt[s:s + CHUNK]))
            lp[p] = (time.perf_counter() - t) / len(self.pred)
        mom = []
        for x in feats:
            m = Moments(x.shape[1])
            m.add(x)
            mom.append(m.mean_cov(True))
        t = time.perf_counter()
        frechet_distance(*mom[0], *mom[1], method=self.frechet_method)
        fr = time.perf_counter() - t
        r = Rates(self._decode(), fr, inc, lp)
        self.history.append(r)
        return r


def _spread(xs: Sequence[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


def differences(ours: Mapping[str, float], ref: Mapping[str, float]) -> str:
    """``FID rel x, LPIPS abs y, PSNR abs z, SSIM abs w`` of ``ours`` against ``ref``."""
    return (f"FID rel {_rel(float(ours['fid']), float(ref['fid'])):.2g}, "
            + ", ".join(f"{m.upper()} abs {abs(float(ours[m]) - float(ref[m])):.2g}" for m in ("lpips", "psnr", "ssim")))


def _explain(profile: Mapping[str, float] | None, bound: Mapping[str, float], warm: bool) -> str:
    """The two profile lines (``--profile``'s run of the same clips) most over the bound: each line's seconds above
    its bound component (a line outside the bound counts whole); for the warm side, from the cold profile with half
    its Inception time (the GT half is read from the cache)."""
    if profile is None:
        return "run with --profile for the line that explains it"
    over: dict[str, float] = {}
    for line, secs in profile.items():
        comp = next((k for k, v in BOUND_LINES.items() if v == line), None)
        if comp == "inception" and warm:       # the profile is a cold run: half its Inception frames are GT
            secs = secs / 2
        over[line] = secs - (bound[comp] if comp else 0.0)
    top = sorted(over.items(), key=lambda kv: -kv[1])[:2]
    return "profile: " + ", ".join(f"{line} +{s:.1f} s" for line, s in top if s > 0)


def summary_rows(wall: Mapping[str, Sequence[float]], results: Mapping[str, Mapping[str, float]],
                 rates: Sequence[Rates], counts: Counts, sides: Sequence[str],
                 profiles: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """The table: per side (``fp32``, ``fp32 warm``, ``bf16``; wall seconds under ``"ours " + side``, the chain's under
    ``"chain"``, one entry per round, round i's bound from ``rates[i]``) its wall median (min-max), the ratio to the
    chain round by round, the bound, ours/bound round by round, the target and by how much it is missed; then the
    numbers' differences against the chain and bf16's drift against exact fp32. ``profiles``: ``ours fp32``/
    ``ours bf16`` line seconds of ``--profile``, to name the line that explains a missed target."""
    rows: dict[str, Any] = {
        "table": f"{'side':<11}{'wall s median (min-max)':>26}{'x chain (min-max)':>22}{'bound s':>9}"
                 f"{'ours/bound (min-max)':>24}  target",
        "  chain": f"{_spread(wall['chain']):>26}{'1':>22}{'-':>9}{'-':>24}  (the reference: PNG + pytorch-fid + loop)"}
    for side in sides:
        ours = wall[f"ours {side}"]
        ratio = [c / o for c, o in zip(wall["chain"], ours)]
        bounds = [bound_seconds(side, r, counts) for r in rates]
        over = [o / b["total"] for o, b in zip(ours, bounds)]
        b_med = statistics.median(b["total"] for b in bounds)
        max_over, min_ratio = TARGETS.get(side, (None, None))
        verdict = []
        if max_over is not None:
            miss = statistics.median(over) - max_over
            verdict.append(f"<= {max_over:.2f} of bound: " + ("met" if miss <= 0 else
                                                            f"NOT MET by {100 * miss:.1f} % of the bound "
                                                            f"({miss * b_med:.1f} s)"))
        if min_ratio is not None:
            short = min_ratio - statistics.median(ratio)
            verdict.append(f">= {min_ratio:g}x chain: " + ("met" if short <= 0 else f"NOT MET by {short:.2f}x"))
        if any("NOT MET" in v for v in verdict):
            prof = (profiles or {}).get(f"ours {side.split()[0]}")
            med_bound = {k: statistics.median(b[k] for b in bounds) for k in bounds[0]}
            verdict.append(_explain(prof, med_bound, side.endswith("warm")))
        rows[f"  ours {side}"] = (f"{_spread(ours):>26}{_spread(ratio, '{:.2f}') + 'x':>22}{b_med:>9.1f}"
                                  f"{_spread(over, '{:.2f}'):>24}  {'; '.join(verdict) or '-'}")
    rows["bound parts (s, median)"] = "; ".join(
        f"{s}: " + ", ".join(f"{c} {statistics.median(bound_seconds(s, r, counts)[c] for r in rates):.1f}"
                             for c in ("inception", "lpips", "frechet", "decode")) for s in sides)
    rows["bound rates (median)"] = (f"decode {1e3 * statistics.median(r.decode for r in rates):.2f} ms/pair, Frechet "
                                    f"{statistics.median(r.frechet for r in rates):.2f} s; " + ", ".join(
        f"{p}: Inception {1e3 * statistics.median(r.inception[p] for r in rates):.1f} ms/frame, LPIPS "
        f"{1e3 * statistics.median(r.lpips[p] for r in rates):.1f} ms/pair" for p in rates[0].inception))
    for side in sides:
        rows[f"  numbers, ours {side} vs chain"] = differences(results[f"ours {side}"], results["chain"])
    if "bf16" in sides:
        rows["  bf16 drift vs ours fp32"] = differences(results["ours bf16"], results["ours fp32"])
    return rows
