"""Decode each video once and feed every requested metric from that one pass.

Pairing rules (pred vs GT): clips are matched by id; both streams are resampled to ``fps``
(25 by default) by timestamps and brought to ``size`` (default: the GT's resolution, else the
pred's) by the one ingest rule of :mod:`moee_bench.bench.core.media` (a video already at that fps and size is
used exactly as decoded; a conversion is recorded per clip); when the lengths differ the longer is
truncated to the shorter and a warning is recorded (``strict=True`` makes it an error).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import unicodedata
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from moee_bench.bench.core import media
from moee_bench.bench.core.digest import file_digest
from moee_bench.bench.core.errors import BUG_ERRORS, BenchError, ClipError, MediaError
from moee_bench.bench.core.paths import clip_id_of_file, is_temp_file, safe_name
from moee_bench.bench.core.references import ReferenceChoice, reference_pixels
from moee_bench.metrics.core.base import (FRAMES_KEY, VIDEO_PARTS, ClipContext, ClipInput, FeatureCache, FeatureExtractor,
                                     Features, FrameChunk, Metric, VideoChunk)
from moee_bench.metrics.core.frames import ArrayReader, content_id, is_frames

#: how the evaluator turns a file into frames; part of every video feature's cache identity (change it with the decoding)
DECODE = (f"{media.DECODE}; fps by nearest timestamp; {media.RESIZE_KERNEL} to the evaluation size "
          "when the decoded size differs")
NOTES_KEY = "_notes"                   # stored with a video part: what ingest did to its video(s), reported on cache hits


@dataclass
class ClipOutcome:
    """Per-clip values of every metric, with statuses and warnings."""

    clip_id: str
    values: dict[str, Any] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)     # metric -> ok | no_face | ... | error
    messages: dict[str, str] = field(default_factory=dict)   # metric -> reason when not ok
    warnings: list[str] = field(default_factory=list)
    n_frames: int = 0
    seconds: float = 0.0
    cached: list[str] = field(default_factory=list)          # "metric/part" found in the cache
    extracted: list[str] = field(default_factory=list)       # "metric/part" computed (and cached, if a cache is given)
    feature_keys: dict[str, dict[str, str]] = field(default_factory=dict)   # metric -> part -> feature cache key
    ref_source: str | None = None                            # where the reference portrait came from

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip": self.clip_id, **self.values, "status": dict(self.status)}
        if self.ref_source is not None:
            d["ref_source"] = self.ref_source
        if self.messages:
            d["messages"] = dict(self.messages)
        if self.warnings:
            d["warnings"] = list(self.warnings)
        d["n_frames"] = self.n_frames
        return d


@dataclass
class EvalResult:
    clips: list[ClipOutcome]
    metrics: dict[str, Any]
    protocol: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "clips": [c.to_dict() for c in self.clips], "protocol": self.protocol}


def reference_of(clip: ClipInput) -> ReferenceChoice:
    """The reference portrait of a clip: the policy's choice, else the given image, else the first frame of the GT
    (or of the pred without GT), which leaks the target and says so."""
    if clip.reference is not None:
        return clip.reference
    if clip.ref_image is not None:
        return ReferenceChoice("given", image=clip.ref_image)
    src, what = (clip.gt, "GT") if clip.gt is not None else (clip.pred, "generated")
    return ReferenceChoice(f"first-frame:{clip.clip_id}", video=src,
                           warning=f"clip {clip.clip_id}: no reference image (no manifest reference, no neutral clip of "
                                   f"the identity): the reference is the first frame of the {what} video itself, which "
                                   "leaks the target into CSIM")


def _content(x: Path | np.ndarray) -> str:
    """The content identity of an input: a file's sha256, an in-memory array's (:mod:`metrics.core.frames`)."""
    return content_id(x) if is_frames(x) else file_digest(x)


def _ref_pixels(ref: ReferenceChoice, clip_id: str) -> np.ndarray:
    """The reference's pixels; an in-memory image or clip (frame ``ref.frame``) is used as it is."""
    if is_frames(ref.image):
        return ref.image
    if ref.image is None and is_frames(ref.video):
        return ref.video[ref.frame]
    return reference_pixels(ref, clip_id=clip_id)


def _one_line(e: BaseException) -> str:
    if isinstance(e, ClipError):
        return e.reason.splitlines()[0] if e.reason else e.status
    msg = (str(e).splitlines() or [""])[0]
    return f"{type(e).__name__}: {msg}"[:300]


def _fail(out: "ClipOutcome", names: Sequence[str], e: Exception) -> None:
    """Record ``e`` as the status of ``names`` for this clip (a bug propagates instead)."""
    if isinstance(e, BUG_ERRORS):
        raise e
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise e                        # a full disk stops the run (exit 2, a re-run resumes), never a clip's status
    status = e.status if isinstance(e, ClipError) else "error"
    for n in names:
        out.status[n], out.messages[n] = status, _one_line(e)


def _conversion_notes(side: str, reader: media.FrameReader, fps: float) -> list[str]:
    notes = [f"{side}: {n}" for n in reader.notes]
    if reader.resampled and reader.source_fps:
        if abs(reader.source_fps - fps) < 1e-6:      # the stated rate already: its timestamps have gaps or jitter
            notes.append(f"resampled: {side} {fps:g} fps with uneven timestamps -> a frame every 1/{fps:g} s "
                         "(nearest timestamp; frames repeated or dropped)")
        else:
            notes.append(f"resampled: {side} {reader.source_fps:g} -> {fps:g} fps (nearest timestamp)")
    if reader.resized:
        (h0, w0), (h, w) = reader.source_size, reader.size
        notes.append(f"resized: {side} {w0}x{h0} -> {w}x{h} ({media.RESIZE_KERNEL})")
        if w0 * h0 * 16 < w * h:
            notes.append(f"upscaled: {side} is {w0}x{h0}, {w * h / (w0 * h0):.0f} times fewer pixels than the {w}x{h} "
                         "it is scored at; its scores say little about the method")
    return notes


def _probe_size(clip: ClipInput, size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is not None:
        return size
    src, stream = (clip.gt, clip.gt_video_stream) if clip.gt is not None else (clip.pred, clip.video_stream)
    if is_frames(src):
        return (int(src.shape[1]), int(src.shape[2]))
    info = media.probe(src, clip_id=clip.clip_id, video_stream=stream)
    return (info.height, info.width)


def evaluate(clips: Sequence[ClipInput], metrics: Sequence[Metric], *, fps: float = 25.0,
             size: tuple[int, int] | None = None, strict: bool = False, cache: FeatureCache | None = None,
             chunk: int = 32, progress: bool = True, fail_fast: bool = False,
             on_clip: Callable[[ClipOutcome], None] | None = None, compute: bool = True,
             desc: str = "scoring") -> EvalResult:
    """Score ``clips`` with ``metrics`` (states accumulate in the metric objects) and return per-clip outcomes.

    ``compute=False`` leaves the aggregates empty, for a caller that merges states first and computes once
    (the runner: a set-level distance such as FID's ``sqrtm`` costs seconds per call). ``desc`` names the
    progress bar (the runner: method, metrics and clip count)."""
    for m in metrics:
        if getattr(m, "needs_feature_cache", False):
            if cache is None:
                raise ValueError(f"metric {m.name!r} reads its features back from the feature cache: pass cache=")
            m.attach_cache(cache)
    outcomes: list[ClipOutcome] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc=desc, unit="clip", file=sys.stderr, leave=False)
    for clip in clips:
        out = score_clip(clip, metrics, fps=fps, size=size, strict=strict, cache=cache, chunk=chunk)
        if fail_fast and any(s == "error" for s in out.status.values()):
            raise ClipError(clip.clip_id, "; ".join(out.messages.values()))
        outcomes.append(out)
        if on_clip is not None:
            on_clip(out)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    aggregate: dict[str, Any] = {}
    for m in metrics if compute else ():
        aggregate.update(m.compute())
    protocol = {"fps": fps, "fps_conversion": "nearest timestamp (ffmpeg fps filter, round=near)",
                "size": list(size) if size else "GT resolution (pred resized to it); pred resolution without GT",
                "ingest": media.ingest_protocol(fps, size), "resize_kernel": media.RESIZE_KERNEL,
                "reference": "the manifest's reference policy (bench.core.references); without a manifest the given "
                             "image, else the GT's first frame (warned: it leaks the target)",
                "length_mismatch": "error" if strict else "truncate to shorter, warn",
                "n_clips": len(clips), "metrics": {m.name: m.protocol() for m in metrics}}
    leaks = sorted(o.clip_id for o in outcomes if any(w.startswith("reference: ") for w in o.warnings))
    if leaks:
        protocol["reference_warning"] = (f"{len(leaks)} clip(s) scored against the first frame of their own target video "
                                         f"as the reference (it leaks the target into CSIM): {', '.join(leaks[:20])}")
    return EvalResult(outcomes, aggregate, protocol)


def _decode_identity(clip: ClipInput) -> str:
    """:data:`DECODE`, plus the video streams chosen by hand (they change what a video part holds)."""
    chosen = [f"{side} video stream 0:v:{n}" for side, n in (("pred", clip.video_stream), ("GT", clip.gt_video_stream))
              if n is not None]
    return "; ".join([DECODE, *chosen])


def score_clip(clip: ClipInput, metrics: Sequence[Metric], *, fps: float = 25.0, size: tuple[int, int] | None = None,
               strict: bool = False, cache: FeatureCache | None = None, chunk: int = 32) -> ClipOutcome:
    """Extract (or fetch cached) features for one clip, part by part, and update every metric with them.

    An exception raised for this clip (decoding, a detector, a lazily resolved weight, a metric's update)
    becomes the status of the metrics it affected, with a one-line reason; bugs propagate (:data:`BUG_ERRORS`)."""
    t0 = time.perf_counter()
    out = ClipOutcome(clip.clip_id)
    ref = reference_of(clip)
    out.ref_source = ref.source
    try:
        for m in metrics:
            if m.needs_gt and clip.gt is None:
                out.status[m.name] = "no_gt"
                out.messages[m.name] = f"{m.name} needs a ground-truth video and the clip has none"
        active = [m for m in metrics if m.name not in out.status]
        if ref.warning and any(m.needs_ref for m in active):
            out.warnings.append("reference: " + ref.warning)
        if clip.gt is not None and _same_file(clip.pred, clip.gt):
            out.warnings.append(f"same file: pred {clip.pred} and GT {clip.gt} are one file (same inode); the clip is "
                                "scored against itself")
        eval_size = _probe_size(clip, size) if active else None
        for m in active:
            if eval_size is not None and min(eval_size) < m.min_size:
                out.status[m.name] = "too_small"
                out.messages[m.name] = (f"frames of {eval_size[1]}x{eval_size[0]} are smaller than the "
                                        f"{m.min_size}x{m.min_size} {m.name} needs")
        active = [m for m in active if m.name not in out.status]
        ctx = ClipContext(clip, fps, eval_size, decode=_decode_identity(clip))
        got = _extract_parts(ctx, active, ref, cache, chunk, out)
        n_pred, n_gt = _lengths(got)
        out.warnings.extend(_ingest_notes(got))
        use_gt = any(m.needs_gt for m in active if m.name in got)
        if use_gt and n_pred is not None and n_gt is not None and n_pred != n_gt:
            msg = (f"truncated: length mismatch at {fps:g} fps: pred has {n_pred} frames, GT has {n_gt}; "
                   f"truncated to {min(n_pred, n_gt)}")
            if strict:
                raise ClipError(clip.clip_id, msg + " (--strict)", status="length_mismatch")
            out.warnings.append(msg)
        out.n_frames = (min(n_pred, n_gt) if use_gt and n_pred is not None and n_gt is not None else n_pred) or 0
        out.feature_keys = {n: k for n, k in out.feature_keys.items() if set(k) == set(got.get(n, {}))}
        ctx.feature_keys = {n: dict(k) for n, k in out.feature_keys.items()}
        for m in active:
            if m.name in out.status or m.name not in got:
                continue
            try:
                out.values.update(m.update(ctx, m.combine(got[m.name])))
                out.status[m.name] = "ok"
            except Exception as e:
                _fail(out, [m.name], e)
        out.warnings.extend(ctx.notes)
    except Exception as e:                          # decoding, probing: every metric not yet settled fails
        _fail(out, [m.name for m in metrics if m.name not in out.status or out.status[m.name] == "ok"], e)
    out.seconds = time.perf_counter() - t0
    return out


def _same_file(a: Any, b: Any) -> bool:
    """Whether the prediction and the GT are one file (same inode); never for frames held in memory."""
    if is_frames(a) or is_frames(b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:                   # a missing file is reported by the decoder
        return False


def _reads(metrics: Sequence[Metric]) -> set[str]:
    return {r for m in metrics for reads in m.feature_parts().values() for r in reads}


def _extract_parts(ctx: ClipContext, active: Sequence[Metric], ref: ReferenceChoice, cache: FeatureCache | None,
                   chunk: int, out: ClipOutcome) -> dict[str, dict[str, Features]]:
    """Every part of every active metric: from the cache where its key is there, else extracted (each
    video decoded at most once, only if some part that reads it is missing) and put in the cache.
    A metric whose extraction fails gets its status in ``out`` and is left out of the result."""
    got: dict[str, dict[str, Features]] = {m.name: {} for m in active}

    def fail(name: str, e: Exception) -> None:
        _fail(out, [name], e)
        got.pop(name, None)

    def load(ms: Sequence[Metric]) -> None:
        """The reference and the audio: only the metrics that need the one that failed fail."""
        try:
            _load_context(ctx, [m for m in ms if m.name in got], ref)
        except Exception as e:
            if isinstance(e, BUG_ERRORS):
                raise
            for m in ms:
                if m.name in got and (m.needs_ref or m.needs_audio):
                    fail(m.name, e)

    todo: dict[str, list[tuple[Metric, str]]] = {}      # cache key (or a stand-in) -> the parts it serves
    rejected: list[str] = []                            # cached parts whose content failed its digest check
    if cache is not None:
        load([m for m in active if m.needs_ref])     # the reference is identified by what was loaded
        ctx.inputs = _input_ids(ctx, _reads([m for m in active if m.name in got]))
    for m in active:
        if m.name not in got:
            continue
        for part in m.feature_parts():
            if cache is None:
                todo[f"{m.name}/{part}"] = [(m, part)]
                continue
            key = m.cache_key(part, ctx)
            out.feature_keys.setdefault(m.name, {})[part] = key
            if key in todo:                          # the same content read twice (pred == GT, KID with FID): once
                todo[key].append((m, part))
                continue
            hit = cache.get(key)
            if hit is not None:
                got[m.name][part] = hit
                out.cached.append(f"{m.name}/{part}")
            else:
                todo[key] = [(m, part)]
                if key in getattr(cache, "rejected", {}):
                    rejected.append(f"{m.name}/{part} ({cache.rejected[key]})")
    if rejected:
        out.warnings.append(f"feature cache: {len(rejected)} cached part(s) not used, recomputed: {'; '.join(rejected)}")
    load([m for group in todo.values() for m, _ in group])

    def done(key: str, feats: Features) -> None:
        for m, part in todo[key]:
            if m.name in got:
                got[m.name][part] = feats
                out.extracted.append(f"{m.name}/{part}")
        if cache is not None:
            put_reading = getattr(cache, "put_reading", None)    # a cache that keeps what depends on GT alone
            if put_reading is not None:
                put_reading(key, feats, {r for m, part in todo[key] for r in m.feature_parts()[part]})
            else:
                cache.put(key, feats)

    def fail_group(key: str, e: Exception) -> None:
        for m, _ in todo[key]:
            if m.name in got:
                fail(m.name, e)

    def alive(key: str) -> bool:
        """Whether some metric served by ``key`` has not failed yet."""
        return any(m.name in got for m, _ in todo[key])

    extractors: dict[str, tuple[str, str, FeatureExtractor]] = {}
    # parts that read no video (the reference image) first: a metric whose reference fails decodes nothing
    for key, group in sorted(todo.items(), key=lambda kv: kv[1][0][1] in ("pair", *VIDEO_PARTS)):
        m, part = group[0]
        if not alive(key):
            continue
        try:
            ex = m.part_extractor(ctx, part)
            if part in ("pair", *VIDEO_PARTS):
                extractors[key] = (m.name, part, ex)
                continue
            feats = ex.finish()
        except Exception as e:
            fail_group(key, e)
            continue
        done(key, feats)
    extractors = {k: v for k, v in extractors.items() if alive(k)}
    if not extractors:
        return got
    counts, notes = _decode(ctx, chunk, extractors, fail_group, alive)
    for key, (name, part, ex) in extractors.items():
        if not alive(key):
            continue
        try:
            feats = dict(ex.finish())
        except Exception as e:
            fail_group(key, e)
            continue
        sides = [s for s in (VIDEO_PARTS if part == "pair" else (part,)) if s in counts]
        feats[FRAMES_KEY] = np.array([counts[s] for s in sides], np.int64)
        feats[NOTES_KEY] = np.array([n.replace("{side}", _SIDE[s]) if part == "pair" else n
                                     for s in sides for n in notes[s]], dtype=str)
        done(key, feats)
    return got


CHUNK_BYTES = 256 * 2**20      # the most frame bytes per side and chunk (32 frames of 1080p; 1 frame of 8192x8192)


def _decode(ctx: ClipContext, chunk: int, extractors: dict[str, tuple[str, str, FeatureExtractor]],
            fail: Callable[[str, Exception], None], alive: Callable[[str], bool]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Decode each video some extractor reads, once, feeding ``pred``/``gt`` extractors every chunk of their
    video and ``pair`` extractors the frames of both aligned by index (the longer video's extra frames
    are not paired; without a GT video, the pred frames alone); returns the number of frames read per
    video and what ingest did to it (resampling, resizing; notes with a ``{side}`` placeholder). An extractor
    that raises fails the metrics it serves (``fail(key, e)``); extractors that serve no live metric
    (``alive(key)``) are dropped."""
    clip = ctx.clip
    if ctx.size is not None:                  # large frames: fewer per chunk, so a chunk stays under CHUNK_BYTES
        chunk = max(1, min(chunk, CHUNK_BYTES // max(1, ctx.size[0] * ctx.size[1] * 3)))
    parts = {part for _, part, _ in extractors.values()}
    paths = {"pred": clip.pred, "gt": clip.gt}
    sides = [s for s in VIDEO_PARTS if paths[s] is not None and (s in parts or "pair" in parts)]
    streams = {"pred": clip.video_stream, "gt": clip.gt_video_stream}
    frame_readers = {s: ArrayReader(paths[s], size=ctx.size, chunk=chunk) if is_frames(paths[s])
                     else media.FrameReader(paths[s], fps=ctx.fps, size=ctx.size, chunk=chunk, clip_id=clip.clip_id,
                                            video_stream=streams[s])
                     for s in sides}
    readers = {s: iter(r) for s, r in frame_readers.items()}
    counts = {s: 0 for s in sides}
    pair_alone = "gt" not in sides            # a paired extractor of a clip without GT sees the pred frames only

    def feed(part: str, item: VideoChunk | FrameChunk) -> None:
        for key, (_, p, ex) in list(extractors.items()):
            if p != part or key not in extractors:
                continue
            try:
                ex.add(item)
            except Exception as e:
                fail(key, e)
                for k in [k for k in extractors if not alive(k)]:
                    del extractors[k]

    buf = {s: np.zeros((0,), np.uint8) for s in VIDEO_PARTS}
    paired = 0
    finished: set[str] = set()
    try:
        while len(finished) < len(sides) and extractors:
            for s in sides:
                if s in finished:
                    continue
                nxt = next(readers[s], None)
                if nxt is None:
                    finished.add(s)
                    continue
                feed(s, VideoChunk(counts[s], nxt))
                if "pair" in parts and pair_alone:
                    feed("pair", FrameChunk(counts[s], nxt))
                elif "pair" in parts and not any(o in finished and len(buf[o]) == 0 for o in VIDEO_PARTS):
                    buf[s] = nxt if len(buf[s]) == 0 else np.concatenate([buf[s], nxt])
                counts[s] += len(nxt)
            while "pair" in parts and not pair_alone:
                n = min(len(buf["pred"]), len(buf["gt"]), chunk)
                if n == 0 or (n < chunk and not finished):
                    break
                feed("pair", FrameChunk(paired, buf["pred"][:n], buf["gt"][:n]))
                buf = {s: b[n:] for s, b in buf.items()}
                paired += n
            parts = {part for _, part, _ in extractors.values()}
        for s in sides:                      # count what was left unread when every extractor had failed
            if s not in finished:
                counts[s] += sum(len(x) for x in readers[s])
    finally:
        notes = {s: _conversion_notes("{side}", r, ctx.fps) for s, r in frame_readers.items()}
    return counts, notes


_SIDE = {"pred": "pred", "gt": "GT"}


def _ingest_notes(got: dict[str, dict[str, Features]]) -> list[str]:
    """What ingest did to the clip's videos, from the video parts (extracted or cached), once each."""
    seen: list[str] = []
    for parts in got.values():
        for part, f in parts.items():
            for n in np.asarray(f.get(NOTES_KEY, np.array([], dtype=str))).reshape(-1).tolist():
                n = n.replace("{side}", _SIDE.get(part, part))
                if n not in seen:
                    seen.append(n)
    return seen


def _lengths(got: dict[str, dict[str, Features]]) -> tuple[int | None, int | None]:
    """The pred and GT frame counts recorded with the video parts (extracted or cached)."""
    n: dict[str, int] = {}
    for parts in got.values():
        for part, f in parts.items():
            if FRAMES_KEY not in f:
                continue
            counts = [int(x) for x in np.asarray(f[FRAMES_KEY]).reshape(-1)]
            for side, c in zip(VIDEO_PARTS if part == "pair" else (part,), counts):
                n.setdefault(side, c)
    return n.get("pred"), n.get("gt")


def _input_ids(ctx: ClipContext, names: set[str]) -> dict[str, str]:
    """Content identities of the inputs some part reads: file sha256 for the videos and the driving audio,
    the loaded pixels and their source for the reference image, the target for the emotion label."""
    clip = ctx.clip
    ids: dict[str, str] = {}
    if "pred" in names:
        ids["pred"] = _content(clip.pred)
    if "gt" in names:
        ids["gt"] = _content(clip.gt) if clip.gt is not None else "absent"
    if "audio" in names:
        ids["audio"] = (f"driving:{_content(clip.audio)}" if clip.audio is not None
                        else f"video:{_content(clip.pred)}")
    if "ref" in names and ctx.ref_image is not None:
        img = np.ascontiguousarray(ctx.ref_image)
        digest = hashlib.sha256(f"{img.shape}{img.dtype}".encode() + img.tobytes()).hexdigest()
        ids["ref"] = f"{ctx.ref_source}:{digest}"
    if "emotion" in names:
        ids["emotion"] = json.dumps(clip.emotion.to_dict() if clip.emotion else None, sort_keys=True, default=str)
    return ids


def _load_context(ctx: ClipContext, metrics: Sequence[Metric], ref: ReferenceChoice) -> None:
    clip = ctx.clip
    if any(m.needs_ref for m in metrics) and ctx.ref_image is None:
        ctx.ref_image = _ref_pixels(ref, clip.clip_id)
        ctx.ref_source = ref.source
    if any(m.needs_audio for m in metrics) and ctx.audio is None:
        if is_frames(clip.audio):               # in-memory driving audio: float mono at media.AUDIO_RATE
            ctx.audio, ctx.audio_source = np.asarray(clip.audio, np.float32).reshape(-1), "driving"
        elif clip.audio is None and is_frames(clip.pred):    # in-memory frames carry no audio track
            ctx.audio, ctx.audio_source = None, None
        elif clip.audio is not None:
            ctx.audio, ctx.audio_source = media.read_audio(clip.audio, clip_id=clip.clip_id), "driving"
        else:
            try:
                # aligned to the pred's first frame; the offset is noted with the decoded video (FrameReader.notes)
                ctx.audio = media.read_video_audio(clip.pred, clip_id=clip.clip_id, video_stream=clip.video_stream)[0]
                ctx.audio_source = "video"
            except MediaError as e:
                if e.status != "no_audio":
                    raise
                ctx.audio, ctx.audio_source = None, None


def clip_files(folder: Path, *, ext: str | None = None, known: set[str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Clip id -> file for the video files of ``folder`` (ids by :func:`bench.core.paths.clip_id_of_file`, in
    Unicode NFC so a macOS NFD name matches its id).

    A video file is one whose suffix, in any case, is ``ext`` or (``ext`` None) any of
    :data:`bench.core.media.VIDEO_SUFFIXES`; other files are skipped and listed in one warning. Hidden files are
    skipped: leftovers of an interrupted atomic write (``.NAME.XXXX.tmp.mp4``) silently, others with a warning;
    so are sub-folders. Two files that stand for one clip are an error."""
    suffixes = {ext.lower()} if ext else set(media.VIDEO_SUFFIXES)
    files: dict[str, Path] = {}
    warnings: list[str] = []
    skipped: list[str] = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() not in suffixes:
            if not p.name.startswith(".") and p.is_file():
                skipped.append(p.name)
            continue
        if p.name.startswith("."):
            if not is_temp_file(p):
                warnings.append(f"{p}: hidden file ignored (a clip id starting with '.' is stored as "
                                f"{safe_name(p.stem)}{p.suffix})")
            continue
        if not p.is_file():
            warnings.append(f"{p}: not a file, ignored")
            continue
        cid = unicodedata.normalize("NFC", clip_id_of_file(p, known))
        if cid in files:
            raise BenchError(f"clip {cid}: two files in {folder} stand for it: {files[cid].name!r} and {p.name!r}; "
                             "remove one")
        files[cid] = p
    if skipped:
        warnings.append(f"{len(skipped)} file(s) in {folder} skipped, not a video by their suffix "
                        f"({' '.join(sorted(suffixes))}, any case): {', '.join(skipped[:10])}"
                        + (" ..." if len(skipped) > 10 else ""))
    return files, warnings


def pair_folders(pred_dir: Path, gt_dir: Path | None, *, ext: str | None = None) -> tuple[list[ClipInput], list[str]]:
    """Pair the video files of ``pred_dir`` with those of ``gt_dir`` (:func:`clip_files`) by clip id (the file
    stem, or the clip id a moee-bench file name encodes). Returns the pairs and warnings for unmatched or ignored
    files."""
    preds, warnings = clip_files(pred_dir, ext=ext)
    if gt_dir is None:
        return [ClipInput(k, v) for k, v in preds.items()], warnings
    gts, w = clip_files(gt_dir, ext=ext)
    warnings += w
    for k in sorted(set(gts) - set(preds)):
        warnings.append(f"clip {k}: GT video has no generated counterpart in {pred_dir} (missing, not scored)")
    for k in sorted(set(preds) - set(gts)):
        warnings.append(f"clip {k}: generated video has no GT in {gt_dir} (GT-based metrics skipped)")
    return [ClipInput(k, v, gts.get(k)) for k, v in preds.items()], warnings
