"""``moee-bench bench stats``: every interval and test the reports print, checked by simulation with known truth.

Scores are drawn from known distributions (clips nested in identities with between-identity variance;
per-frame scores with clip lengths that matter; Bernoulli and bounded compound-emotion scores; low-dimensional
feature sets for KID and the Fréchet distance, whose population value is known) and each estimator's 95 %
interval is checked for coverage over ``--sims`` simulated data sets at N = ``--sizes`` clips; ``compare``'s
paired test gets its false-positive rate under the null and its power at two effect sizes. The target is
95 % ± 2 points; a row outside it is flagged with the measured gap and the estimator that fixes it. Not a
timed benchmark: it prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap
from scipy.stats import t as student_t

from moee_bench.bench.core.paths import write_text_atomic
from moee_bench.metrics.visual.kid import kernel_distance
from moee_bench.reports.resampling import MIN_IDENTITIES, choose, paired_test, resample_counts, weighted_means

LEVEL = 0.95
TOL = 0.02                 # the target band: 95 % ± 2 points
CLIPS_PER_ID = 3           # identities of 3 clips: N = 10 -> 3 identities, 30 -> 10, 100 -> 33
ICC = 0.3                  # share of a clip score's variance that is the identity's


@dataclass
class Row:
    interval: str
    estimator: str
    n: int
    coverage: float
    width: float
    bias: float = float("nan")
    note: str = ""

    def flag(self) -> str:
        if self.coverage < LEVEL - TOL:
            return f"UNDER-covers by {100 * (LEVEL - self.coverage):.1f} pts" + (f"; {self.note}" if self.note else "")
        if self.coverage > LEVEL + TOL:
            return f"over-covers by {100 * (self.coverage - LEVEL):.1f} pts (conservative)" + (
                f"; {self.note}" if self.note else "")
        return "ok"


def _percentile(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - LEVEL) / 2
    return np.quantile(draws, a, axis=-1), np.quantile(draws, 1 - a, axis=-1)


def _cover(lo: np.ndarray, hi: np.ndarray, truth: float | np.ndarray) -> tuple[float, float]:
    lo, hi = np.asarray(lo), np.asarray(hi)
    return float(np.mean((lo <= truth) & (truth <= hi))), float(np.mean(hi - lo))


def _student_t(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the (ratio-linearised, when weighted) mean per row: est ± t(n-1) · SE."""
    n = values.shape[-1]
    w = np.ones_like(values) if weights is None else weights
    m = (values * w).sum(-1) / w.sum(-1)
    resid = w * (values - m[:, None]) / w.mean(-1, keepdims=True)
    se = resid.std(-1, ddof=1) / np.sqrt(n)
    q = student_t.ppf(0.5 + LEVEL / 2, n - 1)
    return m - q * se, m + q * se


def _bca(data: tuple[np.ndarray, ...], stat, boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """scipy's BCa interval, for every simulated data set at once (rows)."""
    r = bootstrap(data, stat, n_resamples=boot, axis=-1, vectorized=True, paired=len(data) > 1, method="BCa",
                  confidence_level=LEVEL, rng=rng, batch=max(1, 200_000 // max(1, data[0].size)))
    return r.confidence_interval.low, r.confidence_interval.high


def _nested(rng: np.random.Generator, sims: int, n: int, icc: float = ICC, per_id: int = CLIPS_PER_ID,
            skew: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(sims, n)`` clip scores of mean 0 (identity effect + clip effect, total variance 1) and the identities."""
    groups = np.arange(n) // per_id
    k = groups.max() + 1
    a = rng.normal(0, np.sqrt(icc), (sims, k))[:, groups]
    e = rng.standard_gamma(4.0, (sims, n)) if skew else rng.normal(0, 1, (sims, n))   # skewed like PSNR/LPIPS
    if skew:
        e = (e - 4.0) / 2.0
    return a + np.sqrt(1 - icc) * e, groups


def _boot_rows(values: np.ndarray, weights: np.ndarray | None, groups: np.ndarray | None, unit: str, boot: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of the (weighted) mean per simulated row, our resampling (clip or cluster)."""
    lo, hi = np.empty(len(values)), np.empty(len(values))
    for s in range(len(values)):
        c = resample_counts(values.shape[1], groups, boot, rng, unit)
        d = weighted_means(values[s], None if weights is None else weights[s], c)
        lo[s], hi[s] = _percentile(d)
    return lo, hi


# -------------------------------------------------------------------------------------------- clip means
def clip_mean_rows(sims: int, n: int, boot: int, rng: np.random.Generator) -> list[Row]:
    out = []
    iid, _ = _nested(rng, sims, n, icc=0.0)
    lo, hi = _boot_rows(iid, None, None, "clip", boot, rng)
    out.append(Row("clip mean, independent clips", "percentile, clips (leaderboard CI)", n, *_cover(lo, hi, 0.0),
                   note="at small N use Student t or BCa (rows below)"))
    lo, hi = _bca((iid,), np.mean, boot, rng)
    out.append(Row("clip mean, independent clips", "BCa, clips (scipy)", n, *_cover(lo, hi, 0.0)))
    out.append(Row("clip mean, independent clips", "Student t", n, *_cover(*_student_t(iid), 0.0)))
    nested, groups = _nested(rng, sims, n)
    lo, hi = _boot_rows(nested, None, None, "clip", boot, rng)
    k = groups.max() + 1
    out.append(Row(f"clip mean, {k} identities (ICC {ICC})", "percentile, clips", n, *_cover(lo, hi, 0.0),
                   note=f"clips of one identity are not independent: cluster bootstrap (>= {MIN_IDENTITIES} identities)"))
    if k >= 2:
        lo, hi = _boot_rows(nested, None, groups, "cluster", boot, rng)
        used = choose(list(groups)).unit
        out.append(Row(f"clip mean, {k} identities (ICC {ICC})",
                       f"percentile, cluster (identities, clips){' [auto]' if used == 'cluster' else ''}", n,
                       *_cover(lo, hi, 0.0), note=f"{k} identities: few clusters; still closer than clip resampling "
                                                  "(`--resample cluster`)" if k < MIN_IDENTITIES else ""))
    return out


def frame_weighted_rows(sims: int, n: int, boot: int, rng: np.random.Generator) -> list[Row]:
    """Per-frame scores; a clip's mean depends on its length, so the frame-weighted mean differs from the clip mean."""
    support = np.arange(25, 251)
    mu = lambda L: 0.5 * (L - 137.5) / 65.0                          # noqa: E731 (longer clips score higher)
    truth = float((support * mu(support)).sum() / support.sum())      # the population frame-weighted mean
    lengths = rng.integers(25, 251, (sims, n)).astype(float)
    clip_sd = 0.5
    v = mu(lengths) + rng.normal(0, clip_sd, (sims, n)) + rng.normal(0, 1.0, (sims, n)) / np.sqrt(lengths)
    lo, hi = _boot_rows(v, lengths, None, "clip", boot, rng)
    rows = [Row("frame-weighted mean (PSNR, SSIM, LPIPS...)", "percentile, clips (leaderboard CI)", n,
                *_cover(lo, hi, truth), note="at small N use Student t or BCa (rows below)")]
    stat = lambda x, w, axis=-1: (x * w).sum(axis) / w.sum(axis)      # noqa: E731
    lo, hi = _bca((v, lengths), stat, boot, rng)
    rows.append(Row("frame-weighted mean (PSNR, SSIM, LPIPS...)", "BCa, clips (scipy)", n, *_cover(lo, hi, truth)))
    rows.append(Row("frame-weighted mean (PSNR, SSIM, LPIPS...)", "Student t (linearised ratio)", n,
                    *_cover(*_student_t(v, lengths), truth)))
    return rows


def compound_rows(sims: int, n: int, boot: int, rng: np.random.Generator) -> list[Row]:
    """Compound-emotion metrics: ``compound_top2`` (0/1 per clip, p = 0.3), ``compound_mix`` (Beta(2, 3), in [0, 1])."""
    rows = []
    for name, draw, truth in (("compound_top2 (0/1 per clip, p 0.3)", lambda: (rng.random((sims, n)) < 0.3) * 1.0, 0.3),
                              ("compound_mix (Beta(2,3) per clip)", lambda: rng.beta(2, 3, (sims, n)), 0.4)):
        x = draw()
        lo, hi = _boot_rows(x, None, None, "clip", boot, rng)
        rows.append(Row(name, "percentile, clips (leaderboard CI)", n, *_cover(lo, hi, truth), note="use BCa (row below)"))
        with np.errstate(invalid="ignore", divide="ignore"):
            with warnings.catch_warnings():      # BCa on an all-0 or all-1 sample is degenerate (NaN): counted as a miss
                warnings.simplefilter("ignore")
                lo, hi = _bca((x,), np.mean, boot, rng)
        rows.append(Row(name, "BCa, clips (scipy)", n, *_cover(np.nan_to_num(lo, nan=np.inf),
                                                                np.nan_to_num(hi, nan=-np.inf), truth)))
        rows[-1].width = float(np.nanmean(hi - lo))
    return rows


# -------------------------------------------------------------------------------------------- set-level metrics
def _frame_features(rng: np.random.Generator, n: int, frames: int, d: int, shift: np.ndarray,
                    scale: float) -> np.ndarray:
    """``(n, frames, d)``: per clip a random centre (cov 0.5 I) plus per-frame noise (cov 0.5 I), shifted/scaled."""
    centre = rng.normal(0, np.sqrt(0.5), (n, 1, d))
    return shift + scale * (centre + rng.normal(0, np.sqrt(0.5), (n, frames, d)))


def _fd_batch(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Fréchet distance for batches of means (B, d) and covariances (B, d, d) (eigh form)."""
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))[:, None, :]) @ np.swapaxes(v, 1, 2)
    inner = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return ((m1 - m2) ** 2).sum(-1) + np.trace(s1, axis1=1, axis2=2) + np.trace(s2, axis1=1, axis2=2) \
        - 2 * np.sqrt(np.clip(inner, 0, None)).sum(-1)


def _moments(feats: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled-frame mean and unbiased covariance of each resample (counts over clips)."""
    f = feats.shape[1]
    s = feats.sum(1)                                      # (n, d)
    o = np.einsum("nfi,nfj->nij", feats, feats)           # (n, d, d)
    tot = counts.sum(1) * f
    mean = counts @ s / tot[:, None]
    second = np.einsum("bn,nij->bij", counts.astype(float), o)
    cov = (second - tot[:, None, None] * mean[:, :, None] * mean[:, None, :]) / (tot - 1)[:, None, None]
    return mean, cov


def set_level_rows(sims: int, n: int, boot: int, rng: np.random.Generator, d: int = 4, frames: int = 4) -> list[Row]:
    """FID/FVD's Fréchet distance and KID ± SE at ``d`` dimensions, against the population value."""
    shift, scale = np.full(d, 0.3), 1.2
    truth_fd = float(d * 0.09 + d * (1 + scale ** 2 - 2 * scale))   # N(0, I) vs N(0.3, 1.44 I), frames pooled
    cover = {"percentile": [], "basic": []}
    widths = {"percentile": [], "basic": []}
    est = []
    kid_hits, kid_w, kid_est = [], [], []
    truth_kid = _population_kid(rng, d, shift, scale)
    ones = np.ones((1, n), np.int64)
    for _ in range(sims):
        real = _frame_features(rng, n, frames, d, np.zeros(d), 1.0)
        fake = _frame_features(rng, n, frames, d, shift, scale)
        mr, sr = _moments(real, ones)
        mf, sf = _moments(fake, ones)
        fd = float(_fd_batch(mf, sf, mr, sr)[0])
        est.append(fd)
        c = resample_counts(n, None, boot, rng, "clip")     # clips resampled, both sides together (set_metric_ci)
        draws = _fd_batch(*_moments(fake, c), *_moments(real, c))
        lo, hi = _percentile(draws)
        for name, (a, b) in (("percentile", (lo, hi)), ("basic", (2 * fd - hi, 2 * fd - lo))):
            cover[name].append(a <= truth_fd <= b)
            widths[name].append(b - a)
        k = kernel_distance(real.reshape(-1, d), fake.reshape(-1, d), n_subsets=1, seed=0)
        kid_est.append(k["mean"])
        kid_hits.append(abs(k["mean"] - truth_kid) <= 1.96 * k["se"])
        kid_w.append(2 * 1.96 * k["se"])
    bias = float(np.mean(est) - truth_fd)
    rows = [Row(f"Fréchet distance (FID/FVD), d={d}, {frames} frames/clip", "percentile, clips (--set-bootstrap)", n,
                float(np.mean(cover["percentile"])), float(np.mean(widths["percentile"])), bias,
                note=f"plug-in bias {bias:+.3f} ({100 * bias / truth_fd:+.0f}% of {truth_fd:.3f}); "
                     "use the basic (bias-reflected) interval, or more clips"),
            Row(f"Fréchet distance (FID/FVD), d={d}, {frames} frames/clip", "basic (2*est - percentile)", n,
                float(np.mean(cover["basic"])), float(np.mean(widths["basic"])), bias)]
    kbias = float(np.mean(kid_est) - truth_kid)
    rows.append(Row(f"KID/KVD ± 1.96 SE, d={d}, {frames} frames/clip", "U-statistic SE (frames as independent)", n,
                    float(np.mean(kid_hits)), float(np.mean(kid_w)), kbias,
                    note="frames of one clip are not independent: bootstrap clips (--set-bootstrap)"))
    return rows


def _population_kid(rng: np.random.Generator, d: int, shift: np.ndarray, scale: float, pairs: int = 400_000) -> float:
    """MMD² of the cubic kernel between the two frame distributions, from independent pairs (its definition)."""
    def draw(sh: np.ndarray, sc: float) -> np.ndarray:
        return sh + sc * rng.normal(0, 1, (pairs, d))       # frame marginal: N(sh, sc² I)

    def k(x: np.ndarray, y: np.ndarray) -> float:
        return float(((x * y).sum(1) / d + 1.0) ** 3 @ np.ones(len(x)) / len(x))

    x1, x2, y1, y2 = draw(np.zeros(d), 1.0), draw(np.zeros(d), 1.0), draw(shift, scale), draw(shift, scale)
    return k(x1, x2) + k(y1, y2) - 2 * k(x1, y1)


# -------------------------------------------------------------------------------------------- compare's test
def compare_rows(sims: int, n: int, boot: int, rng: np.random.Generator) -> list[dict]:
    """False-positive rate at alpha 0.05 (no change) and power at effects of 0.3 and 0.6 SD of a clip's
    difference, clips nested in identities (the identity explains ICC of the difference's variance)."""
    out = []
    modes = ["clip", "auto"]
    if choose(list(np.arange(n) // CLIPS_PER_ID)).unit == "clip":
        modes.append("cluster")                # what --resample cluster gives where auto falls back to clips
    for mode in modes:
        rates = {}
        for effect in (0.0, 0.3, 0.6):
            hits = 0
            for s in range(sims):
                diffs, groups = _nested(rng, 1, n)
                base = rng.normal(25, 1, n)
                t = paired_test(base, base + effect + diffs[0], groups=list(groups), mode=mode, n_boot=boot,
                                seed=int(rng.integers(1 << 31)))
                hits += t.p < 0.05
            rates[effect] = hits / sims
        res = choose(list(np.arange(n) // CLIPS_PER_ID), mode)
        out.append({"estimator": res.name.split(" (")[0] + {"auto": " (auto)", "cluster": " (--resample cluster)"}.get(
                        mode, ""), "n": n,
                    "identities": res.n_identities, "fpr": rates[0.0], "power_0.3sd": rates[0.3],
                    "power_0.6sd": rates[0.6]})
    return out


def min_identities_rows(sims: int, boot: int, rng: np.random.Generator) -> list[Row]:
    """Coverage of the cluster bootstrap by number of identities (3 clips each): what MIN_IDENTITIES rests on."""
    rows = []
    for k in (4, 6, 8, 12, 20):
        v, g = _nested(rng, sims, k * CLIPS_PER_ID)
        lo, hi = _boot_rows(v, None, g, "cluster", boot, rng)
        rows.append(Row(f"clip mean, {k} identities x {CLIPS_PER_ID} clips", "percentile, cluster", k * CLIPS_PER_ID,
                        *_cover(lo, hi, 0.0),
                        note=f"below {MIN_IDENTITIES} identities `auto` resamples clips and says so" if k < MIN_IDENTITIES
                        else ""))
    return rows


def run(args: argparse.Namespace) -> int:
    """Run every simulation and print the tables (coverage per interval; FPR and power of compare)."""
    sims, boot = int(getattr(args, "sims", None) or 1000), int(getattr(args, "boot", None) or 500)
    sizes = [int(x) for x in str(getattr(args, "sizes", None) or "10,30,100").split(",") if x.strip()]
    rng = np.random.default_rng(int(getattr(args, "seed", 0) or 0))
    t0 = time.perf_counter()
    rows: list[Row] = []
    for n in sizes:
        rows += clip_mean_rows(sims, n, boot, rng)
        rows += frame_weighted_rows(sims, n, boot, rng)
        rows += compound_rows(sims, n, boot, rng)
        rows += set_level_rows(sims, n, max(100, boot // 3), rng)
    rows += min_identities_rows(sims, boot, rng)
    tests = [r for n in sizes for r in compare_rows(sims, n, max(200, boot // 2), rng)]
    seconds = time.perf_counter() - t0
    lines = [f"== bench stats: {sims} simulated data sets per row, {boot} bootstrap resamples "
             f"(set-level {max(100, boot // 3)}), target {LEVEL:.0%} ± {100 * TOL:.0f} points; "
             f"Monte-Carlo SE of a coverage ~{100 * np.sqrt(LEVEL * (1 - LEVEL) / sims):.1f} points", "",
             "| interval | estimator | N | coverage | mean width | bias | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        bias = "" if not np.isfinite(r.bias) else f"{r.bias:+.4f}"
        lines.append(f"| {r.interval} | {r.estimator} | {r.n} | {100 * r.coverage:.1f}% | {r.width:.4g} | {bias} | "
                     f"{r.flag()} |")
    lines += ["", f"compare's paired test at alpha 0.05 (two-sided), clips nested in identities of {CLIPS_PER_ID} clips "
                  f"(ICC {ICC}); effects in SD of a clip's difference; {sims} simulated comparisons per cell:", "",
              "| estimator | N | identities | false-positive rate | power, 0.3 SD | power, 0.6 SD | verdict |",
              "|---|---|---|---|---|---|---|"]
    fpr_band = 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
    for t in tests:
        fix = ("too few identities for any bootstrap to hold its level: add identities" if "cluster" in t["estimator"]
               else "use cluster resampling")
        ok = "ok" if t["fpr"] <= fpr_band else f"FPR above 5 % + noise ({100 * fpr_band:.1f} %): {fix}"
        lines.append(f"| {t['estimator']} | {t['n']} | {t['identities']} | {100 * t['fpr']:.1f}% | "
                     f"{100 * t['power_0.3sd']:.1f}% | {100 * t['power_0.6sd']:.1f}% | {ok} |")
    lines += ["", f"done in {seconds:.1f} s"]
    print("\n".join(lines))
    if getattr(args, "json", None):
        doc = {"sims": sims, "boot": boot, "sizes": sizes, "seconds": seconds,
               "coverage": [{**r.__dict__, "verdict": r.flag()} for r in rows], "compare": tests}
        write_text_atomic(args.json, json.dumps(doc, indent=1, default=float), "--json")
    return 0
