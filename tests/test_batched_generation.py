"""Batched generation: ``moee-ref`` denoises a batch of clips at once (``batch``), and the one generation loop
(``bench/suite/runner.py`` ``generate_clips``) hands methods their requests in batches. A clip's frames must not
depend on its batch-mates (each keeps its own seed and motion frames), and one clip's broken input must not cost the
others theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moee_bench.baselines.base import GenerationRequest, GenerationResult, Method
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.suite.runner import generate_clips
from moee_bench.moee_ref.method import MoEERef
from moee_bench.moee_ref.pipeline import EmotionCondition, Sample


def _samples(manifest: Path, picks: list[tuple[str, int, int]]) -> list[Sample]:
    m = load_manifest(manifest)
    by_id = {c.clip_id: c for c in m.clips}
    out = []
    for clip_id, n, seed in picks:
        c = by_id[clip_id]
        out.append(Sample(media.read_image(m.media_path(c, "ref_image")), media.read_audio(m.media_path(c, "audio")),
                          EmotionCondition("label", weights=tuple(c.emotion.weights)), n, seed))
    return out


def test_a_clips_frames_do_not_depend_on_its_batch_mates(sample_manifest: Path):
    """Three clips of different lengths, identities and seeds: the batch gives each the frames it gets alone, to
    within one grey level in a handful of pixels (batched kernels sum in another order)."""
    pipe = MoEERef({"checkpoint": "builtin:tiny"}).pipeline()
    samples = _samples(sample_manifest, [("astronaut_happiness", 9, 0), ("lfw12_sadness", 6, 5),
                                         ("astronaut_neutral", 5, 2)])
    alone = [pipe(s.ref_image, s.wave, s.emotion, num_frames=s.num_frames, seed=s.seed, steps=2) for s in samples]
    together = pipe.generate_batch(samples, steps=2)
    for a, b in zip(alone, together):
        assert a.shape == b.shape
        d = np.abs(a.astype(int) - b.astype(int))
        assert d.max() <= 1 and (d > 0).mean() < 1e-3
    # the seed is the clip's own: another seed in the batch changes that clip only
    other = pipe.generate_batch([samples[0], Sample(*[getattr(samples[1], k) for k in
                                                      ("ref_image", "wave", "emotion", "num_frames")], seed=6)], steps=2)
    assert np.abs(other[0].astype(int) - together[0].astype(int)).max() <= 1
    assert np.abs(other[1].astype(int) - together[1].astype(int)).mean() > 1


class _Counting(Method):
    """A method that records the batches it is given and fails the clips whose id says so."""

    name = "counting"

    def __init__(self, size: int) -> None:
        super().__init__({})
        self.size, self.batches = size, []

    def batch_size(self) -> int:
        return self.size

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if "bad" in request.clip_id:
            raise ClipError(request.clip_id, "unreadable reference", status="bad_input")
        return GenerationResult(request.clip_id, request.out_path, 0.0, 1)

    def generate_batch(self, requests):
        self.batches.append([r.clip_id for r in requests])
        return super().generate_batch(requests)


def test_the_generation_loop_batches_and_keeps_each_clips_status(tmp_path: Path):
    class Clip:
        def __init__(self, clip_id: str) -> None:
            self.clip_id, self.emotion = clip_id, None

    clips = [Clip(c) for c in ("a", "b", "bad1", "c", "d")]
    method = _Counting(2)
    plan = lambda c: (GenerationRequest(c.clip_id, tmp_path, tmp_path, tmp_path / f"{c.clip_id}.mp4"), None)
    steps = list(generate_clips(method, clips, plan))
    assert method.batches == [["a", "b"], ["bad1", "c"], ["d"]]
    assert [(s.clip.clip_id, s.status) for s in steps] == [("a", "ok"), ("b", "ok"), ("bad1", "bad_input"),
                                                          ("c", "ok"), ("d", "ok")]
    assert steps[2].reason == "unreadable reference"


def test_a_bug_in_a_batch_propagates(tmp_path: Path):
    class Buggy(_Counting):
        def generate(self, request):
            raise AttributeError("a bug, never a clip's status")

    plan = lambda c: (GenerationRequest(c.clip_id, tmp_path, tmp_path, tmp_path / "x.mp4"), None)

    class Clip:
        clip_id, emotion = "a", None

    with pytest.raises(AttributeError):
        list(generate_clips(Buggy(4), [Clip()], plan))
