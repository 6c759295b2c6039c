"""Pure scoring functions of the emotion metric (no models, no I/O): moee-bench's own definitions.

* **Class-set mapping.** A classifier declares its native classes; each maps onto the project
  taxonomy :data:`TAXONOMY` (the six basic emotions of :mod:`moee_bench.bench.core.emotions` plus neutral) through
  :data:`moee_bench.bench.core.emotions.ALIASES`. Classes that map to nothing (contempt) are *excluded*: their
  probability mass is removed, the rest renormalised, and the removed mass and the frames whose
  native top class was excluded are counted.
* **Aggregation over frames** (:func:`aggregate`): ``mean`` (default) averages per-frame
  probabilities; ``vote`` takes the fraction of frames whose top class is each label (ties of
  the predicted label broken by the mean probability).
* **Compound protocols** on the predicted distribution renormalised over the six basics
  (:func:`basic_distribution`) against the target's components / weights:

  (a) ``top2`` (:func:`topk_match`): 1 if the target's components are exactly the top-k basics,
      k = number of components (2 for a named compound);
  (b) ``recall`` (:func:`component_recall`): fraction of the components ranked in the top-k
      (k defaults to the number of components) or, in threshold mode, whose renormalised
      probability reaches a threshold;
  (c) ``mix`` (:func:`mixture_agreement`): 1 - Jensen-Shannon divergence (base 2, so in [0, 1])
      between the predicted basic distribution and the target mixture weights.
* **Confusion counts** (:func:`confusion_add`): rows = target label, columns = predicted label,
  both over :data:`TAXONOMY`; plain integer counts, so merging is addition.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from moee_bench.bench.core.emotions import ALIASES, ALL_SINGLE, BASIC, NEUTRAL
# imported inside the functions that use them (seconds to import, or optional): scipy

TAXONOMY: tuple[str, ...] = ALL_SINGLE          # 6 basic emotions (BASIC order) + neutral
NEUTRAL_INDEX = TAXONOMY.index(NEUTRAL)
AGGREGATIONS = ("mean", "vote")


def map_class(name: str) -> str | None:
    """Taxonomy name of one native class name (``None``: excluded, e.g. contempt). Unknown names raise."""
    key = str(name).strip().lower()
    if key not in ALIASES:
        raise ValueError(f"classifier class {name!r} has no mapping onto the taxonomy {TAXONOMY}; add it to moee_bench.bench.core.emotions.ALIASES")
    return ALIASES[key]


def mapping_matrix(native: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(C, 7)`` 0/1 matrix from native classes to :data:`TAXONOMY`, and the excluded native class names."""
    m = np.zeros((len(native), len(TAXONOMY)), np.float64)
    excluded: list[str] = []
    for i, name in enumerate(native):
        t = map_class(name)
        if t is None:
            excluded.append(name)
        else:
            m[i, TAXONOMY.index(t)] = 1.0
    return m, tuple(excluded)


def to_taxonomy(probs: np.ndarray, native: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map ``(n, C)`` native probabilities onto the taxonomy.

    Returns ``(p7, excluded_mass, excluded_top)``: ``p7`` is ``(n, 7)`` renormalised over the mapped
    classes, ``excluded_mass`` the ``(n,)`` probability the excluded classes held, ``excluded_top``
    a ``(n,)`` bool array, True where an excluded class was the native top-1.
    """
    probs = np.asarray(probs, np.float64).reshape(-1, len(native))
    m, excluded = mapping_matrix(native)
    p7 = probs @ m
    kept = p7.sum(axis=1)
    excluded_mass = np.clip(probs.sum(axis=1) - kept, 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        p7 = np.where(kept[:, None] > 0, p7 / kept[:, None], 1.0 / len(TAXONOMY))
    is_excl = m.sum(axis=1) == 0
    excluded_top = is_excl[np.argmax(probs, axis=1)] if len(probs) else np.zeros(0, bool)
    return p7, excluded_mass, excluded_top


def aggregate(p7: np.ndarray, rule: str = "mean") -> np.ndarray:
    """Clip distribution over :data:`TAXONOMY` from ``(n, 7)`` frame probabilities (``mean`` or ``vote``)."""
    p7 = np.asarray(p7, np.float64)
    if p7.ndim != 2 or len(p7) == 0:
        raise ValueError("aggregate needs at least one frame of probabilities")
    if rule == "mean":
        return p7.mean(axis=0)
    if rule == "vote":
        return np.bincount(np.argmax(p7, axis=1), minlength=p7.shape[1]).astype(np.float64) / len(p7)
    raise ValueError(f"unknown aggregation rule {rule!r}; known: {AGGREGATIONS}")


def ranking(dist: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``dist`` from highest to lowest; ties broken by ``tiebreak`` (higher first), then by index."""
    dist = np.asarray(dist, np.float64)
    tb = np.zeros_like(dist) if tiebreak is None else np.asarray(tiebreak, np.float64)
    return np.array(sorted(range(len(dist)), key=lambda i: (-dist[i], -tb[i], i)), dtype=np.int64)


def predicted_index(dist: np.ndarray, tiebreak: np.ndarray | None = None) -> int:
    """Index of the predicted label (top-1 of ``dist``, ties by ``tiebreak``)."""
    return int(ranking(dist, tiebreak)[0])


def basic_distribution(dist7: np.ndarray) -> np.ndarray:
    """The six basic-emotion probabilities of a taxonomy distribution, renormalised to sum 1 (uniform if all zero)."""
    b = np.asarray(dist7, np.float64)[: len(BASIC)]
    s = b.sum()
    return b / s if s > 0 else np.full(len(BASIC), 1.0 / len(BASIC))


def _components(target: Sequence[float]) -> np.ndarray:
    t = np.asarray(target, np.float64)
    if t.shape != (len(BASIC),):
        raise ValueError(f"target weights must have {len(BASIC)} entries in order {BASIC}")
    return np.flatnonzero(t > 0)


def topk_match(dist7: np.ndarray, target: Sequence[float], tiebreak: np.ndarray | None = None) -> float:
    """Protocol (a): 1.0 if the target's components are exactly the top-k basic emotions (k = #components), else 0.0."""
    comps = _components(target)
    k = len(comps)
    if k == 0:
        raise ValueError("target has no emotional component")
    tb = None if tiebreak is None else np.asarray(tiebreak, np.float64)[: len(BASIC)]
    top = ranking(basic_distribution(dist7), tb)[:k]
    return float(set(top.tolist()) == set(comps.tolist()))


def component_recall(dist7: np.ndarray, target: Sequence[float], *, k: int | None = None, threshold: float | None = None,
                     tiebreak: np.ndarray | None = None) -> float:
    """Protocol (b): fraction of the target's components in the top-k basics (``k`` default: #components),
    or, when ``threshold`` is given, with renormalised basic probability >= ``threshold``."""
    comps = _components(target)
    if len(comps) == 0:
        raise ValueError("target has no emotional component")
    b = basic_distribution(dist7)
    if threshold is not None:
        hit = b[comps] >= threshold
    else:
        kk = len(comps) if k is None else int(k)
        tb = None if tiebreak is None else np.asarray(tiebreak, np.float64)[: len(BASIC)]
        top = set(ranking(b, tb)[:kk].tolist())
        hit = np.array([c in top for c in comps.tolist()])
    return float(hit.mean())


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (base 2, in [0, 1]); the square of scipy's Jensen-Shannon distance."""
    from scipy.spatial.distance import jensenshannon

    d = float(jensenshannon(np.asarray(p, np.float64), np.asarray(q, np.float64), base=2))
    return min(max(d * d, 0.0), 1.0)


def mixture_agreement(dist7: np.ndarray, target: Sequence[float]) -> float:
    """Protocol (c): 1 - JSD_2(predicted basic distribution, target mixture weights)."""
    t = np.asarray(target, np.float64)
    if t.shape != (len(BASIC),) or t.sum() <= 0:
        raise ValueError("target mixture must be 6 non-negative weights with a positive sum")
    return 1.0 - js_divergence(basic_distribution(dist7), t / t.sum())


def confusion_add(matrix: np.ndarray, true_idx: int, pred_idx: int) -> None:
    """Count one clip (in place) in a ``(7, 7)`` confusion matrix, rows = target, columns = prediction."""
    matrix[int(true_idx), int(pred_idx)] += 1


def per_class_accuracy(matrix: np.ndarray) -> dict[str, float | None]:
    """Recall of each taxonomy label from a confusion matrix (None where no clip has that label)."""
    m = np.asarray(matrix, np.float64)
    out: dict[str, float | None] = {}
    for i, name in enumerate(TAXONOMY):
        n = m[i].sum()
        out[name] = float(m[i, i] / n) if n > 0 else None
    return out


def balanced_binary_accuracy(counts: np.ndarray) -> float | None:
    """Mean of the per-class recalls of a ``(2, 2)`` count table (rows = truth); None unless both classes occur."""
    c = np.asarray(counts, np.float64)
    rows = c.sum(axis=1)
    if (rows == 0).any():
        return None
    return float(np.mean(np.diag(c) / rows))
