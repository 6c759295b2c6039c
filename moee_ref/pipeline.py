"""MoEE inference: DDIM sampling in sliding windows with motion frames and multi-condition guidance.

Classifier-free guidance composes the three conditions in the order reference -> audio -> emotion
(the paper gives no scheme; this is Hallo's hierarchical form extended by one condition)::

    eps = e(0) + s_ref (e(r) - e(0)) + s_audio (e(r,a) - e(r)) + s_emo (e(r,a,e) - e(r,a))

where ``e(0)`` drops everything, ``e(r)`` keeps the reference, ``e(r,a)`` adds audio and
``e(r,a,e)`` is fully conditioned. With every scale at 1 this is exactly ``e(r,a,e)`` and only that
pass runs. Long audio is generated window by window (``video.frames`` each); the last
``video.motion_frames`` latents of a window feed the ReferenceNet of the next one, so motion carries
over; the first window uses the reference latent in their place.

The experts are mixed by the network's own global gate for every kind of emotion condition (the
paper's soft assignment); ``palette=True`` (or the ``palette`` variant) overwrites ``g`` with a label /
compound / mixture condition's weights, for hand-mixed compounds. ``precision`` (``auto``: bf16 autocast
on a GPU that supports it, else fp16 on GPU, fp32 on CPU) is the mixed precision of the denoising
loop; the weights stay fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler

from moee_bench.moee_ref.audio import frame_windows, wav2vec2_features
from moee_bench.moee_ref.data import resize_image
from moee_bench.moee_ref.model import Conditions, MoEEModel
from moee_bench.moee_ref.emotion_latents import build_text_encoder


@dataclass
class EmotionCondition:
    """How the emotion is given: ``label`` (six weights, zeros = neutral), ``text`` or ``audio`` (16 kHz)."""

    modality: str = "label"
    weights: tuple[float, ...] = (0.0,) * 6
    text: str | None = None
    wave: np.ndarray | None = None

    @property
    def is_neutral(self) -> bool:
        return self.modality == "label" and sum(self.weights) <= 0


@dataclass
class Sample:
    """One clip of a batch: reference image, driving audio (16 kHz), emotion, length (None: the audio's) and seed."""

    ref_image: np.ndarray
    wave: np.ndarray
    emotion: EmotionCondition
    num_frames: int | None = None
    seed: int = 0


@dataclass
class Guidance:
    ref: float = 1.0
    audio: float = 1.0
    emotion: float = 1.0

    @property
    def trivial(self) -> bool:
        return self.ref == self.audio == self.emotion == 1.0


def combine_guidance(e0: torch.Tensor, er: torch.Tensor, era: torch.Tensor, erae: torch.Tensor, g: Guidance) -> torch.Tensor:
    """The hierarchical multi-condition guidance formula of the module docstring."""
    return e0 + g.ref * (er - e0) + g.audio * (era - er) + g.emotion * (erae - era)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on CPU; others as given."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto | fp32 | bf16 | fp16, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class MoEEPipeline:
    """Reference image + driving audio + emotion -> frames, with a trained :class:`MoEEModel`."""

    def __init__(self, model: MoEEModel, *, device: str = "cpu", text_encoder=None, palette: bool = False,
                 precision: str = "auto") -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.text_encoder = text_encoder
        self.palette = palette
        self.precision = resolve_precision(precision, self.device)
        self.scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                       steps_offset=1, prediction_type="epsilon")

    def _emotion(self, cond: EmotionCondition) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(latents, routing, active) for one sample."""
        m, dev = self.model, self.device
        if cond.modality == "label":
            w = torch.tensor([cond.weights], dtype=torch.float32, device=dev)
            z = m.emotion_latents("label", w, torch.ones(1, 1, dtype=torch.bool, device=dev))
            active = (w.sum(-1) > 0).float()
            return z, m.routing(w, "label", palette=self.palette), active
        if cond.modality == "text":
            if self.text_encoder is None:
                self.text_encoder = build_text_encoder(self.cfg.emotion.text_encoder)
            feats, mask = self.text_encoder([cond.text or ""])
            return m.emotion_latents("text", feats.to(dev), mask.to(dev)), None, torch.ones(1, device=dev)
        if cond.modality == "audio":
            n = max(1, int(round(self.cfg.emotion.emotion_audio_seconds * self.cfg.video.fps)))
            wave = np.asarray(cond.wave, np.float32)[: int(n * 16000 / self.cfg.video.fps)]
            feats = m.emotion_audio_features(wave, n)[None].to(dev)
            mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=dev)
            return m.emotion_latents("audio", feats, mask), None, torch.ones(1, device=dev)
        raise ValueError(f"unknown emotion modality {cond.modality!r}")

    @torch.no_grad()
    def __call__(self, ref_image: np.ndarray, wave: np.ndarray, emotion: EmotionCondition, *,
                 num_frames: int | None = None, seed: int = 0, steps: int | None = None,
                 guidance: Guidance | None = None) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames at ``video.fps`` for ``wave`` (16 kHz mono float32)."""
        return self.generate_batch([Sample(ref_image, wave, emotion, num_frames, seed)], steps=steps,
                                   guidance=guidance)[0]

    @torch.no_grad()
    def generate_batch(self, samples: list["Sample"], *, steps: int | None = None,
                       guidance: Guidance | None = None) -> list[np.ndarray]:
        """Frames of several clips denoised together, window by window: one network call per step for the whole
        batch instead of one per clip (the tiny model's calls are overhead-bound on a CPU). Each clip keeps its
        own noise generator (``seed``) and motion frames, so a clip's frames do not depend on its batch-mates
        beyond the floating-point order of batched kernels. Clips shorter than the longest run extra windows
        whose frames are dropped; they draw their noise after the clip's own frames, so they change nothing."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        out: list[np.ndarray | None] = [None] * len(samples)
        conds = [self._emotion(s.emotion) for s in samples]
        groups: dict[bool, list[int]] = {}               # a forced routing cannot share a batch with the gate's own
        for i, (_, routing, _) in enumerate(conds):
            groups.setdefault(routing is None, []).append(i)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            for idx in groups.values():
                frames = self._generate([samples[i] for i in idx], [conds[i] for i in idx], steps=steps,
                                        guidance=guidance)
                for i, f in zip(idx, frames):
                    out[i] = f
        return out  # type: ignore[return-value]

    def _generate(self, samples: list["Sample"], conds: list[tuple], *, steps: int | None,
                  guidance: Guidance | None) -> list[np.ndarray]:
        cfg, m, dev = self.cfg, self.model, self.device
        fps = cfg.video.fps
        b = len(samples)
        n_total = [s.num_frames or max(1, int(round(len(s.wave) / 16000 * fps))) for s in samples]
        g = guidance or Guidance(cfg.infer.guidance_ref, cfg.infer.guidance_audio, cfg.infer.guidance_emotion)
        refs = [torch.from_numpy(np.array(resize_image(s.ref_image, (cfg.video.height, cfg.video.width)), copy=True))
                for s in samples]
        ref = torch.stack(refs).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
        ref_lat = m.encode_images(ref).float()
        ref_tokens = m.reference_tokens(ref_lat)
        feats = [wav2vec2_features(m.audio_encoder, s.wave, n).to(dev) for s, n in zip(samples, n_total)]
        z_emo = torch.cat([c[0] for c in conds])
        routing = None if conds[0][1] is None else torch.cat([c[1] for c in conds])
        active = torch.cat([c[2] for c in conds])
        self.scheduler.set_timesteps(steps or cfg.infer.steps, device=dev)
        gens = [torch.Generator(device="cpu").manual_seed(s.seed) for s in samples]
        f, mo = cfg.video.frames, cfg.video.motion_frames
        motion = [[ref_lat[i]] * mo for i in range(b)]
        out: list[list[np.ndarray]] = [[] for _ in range(b)]
        for start in range(0, max(n_total), f):
            idx = list(range(start, start + f))
            audio = m.project_audio(torch.stack([frame_windows(x, idx, cfg.audio.window) for x in feats]))
            group = (torch.stack([torch.stack([ref_lat[i], *motion[i][-mo:]]) for i in range(b)]) if mo
                     else ref_lat[:, None])
            lat = torch.cat([torch.randn((1, f, *ref_lat.shape[1:]), generator=gen) for gen in gens]).to(dev)
            lat = lat * self.scheduler.init_noise_sigma
            full = Conditions(ref_tokens, audio, z_emo, routing, active)
            m.set_reference(group, ref_tokens)        # the ReferenceNet runs once per window (timestep 0)
            for t in self.scheduler.timesteps:
                tt = t.reshape(1).expand(b).to(dev)
                e_full = m.denoise(lat, tt, full)
                if not g.trivial:
                    e_ra = m.denoise(lat, tt, Conditions(ref_tokens, audio, None))
                    e_r = m.denoise(lat, tt, Conditions(ref_tokens, torch.zeros_like(audio), None))
                    e_0 = m.denoise(lat, tt, Conditions(None, torch.zeros_like(audio), None))
                    e_full = combine_guidance(e_0, e_r, e_ra, e_full, g)
                lat = self.scheduler.step(e_full.flatten(0, 1).float(), t, lat.flatten(0, 1)).prev_sample.reshape(lat.shape)
            m.set_reference(None, None)
            live = [i for i in range(b) if start < n_total[i]]
            decoded = m.decode_latents(lat[live].flatten(0, 1)).float().clamp(-1, 1)
            decoded = ((decoded + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            decoded = decoded.reshape(len(live), f, *decoded.shape[1:])
            for j, i in enumerate(live):
                out[i].append(decoded[j, :min(f, n_total[i] - start)])
            motion = [list(lat[i]) for i in range(b)]
        return [np.concatenate(o)[:n] for o, n in zip(out, n_total)]
