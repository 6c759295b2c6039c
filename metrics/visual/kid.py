"""KID and KVD: unbiased kernel (MMD^2) distances on the FID and FVD features, read back from the feature cache.

KID (Bińkowski et al., *Demystifying MMD GANs*, ICLR 2018) is the unbiased estimate of the squared MMD
with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``. As clean-fid's ``kernel_distance``
and torch-fidelity compute it: ``n_subsets`` (100) random subsets of ``m = min(N_real, N_fake, 1000)``
features drawn without replacement from each side, the unbiased MMD^2 of each, averaged. We report:

* ``kid`` / ``kvd``: that mean (clean-fid's number; torch-fidelity's ``kernel_inception_distance_mean``);
* ``<key>_std``: the standard deviation over subsets (torch-fidelity's ``..._std``);
* ``<key>_se``: the standard error of the estimate at the full sample size, from the variance estimator
  of the unbiased MMD^2 U-statistic that Bińkowski et al. use (``_mmd2_and_variance`` in their MMD-GAN
  code, ``var_at_m = min(N_real, N_fake)``), averaged over the subsets. Frames of one clip are not
  independent, so this understates the uncertainty over clips; the report's bootstrap over clips
  (``--set-bootstrap``) does not.

Features: ``kid`` uses the FID extractor (pytorch-fid InceptionV3 pool3, 2048-d per frame), ``kvd`` the
FVD extractor (I3D, 400-d per 16-frame window, the ``fvd_variant`` chosen). Their cache identity is the
FID / FVD one, so with ``fid``/``fvd`` in the same run (or cached from an earlier one) no network runs
again (:func:`moee_bench.metrics.core.evaluate.score_clip` runs one extractor per feature identity). The state holds
only the cache keys of the clips; :meth:`KernelDistance.compute` reads the features back from the cache
given by the evaluator, so the in-memory state stays a list of strings and merges by concatenation.
The subset draws are seeded (``kid_seed``, 0) over the clips in key order, so the value does not depend
on the order in which clips or processes were merged.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.core.base import ClipContext, FeatureCache, Features, Metric, Param, State
from moee_bench.metrics.core.registry import metric_class

N_SUBSETS = 100
SUBSET_SIZE = 1000


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x . y / d + 1)^3`` for rows of ``x`` and ``y`` (float64)."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray, var_at_m: int | None = None) -> tuple[float, float]:
    """Unbiased MMD^2 of two equal-size samples from their kernel matrices, and the variance estimate of that
    estimator at sample size ``var_at_m`` (Sutherland et al. 2017 / Bińkowski et al. 2018; our own lines from
    the published formula)."""
    m = kxx.shape[0]
    var_at_m = m if var_at_m is None else var_at_m
    dx, dy = np.diagonal(kxx), np.diagonal(kyy)
    kt_xx_sums = kxx.sum(1) - dx
    kt_yy_sums = kyy.sum(1) - dy
    kxy_sums_0, kxy_sums_1 = kxy.sum(0), kxy.sum(1)
    kt_xx_sum, kt_yy_sum, kxy_sum = kt_xx_sums.sum(), kt_yy_sums.sum(), kxy_sums_0.sum()
    mmd2 = (kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2.0 * kxy_sum / (m * m)

    def sq(a: np.ndarray) -> float:
        return float(np.dot(a.ravel(), a.ravel()))

    kt_xx_2 = sq(kxx) - sq(dx)
    kt_yy_2 = sq(kyy) - sq(dy)
    kxy_2 = sq(kxy)
    dot_xx_xy = kt_xx_sums @ kxy_sums_1
    dot_yy_yx = kt_yy_sums @ kxy_sums_0
    m1, m2 = m - 1, m - 2
    zeta1 = (1 / (m * m1 * m2) * (sq(kt_xx_sums) - kt_xx_2 + sq(kt_yy_sums) - kt_yy_2)
             - 1 / (m * m1) ** 2 * (kt_xx_sum ** 2 + kt_yy_sum ** 2)
             + 1 / (m * m * m1) * (sq(kxy_sums_1) + sq(kxy_sums_0) - 2 * kxy_2)
             - 2 / m ** 4 * kxy_sum ** 2
             - 2 / (m * m * m1) * (dot_xx_xy + dot_yy_yx)
             + 2 / (m ** 3 * m1) * (kt_xx_sum + kt_yy_sum) * kxy_sum)
    zeta2 = (1 / (m * m1) * (kt_xx_2 + kt_yy_2)
             - 1 / (m * m1) ** 2 * (kt_xx_sum ** 2 + kt_yy_sum ** 2)
             + 2 / (m * m) * kxy_2
             - 2 / m ** 4 * kxy_sum ** 2
             - 4 / (m * m * m1) * (dot_xx_xy + dot_yy_yx)
             + 4 / (m ** 3 * m1) * (kt_xx_sum + kt_yy_sum) * kxy_sum)
    var = 4 * (var_at_m - 2) / (var_at_m * (var_at_m - 1)) * zeta1 + 2 / (var_at_m * (var_at_m - 1)) * zeta2
    return float(mmd2), float(var)


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, n_subsets: int = N_SUBSETS, subset_size: int = SUBSET_SIZE,
                    seed: int = 0) -> dict[str, float]:
    """KID over ``n_subsets`` subsets: ``{"mean", "std", "se", "m"}`` (see the module docstring)."""
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    n = min(len(real), len(fake))
    m = min(n, subset_size)
    if m < 3:
        raise ValueError(f"KID needs at least 3 samples per side (got {len(real)} real, {len(fake)} generated)")
    rng = np.random.default_rng(seed)
    est, var = np.empty(n_subsets), np.empty(n_subsets)
    for i in range(n_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        est[i], var[i] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y),
                                       var_at_m=n)
    return {"mean": float(est.mean()), "std": float(est.std()), "se": float(np.sqrt(max(var.mean(), 0.0))), "m": m}


class KernelDistance(Metric):
    """Base of KID / KVD: a set-level kernel distance over the features of a source metric (FID / FVD)."""

    source_name: ClassVar[str]
    needs_gt = True
    needs_feature_cache = True
    set_level = True
    states = {"feature_keys": State(list, merge="cat")}      # per clip: part -> feature cache key
    PARAMS = {"kid_subsets": Param(int, N_SUBSETS, minimum=1, help="number of random subsets"),
              "kid_subset_size": Param(int, SUBSET_SIZE, minimum=3, help="largest subset size (the unbiased MMD² needs 3)"),
              "kid_seed": Param(int, 0, minimum=0, help="seed of the subsets")}

    @classmethod
    def parameters(cls) -> Mapping[str, Param]:
        """KID/KVD's own keys and those of the metric whose features they use (FID / FVD)."""
        return {**metric_class(cls.source_name).parameters(), **cls.PARAMS}

    def __init__(self, options: Any) -> None:
        self.source = metric_class(self.source_name)(options)
        self.n_subsets = int(self.param_value(options, "kid_subsets"))
        self.subset_size = int(self.param_value(options, "kid_subset_size"))
        self.seed = int(self.param_value(options, "kid_seed"))
        self.cache: FeatureCache | None = None
        super().__init__()

    def config(self) -> dict[str, Any]:
        return self.source.config()

    def identity(self) -> dict[str, Any]:
        """The source metric's identity: the same cache entries, and one extraction for both."""
        return self.source.identity()

    def weight_files(self) -> list:
        return self.source.weight_files()

    def feature_parts(self) -> Mapping[str, tuple[str, ...]]:
        return self.source.feature_parts()

    def part_config(self, part: str, ctx: ClipContext) -> dict[str, Any]:
        return self.source.part_config(part, ctx)

    def part_extractor(self, ctx: ClipContext, part: str):
        return self.source.part_extractor(ctx, part)

    @classmethod
    def combine(cls, parts: Mapping[str, Features]) -> Features:
        return metric_class(cls.source_name).combine(parts)

    def protocol(self) -> dict[str, Any]:
        return {"metric": self.name, "features": f"the {self.source_name} extractor's", **self.config(),
                "kernel": "(x.y/d + 1)^3", "estimator": "unbiased MMD^2, mean over subsets (clean-fid, torch-fidelity)",
                "subsets": self.n_subsets, "subset_size": f"min(N_real, N_fake, {self.subset_size})", "seed": self.seed,
                "se": "sqrt of Binkowski et al.'s U-statistic variance estimate at min(N_real, N_fake), mean over subsets"}

    def attach_cache(self, cache: FeatureCache | None) -> None:
        """The cache :meth:`compute` reads the features from (set by the evaluator)."""
        self.cache = cache

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        if len(feats["pred"]) == 0 or len(feats["gt"]) == 0:
            raise ClipError(ctx.clip_id if ctx else None, "no features", status="too_short")
        key = (ctx.feature_keys or {}).get(self.name) if ctx is not None else None
        if not key:
            raise RuntimeError(f"{self.name}: the evaluator gave no feature cache key; {self.name} reads its features "
                               "back from the feature cache (evaluate(..., cache=...))")
        self.feature_keys.append(dict(key))
        return {}

    def compute(self) -> dict[str, Any]:
        k = self.name
        if not self.feature_keys:
            return {k: None, f"{k}_reason": "no clip was scored"}
        if self.cache is None:
            return {k: None, f"{k}_reason": f"{k} reads features from the feature cache and none was attached"}
        clips = {json.dumps(keys, sort_keys=True): keys for keys in self.feature_keys}   # order- and rank-independent
        feats, missing = [], 0
        for blob in sorted(clips):
            parts = {part: self.cache.get(key) for part, key in clips[blob].items()}
            if any(f is None for f in parts.values()):
                missing += 1
            else:
                feats.append(self.combine(parts))
        if missing:
            return {k: None, f"{k}_reason": f"{missing} of {len(clips)} clips' features are no longer in the cache"}
        return {**self.from_features(feats, {"n_subsets": self.n_subsets, "subset_size": self.subset_size,
                                             "seed": self.seed}), f"{k}_clips": len(feats)}

    @classmethod
    def from_features(cls, clip_feats: Sequence[Features], settings: Mapping[str, Any], *,
                      resample: bool = False) -> dict[str, Any]:
        """:func:`kernel_from_features` with ``settings`` ``n_subsets``, ``subset_size``, ``seed``; a bootstrap
        resample draws 10 subsets of the default size (the headline 100): the bootstrap spread dominates the subset
        noise."""
        if resample:
            return kernel_from_features(clip_feats, cls.name, n_subsets=10)
        return kernel_from_features(clip_feats, cls.name, n_subsets=int(settings.get("n_subsets", N_SUBSETS)),
                                    subset_size=int(settings.get("subset_size", SUBSET_SIZE)),
                                    seed=int(settings.get("seed", 0)))


def kernel_from_features(clip_feats: list[Mapping[str, np.ndarray]], key: str = "kid", *, n_subsets: int = N_SUBSETS,
                         subset_size: int = SUBSET_SIZE, seed: int = 0) -> dict[str, Any]:
    """``{key, key_std, key_se, key_n_real, key_n_fake}`` over the pooled per-clip ``pred`` / ``gt`` features."""
    real = np.concatenate([np.asarray(f["gt"], np.float64).reshape(len(f["gt"]), -1) for f in clip_feats])
    fake = np.concatenate([np.asarray(f["pred"], np.float64).reshape(len(f["pred"]), -1) for f in clip_feats])
    out: dict[str, Any] = {f"{key}_n_real": len(real), f"{key}_n_fake": len(fake)}
    if min(len(real), len(fake)) < 3:
        return {**out, key: None, f"{key}_reason": f"needs at least 3 features per side (got {len(real)}, {len(fake)})"}
    r = kernel_distance(real, fake, n_subsets=n_subsets, subset_size=subset_size, seed=seed)
    return {**out, key: r["mean"], f"{key}_std": r["std"], f"{key}_se": r["se"], f"{key}_subset_size": r["m"]}


class KID(KernelDistance):
    """KID on the FID features (pytorch-fid InceptionV3 pool3, every frame)."""

    name = "kid"
    reference = "clean-fid / torch-fidelity kernel_distance on the FID features"
    source_name = "fid"
    keys = ("kid",)
    higher_is_better = {"kid": False}


class KVD(KernelDistance):
    """Kernel video distance: KID's estimator on the FVD features (I3D, 16-frame windows)."""

    name = "kvd"
    reference = "KID's unbiased MMD estimator on the FVD (I3D) features"
    source_name = "fvd"
    keys = ("kvd",)
    higher_is_better = {"kvd": False}
