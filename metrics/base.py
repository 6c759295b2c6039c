"""The metric contract.

A metric works in two steps so that expensive per-video work can be cached:

1. **extract**: :meth:`Metric.extractor` returns a :class:`FeatureExtractor` for one clip. The
   evaluator feeds it :class:`FrameChunk` s (pred and GT frames decoded once, in lockstep) and
   calls :meth:`FeatureExtractor.finish`, which returns a dict of numpy arrays (Inception
   activations, SyncNet distances, emotion probabilities, per-frame PSNR...). These features are
   cacheable, keyed by :meth:`Metric.feature_id` and the content hashes of the inputs.
2. **update**: :meth:`Metric.update` turns one clip's features into per-clip values and adds
   them to the metric's state. The state is small, float64, and :meth:`Metric.merge` combines
   states from other processes exactly; :meth:`Metric.compute` gives the aggregate.

A clip a metric cannot score raises :class:`bench.errors.ClipError` with a ``status``
(``no_face``, ``too_short``, ``no_audio``, ``error``...) from ``finish`` or ``update``; it is
then excluded from the aggregate and counted, never scored 0.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol

import numpy as np

from moee_bench.bench.core.emotions import EmotionSpec

Features = dict[str, np.ndarray]


@dataclass
class ClipInput:
    """One clip to score: the generated video and what it is compared with."""

    clip_id: str
    pred: Path
    gt: Path | None = None
    ref_image: Path | None = None      # None: first GT frame (or first pred frame without GT)
    audio: Path | None = None          # driving audio (wav or a video); None: the pred video's own track
    emotion: EmotionSpec | None = None
    intensity: int | None = None
    identity: str | None = None


@dataclass
class ClipContext:
    """What a metric sees about the clip being scored. Arrays are loaded only if some metric needs them."""

    clip: ClipInput
    fps: float
    size: tuple[int, int] | None
    ref_image: np.ndarray | None = None   # (H, W, 3) uint8
    audio: np.ndarray | None = None       # float32 mono, 16 kHz
    audio_source: str | None = None       # "driving" | "video"
    notes: list[str] = field(default_factory=list)
    feature_keys: dict[str, str] = field(default_factory=dict)   # metric -> feature cache key (when cached)

    @property
    def clip_id(self) -> str:
        return self.clip.clip_id


@dataclass
class FrameChunk:
    """Consecutive frames of one clip: ``pred`` and optional ``gt``, uint8 ``(n, H, W, 3)``, starting at ``start``."""

    start: int
    pred: np.ndarray
    gt: np.ndarray | None = None


class FeatureExtractor(Protocol):
    def add(self, chunk: FrameChunk) -> None: ...

    def finish(self) -> Features: ...


class FeatureCache(Protocol):
    """Where extracted per-clip features are kept between runs (implemented by :mod:`bench.store`)."""

    def get(self, key: str) -> Features | None: ...

    def put(self, key: str, feats: Features) -> None: ...


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Param:
    """One metric parameter (``--param KEY=VALUE``, a suite's ``[params]``): type, default, allowed values.

    :meth:`parse` turns a CLI string or a TOML value into the typed value or raises ``ValueError``
    with a one-line reason; ``None`` is accepted (as ``none``) only when the default is None."""

    kind: type                                   # int | float | str | bool
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None   # extra rule: returns why the value is refused
    help: str = ""

    def parse(self, raw: Any) -> Any:
        if raw is None or (self.default is None and isinstance(raw, str) and raw.strip().lower() in ("none", "")):
            if self.default is None:
                return None
            raise ValueError("a value is required")
        if self.kind is bool:
            s = str(raw).strip().lower()
            if isinstance(raw, bool) or s in _TRUE + _FALSE:
                return raw if isinstance(raw, bool) else s in _TRUE
            raise ValueError(f"expected true or false, got {raw!r}")
        if self.kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not float(raw).is_integer()):
                raise ValueError(f"expected an integer, got {raw!r}")
            try:
                v: Any = int(str(raw).strip()) if isinstance(raw, str) else int(raw)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"expected an integer, got {raw!r}") from None
        elif self.kind is float:
            try:
                v = float(raw) if not isinstance(raw, bool) else None
            except (TypeError, ValueError):
                v = None
            if v is None or not np.isfinite(v):
                raise ValueError(f"expected a finite number, got {raw!r}")
        else:
            v = str(raw).strip()
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {raw!r}")
        if self.minimum is not None and v < self.minimum:
            raise ValueError(f"must be >= {self.minimum:g}, got {raw!r}")
        if self.maximum is not None and v > self.maximum:
            raise ValueError(f"must be <= {self.maximum:g}, got {raw!r}")
        why = self.check(v) if self.check is not None else None
        if why:
            raise ValueError(why)
        return v


class Metric(abc.ABC):
    """Base class of every metric. Subclasses set the class attributes and implement the abstract methods.

    ``PARAMS`` declares every parameter key the metric reads from ``options.params``: keys no
    requested metric declares are refused before any work (:func:`metrics.registry.check_params`).
    ``min_size`` is the smallest frame side (pixels) the metric can score."""

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]                 # aggregate keys compute() returns
    higher_is_better: ClassVar[Mapping[str, bool]]  # per key
    needs_gt: ClassVar[bool] = False
    uses_gt: ClassVar[bool] = False                 # scores GT frames when the clip has a GT video (not required)
    needs_audio: ClassVar[bool] = False
    needs_ref: ClassVar[bool] = False
    needs_emotion: ClassVar[bool] = False
    PARAMS: ClassVar[Mapping[str, Param]] = {}
    min_size: int = 1

    @classmethod
    def parameters(cls) -> Mapping[str, Param]:
        """Every parameter key the metric reads: its ``PARAMS`` (a metric built on another adds that one's)."""
        return cls.PARAMS

    def __init__(self) -> None:
        self.reset()

    @abc.abstractmethod
    def reset(self) -> None:
        """Empty the state."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that changes the features (weights hashes, sizes, variants); JSON-serialisable."""

    @abc.abstractmethod
    def extractor(self, ctx: ClipContext) -> FeatureExtractor:
        """A fresh feature extractor for one clip."""

    @abc.abstractmethod
    def update(self, ctx: ClipContext, feats: Features) -> dict[str, Any]:
        """Add one clip's features to the state and return its per-clip values.

        Set-level metrics (FID, FVD) must accept ``ctx=None`` so that reports can rebuild their
        state from cached features (bootstrap over clips)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The state as plain numbers / numpy arrays (mergeable, serialisable)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state."""

    @abc.abstractmethod
    def merge_state(self, state: Mapping[str, Any]) -> None:
        """Add another process's state to this one."""

    @abc.abstractmethod
    def compute(self) -> dict[str, Any]:
        """Aggregate values for :attr:`keys`; a value that cannot be computed is None with ``<key>_reason``."""

    def merge(self, other: "Metric") -> None:
        """Add ``other``'s state (same metric, same config) to this one."""
        if type(other) is not type(self) or other.config() != self.config():
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}: different metric or config")
        self.merge_state(other.state_dict())

    def feature_id(self) -> str:
        """Identity of the feature extractor for cache keys."""
        blob = json.dumps({"metric": self.name, "config": self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def protocol(self) -> dict[str, Any]:
        """What a reader needs to reproduce the number (defaults to the config)."""
        return {"metric": self.name, **self.config()}


def to_float(x: Any) -> float | None:
    """A finite float, or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


class MeanState:
    """Float64 sum / sum of squares / count of per-clip values, mergeable (shared by clip-averaged metrics)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0

    def add(self, v: float, n: int = 1) -> None:
        self.total += float(v) * n
        self.total_sq += float(v) ** 2 * n
        self.count += n

    def state(self) -> dict[str, Any]:
        return {"total": self.total, "total_sq": self.total_sq, "count": self.count}

    def load(self, s: Mapping[str, Any]) -> None:
        self.total, self.total_sq, self.count = float(s["total"]), float(s["total_sq"]), int(s["count"])

    def merge(self, s: Mapping[str, Any]) -> None:
        self.total += float(s["total"])
        self.total_sq += float(s["total_sq"])
        self.count += int(s["count"])

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class FrameMeanMetric(Metric):
    """A metric whose per-frame values (features ``{key: (n,)}``) are averaged over every frame of every clip.

    Subclasses set ``name``, ``keys = (key,)`` and implement :meth:`config` and :meth:`extractor`."""

    def reset(self) -> None:
        self.frames = MeanState()

    @property
    def key(self) -> str:
        return self.keys[0]

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        v = np.asarray(feats[self.key], np.float64)
        if len(v) == 0:
            from moee_bench.bench.core.errors import ClipError

            raise ClipError(ctx.clip_id if ctx else None, "no frame pairs to compare", status="too_short")
        for x in v:
            self.frames.add(float(x))
        return {self.key: float(v.mean())}

    def state_dict(self) -> dict[str, Any]:
        return {"frames": self.frames.state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.frames.load(state["frames"])

    def merge_state(self, state: Mapping[str, Any]) -> None:
        self.frames.merge(state["frames"])

    def compute(self) -> dict[str, Any]:
        m = self.frames.mean()
        return {self.key: m} if m is not None else {self.key: None, f"{self.key}_reason": "no scored frames"}
