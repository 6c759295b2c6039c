"""``data validate``: check every clip of a manifest and say what is wrong with which clip."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.paths import safe_name

FPS_RANGE = (10.0, 120.0)
MAX_DURATION = 3600.0


@dataclass
class ValidationReport:
    ok: list[ClipRecord] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)   # clip id -> problems
    notes: dict[str, list[str]] = field(default_factory=dict)      # clip id -> facts worth knowing (not problems)

    def add(self, clip_id: str, msg: str) -> None:
        self.problems.setdefault(clip_id, []).append(msg)


def id_problems(clips: list[ClipRecord]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Clip ids that cannot be used safely as they are (problems) and ids stored under an encoded
    file name (notes). Ids that differ only in letter case get files that collide on case-insensitive
    file systems (macOS, Windows); surrounding spaces are almost always an import mistake."""
    problems: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    by_fold: dict[str, list[str]] = {}
    for c in clips:
        cid = c.clip_id
        if cid != cid.strip():
            problems.setdefault(cid, []).append(f"clip id {cid!r} has leading or trailing spaces")
        name = safe_name(cid)
        if name != cid:
            how = "cut and hashed: too long" if "~" in name else "=XX-escaped: not a plain file name"
            notes.setdefault(cid, []).append(f"videos of this clip are named {name}.mp4 ({how})")
        by_fold.setdefault(name.casefold(), []).append(cid)
    for ids in by_fold.values():
        for cid in ids if len(ids) > 1 else []:
            others = [i for i in ids if i != cid]
            problems.setdefault(cid, []).append(f"clip id {cid!r} differs from {others!r} only in letter case: their "
                                                "files collide on case-insensitive file systems (macOS, Windows)")
    return problems, notes


def validate_clip(m: Manifest, clip: ClipRecord) -> list[str]:
    """Problems of one clip (empty when fine)."""
    problems: list[str] = []
    try:
        video = m.media_path(clip, "video")
        info = media.probe(video, clip_id=clip.clip_id)
        if not (math.isfinite(info.fps) and FPS_RANGE[0] <= info.fps <= FPS_RANGE[1]):
            problems.append(f"frame rate {info.fps:g} outside {FPS_RANGE}")
        if not (math.isfinite(info.duration) and 0 < info.duration <= MAX_DURATION):
            problems.append(f"duration {info.duration:g} s is not sane")
        if clip.fps is not None and info.fps and abs(info.fps - clip.fps) > 0.01:
            problems.append(f"manifest says {clip.fps:g} fps, the file has {info.fps:g}")
        if clip.duration is not None and info.duration and \
                abs(info.duration - clip.duration) > max(0.5, 0.05 * clip.duration):
            problems.append(f"manifest says {clip.duration:g} s, the file lasts {info.duration:g} s")
        first = media.first_frame(video, clip_id=clip.clip_id)
        if first.size == 0:
            problems.append("zero-size frames")
        if clip.audio is not None:
            a = media.read_audio(m.media_path(clip, "audio"), clip_id=clip.clip_id)
            if len(a) < 1600:
                problems.append(f"driving audio has only {len(a)} samples")
            problems += audio_problems(a, info.duration)
        elif not info.has_audio:
            problems.append("no audio: neither an audio file nor an audio stream in the video")
        if clip.ref_image is not None:
            media.read_image(m.media_path(clip, "ref_image"), clip_id=clip.clip_id)
    except BenchError as e:
        problems.append(str(e).removeprefix(f"clip {clip.clip_id}: "))
    return problems


def audio_problems(audio: np.ndarray, video_seconds: float, rate: int = media.AUDIO_RATE) -> list[str]:
    """A driving audio that is digital silence, or much shorter or longer than its video (by more than
    0.5 s and 10 % of the video): Sync would score it against nothing, or at the edge of its offset search."""
    out = []
    if len(audio) and float(np.abs(audio).max()) < 0.5 / 32768:
        out.append("driving audio is digital silence (every sample rounds to 0 in 16-bit)")
    seconds = len(audio) / rate
    if math.isfinite(video_seconds) and abs(seconds - video_seconds) > max(0.5, 0.1 * video_seconds):
        out.append(f"driving audio lasts {seconds:.2f} s, the video {video_seconds:.2f} s")
    return out


def validate_manifest(m: Manifest) -> ValidationReport:
    """Check every clip (ids usable as file names, paths inside the root, readable media, streams,
    fps/duration; labels and numbers are checked when the manifest is read)."""
    rep = ValidationReport()
    id_probs, rep.notes = id_problems(m.clips)
    for clip in m.clips:
        probs = id_probs.get(clip.clip_id, []) + validate_clip(m, clip)
        if probs:
            for p in probs:
                rep.add(clip.clip_id, p)
        else:
            rep.ok.append(clip)
    return rep
