"""The metric contract.

A metric works in two steps so that expensive per-video work can be cached:

1. **extract**, per *part* of a clip (:attr:`Metric.parts`): ``pair`` (pred and GT frames together:
   PSNR, SSIM, LPIPS), or one input alone: ``pred``, ``gt`` (one video: Inception activations,
   I3D embeddings, landmarks, emotion probabilities, SyncNet distances) or ``ref`` (the reference
   image). :meth:`Metric.part_extractor` returns a :class:`FeatureExtractor` for one part; the
   evaluator feeds it the frames it reads (each video decoded once, every part fed from that one
   pass) and calls :meth:`FeatureExtractor.finish`, which returns a dict of numpy arrays.
   Each part is cached under :meth:`Metric.cache_key`, the one place where a feature's identity is
   computed: the metric's features config, the sha256 of every weight file it resolved, its
   :attr:`Metric.extractor_version`, and the identities of the inputs that part actually read.
   A ``pred``/``gt`` part depends on its own video only, so GT features are computed once per
   dataset and reused by every method and every run. :meth:`Metric.combine` joins a clip's parts
   into the features :meth:`Metric.update` receives (pairing the sides by truncation to the
   shorter, as the frames are paired).
2. **update**: :meth:`Metric.update` turns one clip's features into per-clip values and adds
   them to the metric's state. The state is small, float64, and declared (:attr:`Metric.states`,
   torchmetrics' ``add_state`` idea): each piece names its fresh value and how two processes' values
   merge, so reset, save, load and the exact cross-process :meth:`Metric.merge` come from this
   class; :meth:`Metric.compute` gives the aggregate.

A clip a metric cannot score raises :class:`moee_bench.bench.core.errors.ClipError` with a ``status``
(``no_face``, ``too_short``, ``no_audio``, ``error``...) from ``finish`` or ``update``; it is
then excluded from the aggregate and counted, never scored 0.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np

from moee_bench.bench.core.emotions import EmotionSpec
from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.references import ReferenceChoice

if TYPE_CHECKING:
    from moee_bench.bench.core.weights import ResolvedWeights

Features = dict[str, np.ndarray]

VIDEO_PARTS = ("pred", "gt")           # parts that read one video alone
FRAMES_KEY = "_frames"                 # stored with a video part: the frame counts of the video(s) it read
# (keys starting with "_" are the evaluator's bookkeeping, never a metric's feature)


@dataclass
class ClipInput:
    """One clip to score: the generated video and what it is compared with."""

    clip_id: str
    pred: Path | np.ndarray            # a video file, or in-memory (T, H, W, 3) uint8 frames (metrics.core.frames)
    gt: Path | np.ndarray | None = None
    ref_image: Path | np.ndarray | None = None   # a reference image given without a policy (``score`` without a manifest)
    audio: Path | np.ndarray | None = None       # driving audio (wav or a video; or float mono at 16 kHz); None: the
                                                 # pred video's own track
    emotion: EmotionSpec | None = None
    intensity: int | None = None
    identity: str | None = None
    reference: ReferenceChoice | None = None   # the reference policy's choice (bench.core.references); wins over
                                               # ref_image; with neither, the GT's first frame, with a warning
    video_stream: int | None = None    # the pred's N-th video stream (ffmpeg's 0:v:N); None: the ffmpeg CLI's choice
    gt_video_stream: int | None = None # the same for the GT video


@dataclass
class ClipContext:
    """What a metric sees about the clip being scored. Arrays are loaded only if some metric needs them."""

    clip: ClipInput
    fps: float
    size: tuple[int, int] | None
    ref_image: np.ndarray | None = None   # (H, W, 3) uint8
    audio: np.ndarray | None = None       # float32 mono, 16 kHz
    audio_source: str | None = None       # "driving" | "video"
    ref_source: str | None = None         # where ``ref_image`` came from (part of its cache identity)
    decode: str = ""                      # how frames are decoded and resampled (part of a video part's identity)
    inputs: dict[str, str] = field(default_factory=dict)   # input name -> content identity (filled by the evaluator)
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


@dataclass
class VideoChunk:
    """Consecutive frames of one video (the input of a ``pred`` or ``gt`` part), uint8 ``(n, H, W, 3)``."""

    start: int
    frames: np.ndarray


class FeatureExtractor(Protocol):
    def add(self, chunk: FrameChunk) -> None: ...

    def finish(self) -> Features: ...


class FeatureCache(Protocol):
    """Where extracted per-clip features are kept between runs (implemented by :mod:`moee_bench.bench.suite.store` on
    :class:`DigestCheckedCache`, which every persistent cache should build on).

    ``get`` returns None for an entry that is absent *or not trusted* (its content does not match the digest
    recorded when it was put); ``rejected`` maps such a key to the one-line reason, so the caller can say
    that the entry was recomputed instead of used.

    A cache may also define ``put_reading(key, feats, reads)``, called instead of ``put`` with the inputs the
    features were extracted from (``{"gt"}``, ``{"pred"}``, ``{"pred", "gt"}``...), to keep some apart
    (:class:`moee_bench.bench.suite.store.GTFeatureCache` keeps the GT-only ones across runs)."""

    rejected: dict[str, str]

    def get(self, key: str) -> Features | None: ...

    def put(self, key: str, feats: Features) -> None: ...


class DigestCheckedCache(abc.ABC):
    """A feature cache that never serves a byte it did not write: :meth:`put` records the sha256 of the
    entry's serialised bytes in an index kept apart from the entry (a subclass stores it, e.g. in SQLite), and
    :meth:`get` recomputes the digest of what it reads before parsing it. A mismatch, an entry with no
    recorded digest, or an unreadable one is a miss, with the reason kept in :attr:`rejected` (never served).
    Subclasses provide the byte storage (``_read``/``_write``) and the digest index (``_digest``/``_record``)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.rejected: dict[str, str] = {}

    @abc.abstractmethod
    def _read(self, key: str) -> bytes | None:
        """The entry's bytes, or None if there is none."""

    @abc.abstractmethod
    def _write(self, key: str, data: bytes) -> None:
        """Store the entry's bytes (atomically)."""

    @abc.abstractmethod
    def _digest(self, key: str) -> str | None:
        """The sha256 recorded for ``key`` by :meth:`_record`, or None."""

    @abc.abstractmethod
    def _record(self, key: str, sha256: str, nbytes: int) -> None:
        """Record the digest of the bytes just written under ``key``."""

    def get(self, key: str) -> Features | None:
        """The features under ``key`` if present and matching their recorded digest, else None."""
        data = self._read(key)
        if data is None:
            self.misses += 1
            return None
        want = self._digest(key)
        got = hashlib.sha256(data).hexdigest()
        if want != got:
            self.rejected[key] = ("no digest was recorded for it" if want is None else
                                  f"its content digest {got[:12]} does not match the recorded {want[:12]} "
                                  "(changed after it was written)")
            self.misses += 1
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            self.rejected[key] = f"unreadable ({e})"
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, feats: Features) -> None:
        """Store ``feats`` under ``key`` and record their digest."""
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in feats.items()})
        data = buf.getvalue()
        self._write(key, data)
        self._record(key, hashlib.sha256(data).hexdigest(), len(data))


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
    retired: Mapping[str, str] | None = None     # former value -> what to give instead (refused with that message)

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
        if self.retired and v in self.retired:
            raise ValueError(f"{v!r} is no longer accepted: {self.retired[v]}")
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


@dataclass(frozen=True)
class State:
    """One declared piece of a metric's state: its fresh value and how two processes' values merge.

    ``merge="sum"``: numbers and arrays add; dicts add key by key (a key only one side has is copied);
    lists add element by element; records (:class:`MeanState`, :class:`~moee_bench.metrics.core.frechet.Moments`:
    objects with ``MERGED`` fields) add field by field. ``merge="cat"``: lists are concatenated."""

    default: Callable[[], Any]             # a fresh value: int, float, MeanState, lambda: np.zeros(...), ...
    merge: str = "sum"                     # "sum" | "cat"


class Metric(abc.ABC):
    """Base class of every metric. Subclasses set the class attributes and implement the abstract methods.

    ``PARAMS`` declares every parameter key the metric reads from ``options.params``: keys no
    requested metric declares are refused before any work (:func:`moee_bench.metrics.core.registry.check_params`).
    ``states`` declares the state (:class:`State`): :meth:`reset`, :meth:`state_dict`, :meth:`load_state_dict`
    and :meth:`merge` work from it. ``min_size`` is the smallest frame side (pixels) the metric can score."""

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]                 # aggregate keys compute() returns
    higher_is_better: ClassVar[Mapping[str, bool]]  # per key
    reference: ClassVar[str] = ""                  # the implementation it matches (`moee-bench metrics`)
    needs_gt: ClassVar[bool] = False
    needs_audio: ClassVar[bool] = False
    needs_ref: ClassVar[bool] = False
    needs_emotion: ClassVar[bool] = False
    #: bump when the extraction code changes what it returns: every cached feature of the metric is then recomputed
    extractor_version: ClassVar[int] = 1
    #: the parts of one clip's features and the inputs (``pred``, ``gt``, ``ref``, ``audio``, ``emotion``) each reads
    parts: ClassVar[Mapping[str, tuple[str, ...]]] = {"pair": ("pred", "gt")}
    PARAMS: ClassVar[Mapping[str, Param]] = {}
    #: the state: attribute name -> how it starts and merges (set by :meth:`reset`)
    states: ClassVar[Mapping[str, State]] = {}
    #: set-level metrics (FID, FVD, ...) recompute their aggregate from per-clip features: :meth:`from_features`
    set_level: ClassVar[bool] = False
    min_size: int = 1

    @classmethod
    def parameters(cls) -> Mapping[str, Param]:
        """Every parameter key the metric reads: its ``PARAMS`` (a metric built on another adds that one's)."""
        return cls.PARAMS

    @classmethod
    def param_value(cls, options: Any, key: str) -> Any:
        """The value of one declared parameter: ``options.params[key]`` parsed by its declaration, else the
        declared default. Constructors read their parameters only through this, so the declaration is the one
        list of what is accepted; reading an undeclared key is a bug (``KeyError``)."""
        spec = cls.parameters()[key]
        params = getattr(options, "params", None) or {}
        if key not in params:
            return spec.default
        try:
            return spec.parse(params[key])
        except ValueError as e:
            raise ValueError(f"{cls.name} parameter {key}: {e}") from None

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Every declared state back to its fresh value."""
        for name, st in self.states.items():
            setattr(self, name, st.default())

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that changes the values (sizes, variants, options); JSON-serialisable."""

    def weight_files(self) -> list[ResolvedWeights]:
        """Every weight file this metric resolved (their sha256 are part of its features' identity)."""
        return []

    def feature_config(self) -> dict[str, Any]:
        """The part of :meth:`config` that changes the extracted features (default: all of it)."""
        return self.config()

    def feature_parts(self) -> Mapping[str, tuple[str, ...]]:
        """The parts this instance extracts and the inputs each reads (default: :attr:`parts`)."""
        return self.parts

    def part_config(self, part: str, ctx: ClipContext) -> dict[str, Any]:
        """What one part's extraction does differently from the others (e.g. a clip rule for real videos only).
        Default: nothing, so a video's ``pred`` and ``gt`` features are the same and serve either side."""
        return {}

    def extractor(self, ctx: ClipContext) -> FeatureExtractor:
        """A feature extractor fed :class:`FrameChunk` s (pred and GT frames together) for one clip.

        Paired metrics (``parts = {"pair": ...}``) implement this. For a metric extracted per part the
        default feeds the chunk's pred and GT frames to its ``pred``/``gt`` parts (and runs its ``ref``
        part) and returns :meth:`combine` of them: the features the evaluator's per-part path gives."""
        if "pair" in self.feature_parts():
            raise NotImplementedError(f"{type(self).__name__} must implement extractor()")
        return _CombinedExtractor(self, ctx)

    def part_extractor(self, ctx: ClipContext, part: str) -> FeatureExtractor:
        """A fresh extractor for one part of one clip: ``pair`` is fed :class:`FrameChunk` s, ``pred``/``gt``
        :class:`VideoChunk` s of that video, ``ref`` nothing (its ``finish`` reads ``ctx.ref_image``)."""
        if part == "pair":
            return self.extractor(ctx)
        raise NotImplementedError(f"{type(self).__name__} has no extractor for part {part!r}")

    @classmethod
    def combine(cls, parts: Mapping[str, Features]) -> Features:
        """One clip's features from its parts, as :meth:`update` receives them.

        Default: a single part as it is; ``pred`` and ``gt`` parts of the form ``{"x": (n, ...)}`` become
        ``{"pred": x_pred[:k], "gt": x_gt[:k]}``, ``k`` the shorter side (the pairing rule of the frames:
        truncate to the shorter). Metrics with other parts override this."""
        parts = {p: {k: v for k, v in f.items() if not k.startswith("_")} for p, f in parts.items()}   # evaluator's keys
        if set(parts) == {"pred", "gt"}:
            p, g = np.asarray(parts["pred"]["x"]), np.asarray(parts["gt"]["x"])
            k = min(len(p), len(g))
            return {"pred": p[:k], "gt": g[:k]}
        if len(parts) == 1:
            return next(iter(parts.values()))
        raise NotImplementedError(f"{cls.__name__} must implement combine() for parts {sorted(parts)}")

    @abc.abstractmethod
    def update(self, ctx: ClipContext, feats: Features) -> dict[str, Any]:
        """Add one clip's features to the state and return its per-clip values.

        Set-level metrics (FID, FVD) must accept ``ctx=None`` so that reports can rebuild their
        state from cached features (bootstrap over clips)."""

    def state_dict(self) -> dict[str, Any]:
        """The state as plain numbers / numpy arrays / dicts / lists (mergeable, serialisable)."""
        return {name: _plain(getattr(self, name)) for name in self.states}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state."""
        self.reset()
        self._add_state(state)

    def _add_state(self, state: Mapping[str, Any]) -> None:
        """Add a :meth:`state_dict` to this one, unchecked (:meth:`merge` checks first)."""
        for name, st in self.states.items():
            setattr(self, name, _merged(getattr(self, name), state[name], st.merge))

    @abc.abstractmethod
    def compute(self) -> dict[str, Any]:
        """Aggregate values for :attr:`keys`; a value that cannot be computed is None with ``<key>_reason``."""

    # identity, cache keys, checked merging ---------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What makes two instances compute the same features: name, extractor version, feature config,
        and the sha256 of every weight file resolved."""
        return {"metric": self.name, "extractor_version": self.extractor_version, "config": self.feature_config(),
                "weights": sorted([r.spec.name, r.sha256] for r in self.weight_files())}

    def feature_id(self) -> str:
        """Digest of :meth:`identity`."""
        return _digest(self.identity())[:24]

    def cache_key(self, part: str, ctx: ClipContext) -> str:
        """The cache key of one part of one clip's features: :meth:`feature_id`, the part, its
        :meth:`part_config`, and the identities (``ctx.inputs``) of the inputs the part reads; for a video
        part also the fps, size and decoding.

        A ``pred`` or ``gt`` part is keyed by its video's content (not by its side, unless its
        :meth:`part_config` says the sides differ), so one file's features serve it as GT for every method
        and as pred (the ``ground-truth`` method) alike."""
        reads = self.feature_parts()[part]
        missing = [r for r in reads if r not in ctx.inputs]
        if missing:
            raise KeyError(f"{self.name}: the identity of input(s) {missing} of part {part!r} was not computed")
        inputs = {r: ctx.inputs[r] for r in reads}
        blob: dict[str, Any] = {"feature_id": self.feature_id(), "part": part, "inputs": inputs,
                                "part_config": self.part_config(part, ctx)}
        if part in VIDEO_PARTS:
            blob["part"] = "video"
            inputs["video"] = inputs.pop(part)
        if part != "ref":
            blob.update(fps=ctx.fps, size=list(ctx.size) if ctx.size else None, decode=ctx.decode)
        return _digest(blob)

    def snapshot(self) -> dict[str, Any]:
        """The state with what it was computed with (name, config, identity), for merging across processes."""
        return {"metric": self.name, "config": self.config(), "identity": self.identity(), "state": self.state_dict()}

    def merge(self, other: "Metric | Mapping[str, Any]") -> None:
        """Add another instance's state, or a :meth:`snapshot` of one (another process's), to this one; refused
        unless it is the same metric with the same config and feature identity (weights included)."""
        if isinstance(other, Metric) and type(other) is not type(self):
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}: different metric")
        snap = other.snapshot() if isinstance(other, Metric) else other
        own = {"metric": self.name, "config": self.config(), "identity": self.identity()}
        theirs = {k: snap.get(k) for k in own}
        if _digest(own) != _digest(theirs):
            diff = sorted(k for k in own if _digest(own[k]) != _digest(theirs[k]))
            raise ValueError(f"cannot merge a {snap.get('metric')} state into {self.name}: different {', '.join(diff)}")
        self._add_state(snap["state"])

    @classmethod
    def from_features(cls, clip_feats: Sequence[Features], settings: Mapping[str, Any], *,
                      resample: bool = False) -> dict[str, Any]:
        """The aggregate of a set-level metric from per-clip features (``combine`` d), without the network: the
        function its :meth:`compute` calls, and the bootstrap's recomputation on resampled clips. ``settings``: the
        metric's recorded protocol (what changes the formula, e.g. FVD's ``variant``); ``resample``: the cheaper
        form a bootstrap uses where one exists."""
        raise NotImplementedError(f"{cls.__name__} is not a set-level metric")

    def protocol(self) -> dict[str, Any]:
        """What a reader needs to reproduce the number (defaults to the config)."""
        return {"metric": self.name, **self.config()}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A state value as plain data (a copy): records as dicts of their ``MERGED`` fields."""
    if hasattr(value, "MERGED"):
        return {k: _plain(getattr(value, k)) for k in value.MERGED}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def _merged(own: Any, theirs: Any, how: str) -> Any:
    """``own`` with ``theirs`` added by the rule ``how`` (:class:`State`); arrays and records change in place."""
    if how == "cat":
        return list(own) + [_plain(v) for v in theirs]
    if how != "sum":
        raise ValueError(f"unknown state merge rule {how!r}")
    if hasattr(own, "MERGED"):
        for k in own.MERGED:
            setattr(own, k, _merged(getattr(own, k), theirs[k], how))
        return own
    if isinstance(own, dict):
        for k, v in theirs.items():
            own[k] = _merged(own[k], v, how) if k in own else _plain(v)
        return own
    if isinstance(own, list):
        if len(own) != len(theirs):
            raise ValueError(f"cannot add a list of {len(theirs)} to one of {len(own)}")
        return [_merged(a, b, how) for a, b in zip(own, theirs)]
    if isinstance(own, np.ndarray):
        own += np.asarray(theirs, own.dtype)
        return own
    return own + type(own)(theirs)


class _CombinedExtractor:
    """A per-part metric fed :class:`FrameChunk` s: each side's frames go to its part, ``finish`` combines."""

    def __init__(self, metric: Metric, ctx: ClipContext) -> None:
        self.metric = metric
        self.parts = {p: metric.part_extractor(ctx, p) for p in metric.feature_parts()}

    def add(self, chunk: FrameChunk) -> None:
        for side, frames in (("pred", chunk.pred), ("gt", chunk.gt)):
            if side in self.parts and frames is not None:
                self.parts[side].add(VideoChunk(chunk.start, frames))

    def finish(self) -> Features:
        return self.metric.combine({p: ex.finish() for p, ex in self.parts.items()})


class MeanState:
    """Float64 sum / sum of squares / count of per-clip values, mergeable (shared by clip-averaged metrics)."""

    MERGED = ("total", "total_sq", "count")      # fields a merge adds (:class:`State`)

    def __init__(self) -> None:
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0

    def add(self, v: float, n: int = 1) -> None:
        self.total += float(v) * n
        self.total_sq += float(v) ** 2 * n
        self.count += n

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class FrameMeanMetric(Metric):
    """A metric whose per-frame values (features ``{key: (n,)}``) are averaged over every frame of every clip.

    Subclasses set ``name``, ``keys = (key,)`` and implement :meth:`config` and :meth:`extractor`."""

    states = {"frames": State(MeanState)}

    @property
    def key(self) -> str:
        return self.keys[0]

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        v = np.asarray(feats[self.key], np.float64)
        if len(v) == 0:
            raise ClipError(ctx.clip_id if ctx else None, "no frame pairs to compare", status="too_short")
        for x in v:
            self.frames.add(float(x))
        return {self.key: float(v.mean()), f"{self.key}_nframes": len(v)}   # the clip's weight in the aggregate

    def compute(self) -> dict[str, Any]:
        m = self.frames.mean()
        return {self.key: m} if m is not None else {self.key: None, f"{self.key}_reason": "no scored frames"}
