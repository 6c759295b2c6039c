"""The method protocol: what a talking-head method declares and how it is asked for a video.

A method turns :class:`GenerationRequest` s into mp4 files at ``request.out_path``. The suite's
output convention is 25 fps (by timestamps), the request's resolution, and the driving audio
muxed in; an adapter whose method produces something else normalises its output
(``baselines.normalize``) and records what it did in :attr:`GenerationResult.normalisation`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from moee_bench.bench.core.emotions import EmotionSpec
from moee_bench.bench.core.errors import outcome

EMOTION_INPUTS = frozenset({"label", "compound", "mixture", "text", "audio", "none"})


@dataclass(frozen=True)
class Capabilities:
    """What a method accepts and produces natively."""

    emotion_inputs: frozenset[str] = frozenset({"none"})
    native_fps: float = 25.0
    native_size: tuple[int, int] = (512, 512)        # (height, width)
    seedable: bool = True
    recrops_face: bool = False
    emotion_vocabulary: tuple[str, ...] = ()          # labels the method itself understands, if any

    def __post_init__(self) -> None:
        bad = set(self.emotion_inputs) - EMOTION_INPUTS
        if bad:
            raise ValueError(f"unknown emotion input kinds {sorted(bad)}; known: {sorted(EMOTION_INPUTS)}")


@dataclass
class GenerationRequest:
    """One video to generate."""

    clip_id: str
    ref_image: Path
    audio: Path                              # driving speech (wav, or a video whose track is used)
    out_path: Path
    emotion: EmotionSpec | None = None
    emotion_text: str | None = None
    emotion_audio: Path | None = None
    seed: int = 0
    fps: float = 25.0
    size: tuple[int, int] | None = None      # (height, width); None: the method's native size
    num_frames: int | None = None            # None: as long as the audio at ``fps``
    gt_video: Path | None = None             # only the ground-truth method reads this
    extra: dict[str, Any] = field(default_factory=dict)
    ref_source: str | None = None            # where ref_image comes from (bench.core.references ReferenceChoice.source)


@dataclass
class GenerationResult:
    """What happened for one request."""

    clip_id: str
    path: Path
    seconds: float
    n_frames: int
    normalisation: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"                       # ok | missing | error
    message: str = ""


class Method(abc.ABC):
    """Base class of every method adapter."""

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    capabilities: ClassVar[Capabilities] = Capabilities()
    generates: ClassVar[bool] = True        # False: copies or holds existing frames, so it has no generation speed

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Write ``request.out_path`` and describe what was done."""

    def batch_size(self) -> int:
        """How many requests :meth:`generate_batch` takes at once (1: one at a time)."""
        return 1

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Generate several requests; each entry is that request's result or the exception that stopped it (bugs
        propagate). This default asks :meth:`generate` one request at a time; a method that runs a batch through
        its network at once overrides it."""
        return [outcome(lambda: self.generate(req)) for req in requests]

    def load(self) -> bool:
        """Load the model before the first clip, so that its load time is measured apart from per-clip time.

        Returns False when the method has no separate load step (built-ins load nothing; subprocess
        baselines load their model inside every clip's process, so it is part of their per-clip time)."""
        return False

    def training_data(self) -> list[dict[str, Any]] | str:
        """What the method was trained on: a list of ``{dataset, manifest_hash, split, split_hash, identities}``
        entries when known (moee-ref checkpoints record them), else ``"unknown"`` (baselines trained elsewhere)."""
        return "unknown"

    def skip_reason(self, emotion: EmotionSpec | None) -> str | None:
        """Why this method cannot be asked for ``emotion`` (a label outside the MoEE taxonomy that its emotion
        vocabulary lacks), or None. Methods without a vocabulary (no emotion input, ground truth, precomputed
        videos) take every clip."""
        vocab = self.capabilities.emotion_vocabulary
        if emotion is None or emotion.in_taxonomy or not vocab or emotion.label in vocab:
            return None
        return (f"emotion {emotion.label!r} is outside the MoEE taxonomy and not in {self.name}'s emotion vocabulary "
                f"({', '.join(vocab)})")

    def describe(self) -> dict[str, Any]:
        """Name, version, capabilities, config and training data, for run metadata."""
        c = self.capabilities
        return {"name": self.name, "version": self.version, "generates": self.generates,
                "emotion_inputs": sorted(c.emotion_inputs), "native_fps": c.native_fps,
                "native_size": list(c.native_size), "seedable": c.seedable, "recrops_face": c.recrops_face,
                "config": {k: str(v) for k, v in self.config.items()}, "training_data": self.training_data()}
