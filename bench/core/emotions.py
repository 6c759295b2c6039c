"""The emotion taxonomy, as data.

Six basic emotions (MoEE's six experts) plus neutral. Compound emotions are named
pairs of basic emotions. The MoEE paper's four compound names are unpublished
(``moee_paper.md`` section 5); the default list below takes the two the paper
names as examples ("angry disgust", "sadly surprised") and two more from Du, Tao &
Martinez (PNAS 2014), the compound set the paper's examples come from. A dataset
may declare its own compounds in its manifest.

An :class:`EmotionSpec` is what a clip carries and what a method is asked for:
a basic label, a compound label, neutral, or explicit mixture weights over the
six basic emotions. Dataset labels outside this taxonomy (MEAD/EAT contempt,
RAVDESS calm) are kept as kind ``other`` (:func:`outside_taxonomy`): the clip stays
in the manifest for protocols that know the label (an 8-class one), while the
6+1 metrics and the methods whose vocabulary lacks it skip it with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from moee_bench.bench.core.errors import EmotionLabelError

BASIC: tuple[str, ...] = ("happiness", "sadness", "anger", "disgust", "fear", "surprise")
NEUTRAL = "neutral"
ALL_SINGLE: tuple[str, ...] = BASIC + (NEUTRAL,)

DEFAULT_COMPOUNDS: dict[str, tuple[str, str]] = {
    "angrily_disgusted": ("anger", "disgust"),
    "sadly_surprised": ("sadness", "surprise"),
    "happily_surprised": ("happiness", "surprise"),
    "fearfully_surprised": ("fear", "surprise"),
}

# Dataset spellings -> taxonomy names. ``None`` means excluded; EXCLUDED gives the reason.
ALIASES: dict[str, str | None] = {
    "happy": "happiness", "happiness": "happiness", "hap": "happiness", "joy": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "angry": "anger", "anger": "anger", "ang": "anger",
    "disgust": "disgust", "disgusted": "disgust", "dis": "disgust",
    "fear": "fear", "fearful": "fear", "fea": "fear", "afraid": "fear",
    "surprise": "surprise", "surprised": "surprise", "sur": "surprise",
    "neutral": "neutral", "neu": "neutral",
    "contempt": None, "con": None,
    "calm": None,
}

EXCLUDED: dict[str, str] = {
    "contempt": "contempt is not one of MoEE's six basic emotions nor neutral (MEAD/AffectNet-8 have it; excluded and counted)",
    "con": "contempt is not one of MoEE's six basic emotions nor neutral (EAT's 'con'; excluded and counted)",
    "calm": "RAVDESS 'calm' has no counterpart among the six basic emotions and is distinct from neutral in RAVDESS; excluded and counted",
}


# Labels kept outside the taxonomy (kind "other"): dataset spelling -> canonical label.
OUTSIDE: dict[str, str] = {"contempt": "contempt", "con": "contempt", "calm": "calm"}
OUTSIDE_REASONS: dict[str, str] = {
    "contempt": "contempt is not one of MoEE's six basic emotions nor neutral (MEAD and EAT's 8 classes have it)",
    "calm": "RAVDESS 'calm' has no counterpart among the six basic emotions and is distinct from neutral in RAVDESS",
}


@dataclass(frozen=True)
class EmotionSpec:
    """A target or ground-truth emotion.

    ``kind`` is ``basic`` | ``compound`` | ``neutral`` | ``mixture`` | ``other``. ``weights`` always
    holds the six basic-emotion weights (zeros for neutral and ``other``) in :data:`BASIC` order
    and sums to 1 unless neutral or ``other``. ``other`` is a labelled emotion outside the
    taxonomy (:data:`OUTSIDE`).
    """

    kind: str
    label: str
    weights: tuple[float, ...] = field(default=(0.0,) * 6)

    @property
    def components(self) -> tuple[str, ...]:
        """Basic emotions with non-zero weight, strongest first."""
        order = sorted(range(6), key=lambda i: -self.weights[i])
        return tuple(BASIC[i] for i in order if self.weights[i] > 0)

    @property
    def is_emotional(self) -> bool:
        return self.kind != "neutral"

    @property
    def in_taxonomy(self) -> bool:
        """False for a label outside the six basic emotions + neutral (kind ``other``)."""
        return self.kind != "other"

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind, "label": self.label}
        if self.kind == "mixture":
            d["weights"] = dict(zip(BASIC, self.weights))
        return d

    @staticmethod
    def from_dict(d: Mapping, compounds: Mapping[str, Sequence[str]] | None = None, clip_id: str | None = None) -> "EmotionSpec":
        if d.get("kind") == "mixture":
            spec = mixture(d["weights"], clip_id=clip_id)
            w = d["weights"]
            total = sum(float(x) for x in (w.values() if isinstance(w, Mapping) else w))
            if not math.isclose(total, 1.0, rel_tol=1e-6, abs_tol=1e-9):   # a stored spec is never renormalised
                raise EmotionLabelError(clip_id, f"mixture weights sum to {total:.6g}, not 1; write the weights "
                                                 "you mean (normalised), they are not rescaled silently")
            return spec
        if d.get("kind") == "other":
            return outside_taxonomy(d["label"], clip_id=clip_id)
        return parse_emotion(d["label"], compounds=compounds, clip_id=clip_id)


def _onehot(name: str) -> tuple[float, ...]:
    return tuple(1.0 if b == name else 0.0 for b in BASIC)


def mixture(weights: Mapping[str, float] | Sequence[float], *, clip_id: str | None = None) -> EmotionSpec:
    """Mixture weights over the six basic emotions (a mapping name->w or a 6-sequence), normalised to sum 1."""
    if isinstance(weights, Mapping):
        unknown = [k for k in weights if k not in BASIC]
        if unknown:
            raise EmotionLabelError(clip_id, f"mixture names unknown basic emotions {unknown}; known: {list(BASIC)}")
        vec = [float(weights.get(b, 0.0)) for b in BASIC]
    else:
        vec = [float(x) for x in weights]
        if len(vec) != 6:
            raise EmotionLabelError(clip_id, f"mixture needs 6 weights in order {list(BASIC)}, got {len(vec)}")
    if any((not math.isfinite(x)) or x < 0 for x in vec):
        raise EmotionLabelError(clip_id, f"mixture weights must be finite and >= 0, got {vec}")
    s = sum(vec)
    if s <= 0:
        raise EmotionLabelError(clip_id, "mixture weights sum to 0; use the label 'neutral' for no emotion")
    if not math.isfinite(s):
        raise EmotionLabelError(clip_id, f"mixture weights overflow when summed ({vec}); give them as fractions of 1")
    vec = [x / s for x in vec]
    label = "+".join(f"{BASIC[i]}:{vec[i]:.3g}" for i in range(6) if vec[i] > 0)
    return EmotionSpec("mixture", label, tuple(vec))


def outside_taxonomy(label: str, *, clip_id: str | None = None) -> EmotionSpec:
    """The kind-``other`` spec of a label outside the taxonomy (contempt, calm); unknown labels raise."""
    key = str(label).strip().lower()
    if key not in OUTSIDE:
        raise EmotionLabelError(clip_id, f"emotion label {label!r} is neither in the taxonomy nor a known label outside it "
                                         f"({sorted(set(OUTSIDE.values()))})")
    return EmotionSpec("other", OUTSIDE[key], (0.0,) * 6)


def parse_emotion(label: str, *, compounds: Mapping[str, Sequence[str]] | None = None,
                  aliases: Mapping[str, str | None] | None = None, clip_id: str | None = None,
                  keep_outside: bool = False) -> EmotionSpec:
    """Map a label (taxonomy name, dataset alias, or compound name) to an :class:`EmotionSpec`.

    Compound labels may also be written ``a+b`` with two basic names or aliases.
    Raises :class:`EmotionLabelError` naming the clip for unknown or excluded labels; with
    ``keep_outside`` an excluded label known to :data:`OUTSIDE` (contempt, calm) becomes a
    kind-``other`` spec instead.
    """
    comp = dict(DEFAULT_COMPOUNDS if compounds is None else compounds)
    al = dict(ALIASES)
    if aliases:
        al.update({k.lower(): v for k, v in aliases.items()})
    key = str(label).strip().lower().replace(" ", "_").replace("-", "_")
    if key in comp:
        a, b = comp[key]
        w = [0.5 if x in (a, b) else 0.0 for x in BASIC]
        return EmotionSpec("compound", key, tuple(w))
    if "+" in key:
        parts = [p for p in key.split("+") if p]
        names = [parse_emotion(p, compounds={}, aliases=aliases, clip_id=clip_id) for p in parts]
        if len(names) != 2 or any(n.kind != "basic" for n in names) or names[0].label == names[1].label:
            raise EmotionLabelError(clip_id, f"compound {label!r} must join two different basic emotions")
        w = [0.5 if x in (names[0].label, names[1].label) else 0.0 for x in BASIC]
        return EmotionSpec("compound", f"{names[0].label}+{names[1].label}", tuple(w))
    if key in al:
        name = al[key]
        if name is None and keep_outside and key in OUTSIDE:
            return outside_taxonomy(key, clip_id=clip_id)
        if name is None:
            raise EmotionLabelError(clip_id, f"emotion label {label!r} is excluded: {EXCLUDED.get(key, 'excluded by the dataset aliases')}",
                                    status="excluded")
        key = name
    if key == NEUTRAL:
        return EmotionSpec("neutral", NEUTRAL, (0.0,) * 6)
    if key in BASIC:
        return EmotionSpec("basic", key, _onehot(key))
    known = sorted(set(ALL_SINGLE) | set(comp))
    raise EmotionLabelError(clip_id, f"unknown emotion label {label!r}; known: {known} (plus dataset aliases)")


def validate_compounds(compounds: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, str]]:
    """Check a dataset's declared compound list: each name maps to two different basic emotions."""
    out: dict[str, tuple[str, str]] = {}
    for name, pair in compounds.items():
        pair = tuple(pair)
        if len(pair) != 2 or pair[0] == pair[1] or any(p not in BASIC for p in pair):
            raise ValueError(f"compound {name!r} must name two different basic emotions from {BASIC}, got {pair}")
        out[str(name).lower()] = (pair[0], pair[1])
    return out
