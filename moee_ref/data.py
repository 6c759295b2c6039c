"""Training data for MoEE: clips of a manifest split, decoded once, and random training windows.

Each clip is decoded once at the model's frame size and 25 fps (optionally into an on-disk cache that
is memory-mapped back), its driving audio encoded once by
the frozen wav2vec2 (:mod:`moee_ref.audio`), its text once by the frozen text encoder, and its
mouth box found once with MTCNN's mouth corners (the paper uses MediaPipe for the mouth mask; MTCNN
ships with weights here and its mouth corners are all the mask needs). Batches are then cut from
these tensors, so a training step never touches the disk.

Masked noisy emotion sampling (moee_paper.md section 2.5) is read as *label noise*: in stage 2, with
probability ``train.p_noisy``, a sample keeps its emotion condition but takes the video, audio and
reference of a clip with a different emotion (or neutral), preferably of another identity; in stage
2 the loss ignores the mouth box of every sample, so experts learn expression outside the lips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.manifest import Manifest
from moee_bench.bench.core.paths import safe_name
from moee_bench.bench.core.weights import sha256_file
from moee_bench.moee_ref.audio import frame_windows, wav2vec2_features
from moee_bench.moee_ref.config import MoEEConfig
from moee_bench.moee_ref.emotion_latents import template_text

MODALITY_ORDER = ("label", "text", "audio")
MOUTH_PAD = 0.35           # fraction of the mouth-corner distance added around the mouth box


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
    mouth: tuple[float, float, float, float]   # x1, y1, x2, y2 in [0, 1] frame coordinates


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


def mouth_box(landmarks5: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A padded box around the mouth from MTCNN's mouth corners, in [0, 1] coordinates."""
    left, right = landmarks5[3], landmarks5[4]
    d = float(np.linalg.norm(right - left))
    cx, cy = (left + right) / 2
    half_w = d / 2 + MOUTH_PAD * d
    half_h = 0.6 * d + MOUTH_PAD * d
    x1, x2 = (cx - half_w) / width, (cx + half_w) / width
    y1, y2 = (cy - half_h) / height, (cy + half_h) / height
    return (max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2))


def _module_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _prepare_clip(manifest: Manifest, clip, cfg: MoEEConfig, audio_encoder, detector) -> dict:
    from moee_bench.bench.core import media

    cid = clip.clip_id
    vid = manifest.media_path(clip, "video")
    size = (cfg.video.height, cfg.video.width)
    chunks = list(media.FrameReader(vid, fps=cfg.video.fps, size=size, clip_id=cid))
    n = sum(len(c) for c in chunks)
    if n < cfg.video.frames:
        raise ClipError(cid, f"{n} frames, fewer than a training window of {cfg.video.frames}", status="too_short")
    ref_full = (media.read_image(manifest.media_path(clip, "ref_image"), clip_id=cid) if clip.ref_image
                else media.first_frame(vid, clip_id=cid))
    face = detector.detect(ref_full)[0]
    if face is None:
        raise ClipError(cid, "no face found in the reference image (needed for the mouth mask)", status="no_face")
    wave = media.read_audio(manifest.media_path(clip, "audio") if clip.audio else vid, clip_id=cid)
    feats = wav2vec2_features(audio_encoder, wave, n).cpu()
    if not torch.isfinite(feats).all():
        raise ClipError(cid, "audio features contain NaN or infinite values")
    return {"frames": np.concatenate(chunks), "ref": resize_image(ref_full, size), "audio": feats.numpy(),
            "mouth": mouth_box(face.landmarks5, ref_full.shape[1], ref_full.shape[0])}


def load_clips(manifest: Manifest, clip_ids: Sequence[str], cfg: MoEEConfig, audio_encoder, *,
               detector=None, cache_dir: str | Path | None = None) -> list[ClipTensors]:
    """Decode, encode and locate the mouth of each clip once (errors name the clip).

    With ``cache_dir`` each prepared clip is stored there (``frames.npy``, ``audio.npy``, ``meta.json``;
    written atomically, keyed by the video and audio files' hashes, the frame size and fps and the
    audio encoder's weights) and memory-mapped back, so a resumed or later run skips the decoding and
    training memory does not grow with the dataset.
    """
    from moee_bench.bench.core.faces import FaceDetector

    detector = detector or FaceDetector()
    by_id = manifest.by_id()
    enc_hash = _module_hash(audio_encoder) if cache_dir else ""
    out: list[ClipTensors] = []
    for cid in clip_ids:
        clip = by_id[cid]
        cached = None
        if cache_dir:
            files = [manifest.media_path(clip, w) for w in ("video", "audio", "ref_image") if getattr(clip, w)]
            key = hashlib.sha256(json.dumps([cid, [sha256_file(f) for f in files], cfg.video.height, cfg.video.width,
                                             cfg.video.fps, enc_hash]).encode()).hexdigest()[:16]
            folder = Path(cache_dir) / f"{safe_name(cid)}-{key}"
            if not (folder / "meta.json").is_file():
                prep = _prepare_clip(manifest, clip, cfg, audio_encoder, detector)
                tmp = Path(cache_dir) / f".tmp-{folder.name}-{os.getpid()}"
                tmp.mkdir(parents=True, exist_ok=True)
                np.save(tmp / "frames.npy", prep["frames"])
                np.save(tmp / "audio.npy", prep["audio"])
                np.save(tmp / "ref.npy", prep["ref"])
                (tmp / "meta.json").write_text(json.dumps({"clip_id": cid, "mouth": prep["mouth"]}))
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(tmp, folder)
            meta = json.loads((folder / "meta.json").read_text())
            cached = {"frames": np.load(folder / "frames.npy", mmap_mode="r"), "ref": np.load(folder / "ref.npy"),
                      "audio": np.load(folder / "audio.npy"), "mouth": tuple(meta["mouth"])}
        prep = cached or _prepare_clip(manifest, clip, cfg, audio_encoder, detector)
        out.append(ClipTensors(cid, clip.identity, prep["frames"], prep["ref"], torch.from_numpy(np.array(prep["audio"])),
                               torch.tensor(clip.emotion.weights, dtype=torch.float32),
                               clip.text or template_text(clip.emotion.weights), tuple(prep["mouth"])))
    return out


@dataclass
class Batch:
    """One training batch (B samples of F frames)."""

    frames: torch.Tensor        # (B, F, 3, H, W)
    ref: torch.Tensor           # (B, 3, H, W)
    motion: torch.Tensor        # (B, M, 3, H, W)
    audio: torch.Tensor         # (B, F, K, hidden)
    weights: torch.Tensor       # (B, 6) condition weights
    texts: list[str]
    emotion_audio: torch.Tensor  # (B, T, hidden) wav2vec2 features of the condition clip
    loss_mask: torch.Tensor     # (B, 1, H, W) 1 = counted in the loss
    noisy: torch.Tensor         # (B,) bool, sample came from masked noisy sampling
    modality: str

    def to(self, device: torch.device | str) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)


class WindowSampler:
    """Random windows of ``video.frames`` frames (+ motion frames) from the loaded clips."""

    def __init__(self, clips: list[ClipTensors], cfg: MoEEConfig, seed: int = 0) -> None:
        if not clips:
            raise ValueError("no training clips")
        self.clips = clips
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, stage: int, *, modality: str | None = None) -> Batch:
        cfg, rng = self.cfg, self.rng
        f, m = cfg.video.frames, cfg.video.motion_frames
        if modality is None:
            if stage == 2:
                probs = np.array([cfg.train.modality_probs.get(k, 0.0) for k in MODALITY_ORDER], np.float64)
                modality = MODALITY_ORDER[int(rng.choice(3, p=probs / probs.sum()))]
            else:
                modality = "label"
        rows = []
        for _ in range(batch_size):
            target = self.clips[int(rng.integers(len(self.clips)))]
            source, noisy = target, False
            if stage == 2 and rng.random() < cfg.train.p_noisy:
                other = [c for c in self.clips if not torch.equal(c.weights, target.weights)]
                other_id = [c for c in other if c.identity != target.identity] or other
                if other_id:
                    source, noisy = other_id[int(rng.integers(len(other_id)))], True
            rows.append((target, source, noisy))
        frames, refs, motions, audios, masks, emo_audio = [], [], [], [], [], []
        n_emo = max(1, int(round(cfg.emotion.emotion_audio_seconds * cfg.video.fps)))
        for target, source, _ in rows:
            n = source.frames.shape[0]
            s = int(rng.integers(0, n - f + 1))
            frames.append(_to_tensor(source.frames[s:s + f]))
            ref = _to_tensor(source.ref)
            refs.append(ref)
            mot = [_to_tensor(source.frames[i]) if i >= 0 else ref for i in range(s - m, s)]
            motions.append(torch.stack(mot) if mot else frames[-1][:0])
            audios.append(frame_windows(source.audio_feats, list(range(s, s + f)), cfg.audio.window))
            masks.append(self._mask(source.mouth, stage))
            emo_audio.append(target.audio_feats[:2 * n_emo])
        t_len = min(a.shape[0] for a in emo_audio)
        return Batch(frames=torch.stack(frames), ref=torch.stack(refs), motion=torch.stack(motions),
                     audio=torch.stack(audios), weights=torch.stack([t.weights for t, _, _ in rows]),
                     texts=[t.text for t, _, _ in rows], emotion_audio=torch.stack([a[:t_len] for a in emo_audio]),
                     loss_mask=torch.stack(masks), noisy=torch.tensor([n for _, _, n in rows]), modality=modality)

    def _mask(self, mouth: tuple[float, float, float, float], stage: int) -> torch.Tensor:
        h, w = self.cfg.video.height, self.cfg.video.width
        mask = torch.ones(1, h, w)
        if stage == 2:
            x1, y1, x2, y2 = mouth
            mask[:, int(y1 * h):int(np.ceil(y2 * h)), int(x1 * w):int(np.ceil(x2 * w))] = 0.0
        return mask


def routing_for(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forced routing weights (B, 6) and activity (B,) from condition weights; neutral rows are inactive."""
    active = (weights.sum(-1) > 0).float()
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-8)
    return w, active
