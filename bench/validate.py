"""``data validate``: check every clip of a manifest and say what is wrong with which clip."""

from __future__ import annotations

from dataclasses import dataclass, field

from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.manifest import ClipRecord, Manifest

FPS_RANGE = (10.0, 120.0)
MAX_DURATION = 3600.0


@dataclass
class ValidationReport:
    ok: list[ClipRecord] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)   # clip id -> problems

    def add(self, clip_id: str, msg: str) -> None:
        self.problems.setdefault(clip_id, []).append(msg)


def validate_clip(m: Manifest, clip: ClipRecord) -> list[str]:
    """Problems of one clip (empty when fine)."""
    problems: list[str] = []
    try:
        video = m.media_path(clip, "video")
        info = media.probe(video, clip_id=clip.clip_id)
        if not FPS_RANGE[0] <= info.fps <= FPS_RANGE[1]:
            problems.append(f"frame rate {info.fps:g} outside {FPS_RANGE}")
        if not 0 < info.duration <= MAX_DURATION:
            problems.append(f"duration {info.duration:g} s is not sane")
        if clip.fps is not None and info.fps and abs(info.fps - clip.fps) > 0.01:
            problems.append(f"manifest says {clip.fps:g} fps, the file has {info.fps:g}")
        first = media.first_frame(video, clip_id=clip.clip_id)
        if first.size == 0:
            problems.append("zero-size frames")
        if clip.audio is not None:
            a = media.read_audio(m.media_path(clip, "audio"), clip_id=clip.clip_id)
            if len(a) < 1600:
                problems.append(f"driving audio has only {len(a)} samples")
        elif not info.has_audio:
            problems.append("no audio: neither an audio file nor an audio stream in the video")
        if clip.ref_image is not None:
            media.read_image(m.media_path(clip, "ref_image"), clip_id=clip.clip_id)
    except BenchError as e:
        problems.append(str(e).removeprefix(f"clip {clip.clip_id}: "))
    return problems


def validate_manifest(m: Manifest) -> ValidationReport:
    """Check every clip (paths inside the root, readable media, streams, fps/duration, labels parsed at load)."""
    rep = ValidationReport()
    for clip in m.clips:
        probs = validate_clip(m, clip)
        if probs:
            for p in probs:
                rep.add(clip.clip_id, p)
        else:
            rep.ok.append(clip)
    return rep
