"""Emotion scoring maths (pure functions, our own: no library defines compound-emotion scores).

Distributions are over :data:`bench.emotions.ALL_SINGLE` (6 basic emotions, then neutral).
Compound protocols (moee-bench's own definitions; anchors.md section 5 finds no standard):

* ``compound_top2``: hit when the target's two strongest components are exactly the classifier's
  top-2 among the 6 basic emotions (the distribution renormalised over the basics).
* ``compound_recall``: fraction of the target's k components that rank in the classifier's top-k
  basics (k = number of components).
* ``compound_mix`` (headline): 1 - Jensen-Shannon divergence (base 2, in [0, 1]) between the
  renormalised predicted basic distribution and the target mixture (equal weights for a named
  compound, the requested weights for a mixture). Graded, defined for any mixture, and it uses the
  weights a method was asked for, so it is the headline; the other two are reported beside it.
"""

from __future__ import annotations

import numpy as np

from bench.emotions import ALL_SINGLE, BASIC, EmotionSpec

N_CLASSES = len(ALL_SINGLE)
NEUTRAL_INDEX = ALL_SINGLE.index("neutral")


def aggregate(frame_probs: np.ndarray, rule: str = "mean") -> np.ndarray:
    """Clip distribution from per-frame probabilities (rows with NaN = no face are ignored)."""
    p = np.asarray(frame_probs, np.float64)
    p = p[np.all(np.isfinite(p), axis=1)]
    if len(p) == 0:
        raise ValueError("no frame with a face")
    if rule == "mean":
        d = p.mean(axis=0)
    elif rule == "vote":
        d = np.bincount(p.argmax(axis=1), minlength=p.shape[1]).astype(np.float64)
    else:
        raise ValueError(f"aggregation rule must be 'mean' or 'vote', got {rule!r}")
    return d / d.sum()


def basic_distribution(d: np.ndarray) -> np.ndarray:
    """The 6 basic-emotion probabilities renormalised to sum to 1 (uniform if all are 0)."""
    b = np.asarray(d[: len(BASIC)], np.float64)
    s = b.sum()
    return b / s if s > 0 else np.full(len(BASIC), 1.0 / len(BASIC))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 identical, 1 disjoint)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def compound_scores(d: np.ndarray, target: EmotionSpec) -> dict[str, float]:
    """The three compound protocols for a clip distribution ``d`` and a compound/mixture ``target``."""
    w = np.asarray(target.weights, np.float64)
    comps = [i for i in np.argsort(-w, kind="stable") if w[i] > 0]
    b = basic_distribution(d)
    order = list(np.argsort(-b, kind="stable"))
    k = len(comps)
    out = {"compound_recall": len(set(comps) & set(order[:k])) / k,
           "compound_mix": 1.0 - js_divergence(b, w / w.sum())}
    if k >= 2:
        out["compound_top2"] = float(set(comps[:2]) == set(order[:2]))
    return out
