"""Training data for MoEE: clips of a manifest split, decoded once, and random training windows.

Each clip is decoded once at the model's frame size and 25 fps (optionally into an on-disk cache that
is memory-mapped back), its driving audio encoded once by the frozen wav2vec2 (:mod:`moee_ref.audio`),
the first ``emotion.emotion_audio_seconds`` of it once by the audio emotion encoder (emotion2vec), and,
for stage 2, its mouth located in **every frame**. Batches are then cut from these arrays, so a
training step never touches the disk.

**Masked noisy emotion sampling** (moee_paper.md section 2.5). The note's words: the single-emotion
subsets are small, so experts overfit and "learn information unrelated to the target emotion"; "mix
data from other emotions/neutral expressions into the training with a certain probability (adding
noise) to expand the diversity of person identities"; "MediaPipe is used to locate and mask the
mouth area, forcing the model to focus on general expression changes rather than the lip shapes".

Our reading: an expert only ever learns from the clips of its own emotion (the gate KL routes
emotion *i* to expert *i*), so its identities are that emotion's identities. With probability
``train.p_noisy`` a stage-2 sample therefore keeps its emotion condition (label, text, emotion audio)
but takes the video, driving audio and reference of another clip, of another identity where one
exists (the "noise"). A mixed-in clip with its *own* condition would add no identity to any expert:
every clip already trains under its own label. Since the mixed-in face does not show the target
emotion, this is label noise by construction, which is why the note calls it noise; we bound what it
teaches with ``train.noisy_source``:

- ``neutral`` (default): noisy samples come from neutral clips only. The expert then sees other
  people under its emotion's condition with a calm face: at worst a weaker expression, never another
  emotion's (the earlier build drew from every other emotion, so one noisy sample in ~5/6 showed a
  different emotion, i.e. ``p_noisy`` x 5/6 of an expert's samples taught a wrong expression).
- ``other``: neutral and every other emotion, the note's wording taken in full.

Neutral targets get no noisy samples (their MoE branch is off, nothing would learn from them).
The probability is not in the paper; ``p_noisy = 0.2`` is ours.

The **mouth mask** is a loss mask (the paper does not say loss, input or target; masking the input
would also hide the mouth from the lip-sync layers). It covers the outer lip contour of dlib's
68-point landmarks (points 48-59, found inside that frame's MTCNN face box: both ship their weights;
MediaPipe's face mesh needs numpy < 2 here), grown by ``MOUTH_PAD`` of the mouth width, recomputed
for every frame from that frame's landmarks, so it follows the mouth when the head moves. Frames where
no face is found take the nearest frame's landmarks (counted per clip and logged). It applies to every
stage-2 sample (``train.mouth_mask = "all"``, default: lip shape comes from audio, not from the emotion
expert) or to noisy samples only (``"noisy"``). ``train.masked_noisy = false`` (variant
``no-masked-noisy``) turns off both the noisy samples and the mask.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.manifest import Manifest
from moee_bench.bench.core.paths import safe_name
from moee_bench.bench.core.weights import sha256_file
from moee_bench.moee_ref.audio import frame_windows, wav2vec2_features
from moee_bench.moee_ref.config import ConfigError, MoEEConfig
from moee_bench.moee_ref.emotion_latents import template_text
from moee_bench.bench.core import media
from moee_bench.bench.core.faces import FaceDetector, Landmarks68
from moee_bench.moee_ref.emotion2vec import emotion2vec_features
# imported inside the functions that use them (seconds to import, or optional): PIL

MODALITY_ORDER = ("label", "text", "audio")
OUTER_LIP = slice(48, 60)  # iBUG 68-point layout: outer lip contour, 48 and 54 are the mouth corners
MOUTH_PAD = 0.35           # fraction of the mouth width added around the lip contour
DETECT_MIN_SIDE = 256      # landmarks are found on frames at least this large (MTCNN misses tiny faces)
MOUTH_VERSION = "dlib68-outer-lip-v1"   # part of the mouth-track cache name


@dataclass
class ClipTensors:
    """One training clip, prepared once (frames may be a memory map of the on-disk clip cache)."""

    clip_id: str
    identity: str
    frames: np.ndarray          # (N, H, W, 3) uint8 at the model's frame size
    ref: np.ndarray             # (H, W, 3) uint8
    audio_feats: torch.Tensor   # (2N, hidden) wav2vec2 features on the frame grid
    weights: torch.Tensor       # (6,) basic-emotion weights (zeros = neutral)
    text: str
    emotion_audio: torch.Tensor  # (T, dim) audio emotion features of the clip's first emotion_audio_seconds
    mouth: np.ndarray | None = None   # (N, 12, 2) outer-lip landmarks per frame, x, y in [0, 1]; None: not located
    mouth_filled: int = 0       # frames without a face that took the nearest frame's landmarks


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(img, copy=True)).float().div(127.5).sub(1.0)
    return t.permute(0, 3, 1, 2) if t.ndim == 4 else t.permute(2, 0, 1)


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with a bicubic resize (PIL)."""
    from PIL import Image

    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def mouth_tracks(frames: np.ndarray, *, detector=None, landmarker=None, clip_id: str = "") -> tuple[np.ndarray, int]:
    """Outer-lip landmarks of every frame: ``((N, 12, 2) x, y in [0, 1], frames filled)``.

    MTCNN finds the face box of each frame, dlib's 68-point predictor the landmarks inside it. Frames
    without a face take the landmarks of the nearest frame that has one; a clip with no face at all is
    a :class:`ClipError` (``no_face``).
    """
    detector = detector or FaceDetector()
    landmarker = landmarker or Landmarks68()
    n, h, w = frames.shape[:3]
    pts = np.full((n, 12, 2), np.nan)
    for start in range(0, n, 32):
        for i, face in enumerate(detector.detect(frames[start:start + 32]), start):
            if face is not None:
                pts[i] = landmarker(frames[i], face.box)[OUTER_LIP] / (w, h)
    found = np.flatnonzero(~np.isnan(pts[:, 0, 0]))
    if not len(found):
        raise ClipError(clip_id, "no face found in any frame (needed for the mouth mask)", status="no_face")
    nearest = found[np.abs(np.arange(n)[:, None] - found[None, :]).argmin(1)]
    return pts[nearest].astype(np.float32), int(n - len(found))


def mouth_mask(lips: np.ndarray, height: int, width: int, pad: float = MOUTH_PAD) -> torch.Tensor:
    """(1, H, W) loss mask, 0 over the outer-lip polygon grown by ``pad`` x the mouth width, 1 elsewhere."""
    from PIL import Image, ImageDraw

    p = np.asarray(lips, np.float64) * (width, height)
    c = p.mean(0)
    grow = pad * float(np.linalg.norm(p[6] - p[0]))           # corners: points 48 and 54
    d = p - c
    p = p + d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6) * grow
    img = Image.new("L", (width, height), 1)
    ImageDraw.Draw(img).polygon([tuple(q) for q in p], fill=0)
    return torch.from_numpy(np.asarray(img, np.float32))[None]


def _module_hash(module: torch.nn.Module | None) -> str:
    if module is None:
        return ""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _emotion_audio_frames(cfg: MoEEConfig) -> int:
    return max(1, int(round(cfg.emotion.emotion_audio_seconds * cfg.video.fps)))


def _prepare_clip(manifest: Manifest, clip, cfg: MoEEConfig, audio_encoder, emotion_encoder) -> dict:
    cid = clip.clip_id
    vid = manifest.media_path(clip, "video")
    size = (cfg.video.height, cfg.video.width)
    chunks = list(media.FrameReader(vid, fps=cfg.video.fps, size=size, clip_id=cid))
    n = sum(len(c) for c in chunks)
    if n < cfg.video.frames:
        raise ClipError(cid, f"{n} frames, fewer than a training window of {cfg.video.frames}", status="too_short")
    ref_full = (media.read_image(manifest.media_path(clip, "ref_image"), clip_id=cid) if clip.ref_image
                else media.first_frame(vid, clip_id=cid))
    wave = media.read_audio(manifest.media_path(clip, "audio") if clip.audio else vid, clip_id=cid)
    feats = wav2vec2_features(audio_encoder, wave, n).cpu()
    n_emo = _emotion_audio_frames(cfg)
    emo_wave = wave[: int(n_emo * 16000 / cfg.video.fps)]
    if emotion_encoder is not None:
        emo = emotion2vec_features(emotion_encoder, emo_wave, n_emo).cpu()
    else:
        emo = wav2vec2_features(audio_encoder, emo_wave, n_emo).cpu()
    if not (torch.isfinite(feats).all() and torch.isfinite(emo).all()):
        raise ClipError(cid, "audio features contain NaN or infinite values")
    return {"frames": np.concatenate(chunks), "ref": resize_image(ref_full, size), "audio": feats.numpy(),
            "emo": emo.numpy()}


def _mouth_for(manifest: Manifest, clip, cfg: MoEEConfig, frames: np.ndarray, detector) -> tuple[np.ndarray, int]:
    """Mouth tracks of a clip, located on frames of at least ``DETECT_MIN_SIDE`` (decoded again if the
    model's frames are smaller), so the landmarks line up with the model's frames."""
    h, w = frames.shape[1:3]
    scale = max(1.0, DETECT_MIN_SIDE / min(h, w))
    det = np.asarray(frames)
    if scale > 1:
        size = (int(round(h * scale)), int(round(w * scale)))
        det = np.concatenate(list(media.FrameReader(manifest.media_path(clip, "video"), fps=cfg.video.fps, size=size,
                                                    clip_id=clip.clip_id)))[: len(frames)]
    return mouth_tracks(det, detector=detector, clip_id=clip.clip_id)


def load_clips(manifest: Manifest, clip_ids: Sequence[str], cfg: MoEEConfig, audio_encoder, *, emotion_encoder=None,
               mouth: bool = False, detector=None, cache_dir: str | Path | None = None,
               log=None) -> list[ClipTensors]:
    """Decode and encode each clip once (errors name the clip); with ``mouth`` also locate its mouth in
    every frame (stage 2).

    ``emotion_encoder``: the emotion2vec of the model (None: the wav2vec2 features serve as emotion
    audio features). With ``cache_dir`` each prepared clip is stored there (``frames.npy``,
    ``audio.npy``, ``ref.npy``, ``emo.npy``, ``meta.json`` and, once located, ``mouth-<version>.npy``;
    written atomically, keyed by the video and audio files' hashes, the frame size and fps and both
    audio encoders' weights) and memory-mapped back, so a resumed or later run skips the decoding and
    training memory does not grow with the dataset.
    """
    by_id = manifest.by_id()
    enc_hash = (_module_hash(audio_encoder) + _module_hash(emotion_encoder)) if cache_dir else ""
    out: list[ClipTensors] = []
    for cid in clip_ids:
        clip = by_id[cid]
        folder = None
        if cache_dir:
            files = [manifest.media_path(clip, w) for w in ("video", "audio", "ref_image") if getattr(clip, w)]
            key = hashlib.sha256(json.dumps([cid, [sha256_file(f) for f in files], cfg.video.height, cfg.video.width,
                                             cfg.video.fps, cfg.emotion.emotion_audio_seconds,
                                             enc_hash]).encode()).hexdigest()[:16]
            folder = Path(cache_dir) / f"{safe_name(cid)}-{key}"
            if not (folder / "meta.json").is_file():
                prep = _prepare_clip(manifest, clip, cfg, audio_encoder, emotion_encoder)
                tmp = Path(cache_dir) / f".tmp-{folder.name}-{os.getpid()}"
                tmp.mkdir(parents=True, exist_ok=True)
                for name in ("frames", "audio", "ref", "emo"):
                    np.save(tmp / f"{name}.npy", prep[name])
                (tmp / "meta.json").write_text(json.dumps({"clip_id": cid}))
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(tmp, folder)
            prep = {"frames": np.load(folder / "frames.npy", mmap_mode="r"), "ref": np.load(folder / "ref.npy"),
                    "audio": np.load(folder / "audio.npy"), "emo": np.load(folder / "emo.npy")}
        else:
            prep = _prepare_clip(manifest, clip, cfg, audio_encoder, emotion_encoder)
        lips, filled = None, 0
        if mouth:
            if detector is None:
                detector = FaceDetector()
            lips, filled = _cached_mouth(folder, lambda: _mouth_for(manifest, clip, cfg, prep["frames"], detector))
            if filled and log:
                log(f"{cid}: no face in {filled}/{len(lips)} frames; their mouth mask uses the nearest frame's landmarks")
        out.append(ClipTensors(cid, clip.identity, prep["frames"], prep["ref"], torch.from_numpy(np.array(prep["audio"])),
                               torch.tensor(clip.emotion.weights, dtype=torch.float32),
                               clip.text or template_text(clip.emotion.weights), torch.from_numpy(np.array(prep["emo"])),
                               lips, filled))
    return out


def _cached_mouth(folder: Path | None, compute) -> tuple[np.ndarray, int]:
    if folder is None:
        return compute()
    path = folder / f"mouth-{MOUTH_VERSION}.npy"
    meta = folder / f"mouth-{MOUTH_VERSION}.json"
    if not (path.is_file() and meta.is_file()):
        lips, filled = compute()
        tmp = folder / f".tmp-mouth-{os.getpid()}.npy"
        np.save(tmp, lips)
        os.replace(tmp, path)
        meta.write_text(json.dumps({"filled": filled}))
    return np.load(path), int(json.loads(meta.read_text())["filled"])


@dataclass
class Batch:
    """One training batch (B samples of F frames)."""

    frames: torch.Tensor        # (B, F, 3, H, W)
    ref: torch.Tensor           # (B, 3, H, W)
    motion: torch.Tensor        # (B, M, 3, H, W)
    audio: torch.Tensor         # (B, F, K, hidden)
    weights: torch.Tensor       # (B, 6) condition weights
    texts: list[str]
    emotion_audio: torch.Tensor  # (B, T, dim) audio emotion features of the condition clip
    loss_mask: torch.Tensor     # (B, F, 1, H, W) 1 = counted in the loss (0 = the frame's mouth)
    noisy: torch.Tensor         # (B,) bool, sample came from masked noisy sampling
    modality: str

    def to(self, device: torch.device | str) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)


@dataclass
class WindowSampler:
    """Random windows of ``video.frames`` frames (+ motion frames) from the loaded clips, with masked
    noisy emotion sampling in stage 2 (see the module docstring)."""

    clips: list[ClipTensors]
    cfg: MoEEConfig
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.clips:
            raise ValueError("no training clips")
        self.rng = np.random.default_rng(self.seed)
        self._pools: list[list[ClipTensors]] | None = None

    def noisy_pools(self) -> list[list[ClipTensors]]:
        """For each clip, the clips a noisy sample of it may take its video from (empty for neutral clips)."""
        if self._pools is None:
            src = self.cfg.train.noisy_source
            pools = []
            for t in self.clips:
                if float(t.weights.sum()) <= 0:
                    pools.append([])
                    continue
                cand = [c for c in self.clips if c is not t and (float(c.weights.sum()) <= 0 if src == "neutral"
                                                                 else not torch.equal(c.weights, t.weights))]
                others = [c for c in cand if c.identity != t.identity]
                if cand and not others:
                    self.notes.append(f"masked noisy sampling: no {src} clip of another identity for {t.clip_id}; its "
                                      "noisy samples come from the same identity")
                pools.append(others or cand)
            empty = [t.clip_id for t, p in zip(self.clips, pools) if not p and float(t.weights.sum()) > 0]
            if empty:
                raise ConfigError(f"masked noisy sampling (train.noisy_source = {src!r}) has no source clip for "
                                  f"{empty[:5]}: add {src} clips to the split, set train.noisy_source = 'other', "
                                  "train.p_noisy = 0, or use --variant no-masked-noisy")
            self._pools = pools
        return self._pools

    def sample(self, batch_size: int, stage: int, *, modality: str | None = None) -> Batch:
        cfg, rng = self.cfg, self.rng
        f, m = cfg.video.frames, cfg.video.motion_frames
        if modality is None:
            if stage == 2:
                probs = np.array([cfg.train.modality_probs.get(k, 0.0) for k in MODALITY_ORDER], np.float64)
                modality = MODALITY_ORDER[int(rng.choice(3, p=probs / probs.sum()))]
            else:
                modality = "label"
        masked = stage == 2 and cfg.train.masked_noisy
        noisy_on = masked and cfg.train.p_noisy > 0
        rows = []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.clips)))
            target = source = self.clips[i]
            noisy = False
            if noisy_on and rng.random() < cfg.train.p_noisy:
                pool = self.noisy_pools()[i]
                if pool:
                    source, noisy = pool[int(rng.integers(len(pool)))], True
            rows.append((target, source, noisy))
        frames, refs, motions, audios, masks = [], [], [], [], []
        h, w = cfg.video.height, cfg.video.width
        for target, source, noisy in rows:
            n = source.frames.shape[0]
            s = int(rng.integers(0, n - f + 1))
            frames.append(_to_tensor(source.frames[s:s + f]))
            ref = _to_tensor(source.ref)
            refs.append(ref)
            mot = [_to_tensor(source.frames[i]) if i >= 0 else ref for i in range(s - m, s)]
            motions.append(torch.stack(mot) if mot else frames[-1][:0])
            audios.append(frame_windows(source.audio_feats, list(range(s, s + f)), cfg.audio.window))
            if masked and (cfg.train.mouth_mask == "all" or noisy):
                if source.mouth is None:
                    raise ValueError(f"clip {source.clip_id} was loaded without mouth tracks (load_clips(mouth=True))")
                masks.append(torch.stack([mouth_mask(source.mouth[j], h, w) for j in range(s, s + f)]))
            else:
                masks.append(torch.ones(f, 1, h, w))
        emo = [t.emotion_audio for t, _, _ in rows]
        t_len = min(a.shape[0] for a in emo)
        return Batch(frames=torch.stack(frames), ref=torch.stack(refs), motion=torch.stack(motions),
                     audio=torch.stack(audios), weights=torch.stack([t.weights for t, _, _ in rows]),
                     texts=[t.text for t, _, _ in rows], emotion_audio=torch.stack([a[:t_len] for a in emo]),
                     loss_mask=torch.stack(masks), noisy=torch.tensor([n for _, _, n in rows]), modality=modality)
