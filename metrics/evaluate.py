"""Decode each video once and feed every requested metric from that one pass.

Pairing rules (pred vs GT): clips are matched by id; both streams are resampled to ``fps``
(25 by default) by timestamps (:mod:`bench.media`); frames are brought to ``size`` (default: the
GT's resolution, else the pred's); when the lengths differ the longer is truncated to the
shorter and a warning is recorded (``strict=True`` makes it an error).

Per-clip features go through an optional :class:`metrics.base.FeatureCache`, so re-scoring a
clip whose inputs and metric config are unchanged does not decode anything.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError, ClipError, MediaError
from moee_bench.bench.core.paths import clip_id_of_file, is_temp_file, safe_name
from moee_bench.metrics.base import ClipContext, ClipInput, FeatureCache, Features, FrameChunk, Metric


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
    cached: list[str] = field(default_factory=list)
    feature_keys: dict[str, str] = field(default_factory=dict)   # metric -> feature cache key

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip": self.clip_id, **self.values, "status": dict(self.status)}
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


_HASHES: dict[tuple[str, float, int], str] = {}


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes (memoised by path, mtime and size)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def cache_key(metric: Metric, clip: ClipInput, fps: float, size: tuple[int, int] | None) -> str:
    parts = {"f": metric.feature_id(), "fps": fps, "size": size, "pred": file_hash(clip.pred),
             "gt": file_hash(clip.gt) if (clip.gt and (metric.needs_gt or metric.uses_gt)) else None,
             "audio": file_hash(clip.audio) if (clip.audio and metric.needs_audio) else None,
             "ref": file_hash(clip.ref_image) if (clip.ref_image and metric.needs_ref) else None,
             "emo": clip.emotion.to_dict() if (clip.emotion and metric.needs_emotion) else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _decode_key(clip: ClipInput, fps: float, size: tuple[int, int] | None, with_gt: bool) -> str:
    parts = {"decode": 1, "fps": fps, "size": size, "pred": file_hash(clip.pred),
             "gt": file_hash(clip.gt) if (clip.gt and with_gt) else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _lockstep(clip: ClipInput, fps: float, size: tuple[int, int] | None, chunk: int, with_gt: bool,
              strict: bool, warnings: list[str]) -> Iterator[FrameChunk]:
    readers = {"pred": media.FrameReader(clip.pred, fps=fps, size=size, chunk=chunk, clip_id=clip.clip_id)}
    if with_gt:
        readers["GT"] = media.FrameReader(clip.gt, fps=fps, size=size, chunk=chunk, clip_id=clip.clip_id)
    try:
        yield from _lockstep_frames(clip, readers, fps, chunk, strict, warnings)
    finally:
        for side, r in readers.items():
            if r.source_fps and abs(r.source_fps - fps) > 1e-3:
                warnings.append(f"{side} resampled from {r.source_fps:g} to {fps:g} fps (nearest timestamp)")


def _lockstep_frames(clip: ClipInput, readers: dict[str, media.FrameReader], fps: float, chunk: int, strict: bool,
                     warnings: list[str]) -> Iterator[FrameChunk]:
    pred_it = iter(readers["pred"])
    gt_it = iter(readers["GT"]) if "GT" in readers else None
    start = 0
    pbuf = np.zeros((0,), np.uint8)
    gbuf = np.zeros((0,), np.uint8)
    p_done = g_done = False
    while True:
        if not p_done and len(pbuf) < chunk:
            nxt = next(pred_it, None)
            if nxt is None:
                p_done = True
            else:
                pbuf = nxt if len(pbuf) == 0 else np.concatenate([pbuf, nxt])
        if gt_it is not None and not g_done and len(gbuf) < chunk:
            nxt = next(gt_it, None)
            if nxt is None:
                g_done = True
            else:
                gbuf = nxt if len(gbuf) == 0 else np.concatenate([gbuf, nxt])
        if gt_it is None:
            if len(pbuf) == 0 and p_done:
                return
            if len(pbuf) >= chunk or p_done:
                n = min(chunk, len(pbuf))
                yield FrameChunk(start, pbuf[:n])
                pbuf, start = pbuf[n:], start + n
            continue
        n = min(len(pbuf), len(gbuf), chunk)
        if n > 0 and (n == chunk or p_done or g_done):
            yield FrameChunk(start, pbuf[:n], gbuf[:n])
            pbuf, gbuf, start = pbuf[n:], gbuf[n:], start + n
            continue
        if (p_done and len(pbuf) == 0) or (g_done and len(gbuf) == 0):
            rest_p = len(pbuf) + (0 if p_done else sum(len(x) for x in pred_it))
            rest_g = len(gbuf) + (0 if g_done else sum(len(x) for x in gt_it))
            if rest_p or rest_g:
                msg = (f"length mismatch at {fps:g} fps: pred has {start + rest_p} frames, GT has {start + rest_g}; "
                       f"truncated to {start}")
                if strict:
                    raise ClipError(clip.clip_id, msg + " (--strict)", status="length_mismatch")
                warnings.append(msg)
            return


def _probe_size(clip: ClipInput, size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is not None:
        return size
    src = clip.gt or clip.pred
    info = media.probe(src, clip_id=clip.clip_id)
    return (info.height, info.width)


def evaluate(clips: Sequence[ClipInput], metrics: Sequence[Metric], *, fps: float = 25.0,
             size: tuple[int, int] | None = None, strict: bool = False, cache: FeatureCache | None = None,
             chunk: int = 32, progress: bool = True, fail_fast: bool = False,
             on_clip: Callable[[ClipOutcome], None] | None = None) -> EvalResult:
    """Score ``clips`` with ``metrics`` (states accumulate in the metric objects) and return per-clip outcomes."""
    for m in metrics:
        if getattr(m, "needs_feature_cache", False):
            if cache is None:
                raise ValueError(f"metric {m.name!r} reads its features back from the feature cache: pass cache=")
            m.attach_cache(cache)
    outcomes: list[ClipOutcome] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc="scoring", unit="clip", file=sys.stderr, leave=False)
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
    for m in metrics:
        aggregate.update(m.compute())
    protocol = {"fps": fps, "fps_conversion": "nearest timestamp (ffmpeg fps filter, round=near)",
                "size": list(size) if size else "GT resolution (pred resized to it); pred resolution without GT",
                "length_mismatch": "error" if strict else "truncate to shorter, warn",
                "n_clips": len(clips), "metrics": {m.name: m.protocol() for m in metrics}}
    return EvalResult(outcomes, aggregate, protocol)


def score_clip(clip: ClipInput, metrics: Sequence[Metric], *, fps: float = 25.0, size: tuple[int, int] | None = None,
               strict: bool = False, cache: FeatureCache | None = None, chunk: int = 32) -> ClipOutcome:
    """Extract (or fetch cached) features for one clip and update every metric with them."""
    t0 = time.perf_counter()
    out = ClipOutcome(clip.clip_id)
    try:
        use_gt = clip.gt is not None and any(m.needs_gt or m.uses_gt for m in metrics)
        for m in metrics:
            if m.needs_gt and clip.gt is None:
                out.status[m.name] = "no_gt"
                out.messages[m.name] = f"{m.name} needs a ground-truth video and the clip has none"
        active = [m for m in metrics if m.name not in out.status]
        eval_size = _probe_size(clip, size) if active else None
        for m in active:
            if eval_size is not None and min(eval_size) < m.min_size:
                out.status[m.name] = "too_small"
                out.messages[m.name] = (f"frames of {eval_size[0]}x{eval_size[1]} are smaller than the "
                                        f"{m.min_size}x{m.min_size} {m.name} needs")
        active = [m for m in active if m.name not in out.status]
        ctx = ClipContext(clip, fps, eval_size)
        feats: dict[str, Features] = {}
        todo: list[Metric] = []
        keys: dict[str, str] = {}
        for m in active:
            if cache is not None:
                keys[m.name] = cache_key(m, clip, fps, eval_size)
                hit = cache.get(keys[m.name])
                if hit is not None:
                    feats[m.name] = hit
                    out.cached.append(m.name)
                    continue
            todo.append(m)
        _load_context(ctx, todo)
        # metrics sharing a feature identity (KID with FID, KVD with FVD) share one extraction
        twins: dict[str, list[str]] = {}
        first: dict[str, Metric] = {}
        for m in todo:
            fid = m.feature_id()
            if fid in first:
                twins.setdefault(first[fid].name, []).append(m.name)
            else:
                first[fid] = m
        extractors = {}
        for m in first.values():
            try:
                extractors[m.name] = m.extractor(ctx)
            except ClipError as e:
                out.status[m.name], out.messages[m.name] = e.status, e.reason
        # what decoding found (length mismatch, resampling, frame count) is kept beside the features, so a
        # re-score from the cache reports it too
        dkey = _decode_key(clip, fps, eval_size, use_gt) if cache is not None and active else None
        if dkey is not None and not extractors and (hit := cache.get(dkey)) is not None:
            out.warnings.extend(str(w) for w in hit["warnings"])
            out.n_frames = int(hit["n_frames"])
        if extractors:
            n_warn = len(out.warnings)
            for ch in _lockstep(clip, fps, eval_size, chunk, use_gt, strict, out.warnings):
                out.n_frames = ch.start + len(ch.pred)
                for name, ex in list(extractors.items()):
                    try:
                        ex.add(ch)
                    except ClipError as e:
                        out.status[name], out.messages[name] = e.status, e.reason
                        del extractors[name]
            for name, ex in extractors.items():
                try:
                    feats[name] = ex.finish()
                except ClipError as e:
                    out.status[name], out.messages[name] = e.status, e.reason
                    continue
                if cache is not None:
                    cache.put(keys[name], feats[name])
            if dkey is not None:
                cache.put(dkey, {"warnings": np.array(out.warnings[n_warn:], dtype=str),
                                 "n_frames": np.array(out.n_frames)})
        for name, others in twins.items():
            for o in others:
                if name in feats:
                    feats[o] = feats[name]
                elif name in out.status:
                    out.status[o], out.messages[o] = out.status[name], out.messages[name]
        out.feature_keys = {k: v for k, v in keys.items() if k in feats}
        ctx.feature_keys = dict(out.feature_keys)
        for m in active:
            if m.name in out.status:
                continue
            try:
                out.values.update(m.update(ctx, feats[m.name]))
                out.status[m.name] = "ok"
            except ClipError as e:
                out.status[m.name], out.messages[m.name] = e.status, e.reason
        out.warnings.extend(ctx.notes)
    except ClipError as e:
        for m in metrics:
            if out.status.get(m.name) in (None, "ok"):
                out.status[m.name], out.messages[m.name] = e.status, e.reason
    out.seconds = time.perf_counter() - t0
    return out


def _load_context(ctx: ClipContext, metrics: Sequence[Metric]) -> None:
    clip = ctx.clip
    if any(m.needs_ref for m in metrics) and ctx.ref_image is None:
        if clip.ref_image is not None:
            ctx.ref_image = media.read_image(clip.ref_image, clip_id=clip.clip_id)
        else:
            ctx.ref_image = media.first_frame(clip.gt or clip.pred, clip_id=clip.clip_id)
            ctx.notes.append("reference image: first frame of " + ("the GT video" if clip.gt else "the pred video"))
    if any(m.needs_audio for m in metrics) and ctx.audio is None:
        if clip.audio is not None:
            ctx.audio, ctx.audio_source = media.read_audio(clip.audio, clip_id=clip.clip_id), "driving"
        else:
            try:
                ctx.audio, ctx.audio_source = media.read_audio(clip.pred, clip_id=clip.clip_id), "video"
            except MediaError as e:
                if e.status != "no_audio":
                    raise
                ctx.audio, ctx.audio_source = None, None


def clip_files(folder: Path, *, ext: str = ".mp4", known: set[str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Clip id -> file for the ``*ext`` files of ``folder`` (ids by :func:`bench.core.paths.clip_id_of_file`).

    Hidden files are skipped: leftovers of an interrupted atomic write (``.NAME.XXXX.tmp.mp4``) silently,
    others with a warning; so are sub-folders. Two files that stand for one clip are an error."""
    files: dict[str, Path] = {}
    warnings: list[str] = []
    for p in sorted(Path(folder).glob(f"*{ext}")):
        if p.name.startswith("."):
            if not is_temp_file(p):
                warnings.append(f"{p}: hidden file ignored (a clip id starting with '.' is stored as "
                                f"{safe_name(p.stem)}{ext})")
            continue
        if not p.is_file():
            warnings.append(f"{p}: not a file, ignored")
            continue
        cid = clip_id_of_file(p, known)
        if cid in files:
            raise BenchError(f"clip {cid}: two files in {folder} stand for it: {files[cid].name!r} and {p.name!r}; "
                             "remove one")
        files[cid] = p
    return files, warnings


def pair_folders(pred_dir: Path, gt_dir: Path | None, *, ext: str = ".mp4") -> tuple[list[ClipInput], list[str]]:
    """Pair ``pred_dir/*.mp4`` with ``gt_dir/*.mp4`` by clip id (the file stem, or the clip id a
    moee-bench file name encodes). Returns the pairs and warnings for unmatched or ignored files."""
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
