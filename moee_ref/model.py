"""The full MoEE model: VAE, ReferenceNet, denoising U-Net with MoEE's layers, audio and emotion encoders.

Everything is a diffusers / transformers module; MoEE's own layers live in :mod:`moee_ref.unet`,
:mod:`moee_ref.moe` and :mod:`moee_ref.emotion_latents`.

Choices the paper leaves open (moee_paper.md section 8), and why:

- **The U-Net's own cross-attention** (``attn2``, text tokens in SD) receives tokens of the
  reference image's latent, average-pooled to a ``unet.ref_token_grid`` square and projected to
  ``cross_attention_dim``. Hallo puts a face-recognition embedding there; that needs insightface
  weights we cannot ship, and pooled reference latents give the same "who is this" signal.
- **ReferenceNet input**: the reference latent plus ``video.motion_frames`` previous-frame latents
  (the motion frames of Hallo), all at timestep 0; their self-attention tokens are appended to every
  frame's self-attention keys and values in the denoiser.
- **Audio emotion encoder** (``emotion.audio_encoder``): the paper's emotion2vec
  (:mod:`moee_ref.emotion2vec`; ``emotion2vec`` = the base model, registry weights when
  ``pretrained``; ``emotion2vec-tiny`` = a small random encoder of the same structure for the tiny
  config), frozen; ``wav2vec2-pool`` reuses the lip-sync wav2vec2 features instead (an option, not
  the paper's).
- **Expert routing** (:meth:`MoEEModel.routing`): ``None`` (the layer's own ``g``) unless the config
  is the forced ``palette`` variant or the caller asks for a palette, and then only for label /
  compound / mixture conditions, which carry weights.
- **Conditions for classifier-free guidance**: reference dropped = no ReferenceNet tokens and
  zero ``attn2`` tokens (dropped for the whole batch in training); audio dropped = zero audio tokens
  (per sample); emotion dropped = the MoE residual only (per sample, ``emotion_active = 0``), which
  is also how neutral is expressed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler
from torch import nn

from moee_bench.moee_ref.audio import build_wav2vec2, wav2vec2_features
from moee_bench.moee_ref.config import MoEEConfig
from moee_bench.moee_ref.emotion2vec import build_emotion2vec, emotion2vec_features
from moee_bench.moee_ref.emotion_latents import EmotionToLatents
from moee_bench.moee_ref.moe import label_weights
from moee_bench.moee_ref.unet import BlockContext, ReferenceBank, build_unet, install_block_extras, install_reference_attention
from moee_bench.bench.core.weights import load_into, load_state_dict, WeightsOptions

MINILM_DIM = 384
T5_DIM = 768


def build_vae(cfg: MoEEConfig) -> AutoencoderKL:
    v = cfg.vae
    n = len(v.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(v.block_out_channels),
                         layers_per_block=v.layers_per_block, latent_channels=v.latent_channels,
                         norm_num_groups=v.norm_num_groups, scaling_factor=v.scaling_factor)


def build_train_scheduler() -> DDPMScheduler:
    """SD 1.5's noise schedule (epsilon prediction; the paper's parameterisation is not stated)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, prediction_type="epsilon", steps_offset=1)


@dataclass
class Conditions:
    """Per-window conditions of one denoiser call (batch B, F frames)."""

    ref_tokens: torch.Tensor | None          # (B, L, cross_attention_dim) or None (reference dropped)
    audio: torch.Tensor | None               # (B, F, K, audio_dim) projected audio tokens, or None
    emotion: torch.Tensor | None             # (B, Q, latent_dim) emotion latents, or None
    routing: torch.Tensor | None = None      # (B, 6) weights overwriting g (palette), or None (the network's g)
    emotion_active: torch.Tensor | None = None  # (B,) 1 = apply experts, 0 = residual only


class MoEEModel(nn.Module):
    """VAE + ReferenceNet + denoiser (+ audio, MoE, temporal layers) + Emotion-to-Latents."""

    def __init__(self, cfg: MoEEConfig, weights=None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.pretrained:
            weights = weights or _default_weights()
            _check_pretrained_files(cfg, weights)
        self.vae = build_vae(cfg)
        self.reference_net = build_unet(cfg)
        self.denoiser = build_unet(cfg)
        self.audio_encoder = build_wav2vec2(cfg, weights)
        hidden = self.audio_encoder.config.hidden_size
        if cfg.emotion.audio_encoder.startswith("emotion2vec"):
            self.emotion_audio_encoder = build_emotion2vec(cfg.emotion.audio_encoder, pretrained=cfg.pretrained,
                                                           weights=weights)
            emo_audio_dim = self.emotion_audio_encoder.dim
        else:
            self.emotion_audio_encoder = None
            emo_audio_dim = hidden
        self.audio_proj = nn.Sequential(nn.Linear(hidden, cfg.audio.dim), nn.LayerNorm(cfg.audio.dim))
        self.ref_proj = nn.Linear(cfg.vae.latent_channels, cfg.unet.cross_attention_dim)
        text_dim = {"minilm": MINILM_DIM, "t5": T5_DIM, "none": MINILM_DIM}[cfg.emotion.text_encoder]
        e = cfg.emotion
        self.emotion = EmotionToLatents(latent_dim=e.latent_dim, num_queries=e.num_queries, label_dim=e.label_dim,
                                        text_dim=text_dim, audio_dim=emo_audio_dim, heads=e.heads)
        self.bank = ReferenceBank()
        self.ctx = BlockContext()
        install_reference_attention(self.reference_net, self.bank, "reference")
        install_reference_attention(self.denoiser, self.bank, "denoiser")
        self.extras = install_block_extras(self.denoiser, cfg, self.ctx)
        if cfg.pretrained:
            self._load_pretrained(weights)
        self.vae.requires_grad_(False)
        self.audio_encoder.requires_grad_(False)
        if self.emotion_audio_encoder is not None:
            self.emotion_audio_encoder.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> "MoEEModel":
        """Like ``nn.Module.train``, but the frozen VAE and audio encoders always stay in eval mode (no dropout)."""
        super().train(mode)
        self.vae.eval()
        self.audio_encoder.eval()
        if self.emotion_audio_encoder is not None:
            self.emotion_audio_encoder.eval()
        return self

    # ----------------------------------------------------------------- weights
    def _load_pretrained(self, weights) -> None:
        unet_sd = load_state_dict(weights.resolve("sd15_unet"))
        for net in (self.reference_net, self.denoiser):
            load_into(net, unet_sd, what="SD 1.5 U-Net weights for the configured U-Net")
        self.vae.load_state_dict(load_state_dict(weights.resolve("sd_vae_ft_mse")))

    # ----------------------------------------------------------------- groups
    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """What each training stage trains (paper section 3): 1 = ReferenceNet + U-Net (+ audio,
        temporal, projections); 2 = only the MoE experts/gates and Emotion-to-Latents; 0 = only the VAE
        (for random-init configs; see :mod:`moee_ref.train`)."""
        if stage == 0:
            return list(self.vae.parameters())
        if stage == 1:
            mods = [self.reference_net, self.denoiser, self.audio_proj, self.ref_proj]
            moe_ids = {id(p) for p in self._moe_parameters()}
            params = [p for m in mods for p in m.parameters()]
            params += [p for p in self.extras.parameters() if id(p) not in moe_ids]
            return params
        if stage == 2:
            return self._moe_parameters() + list(self.emotion.parameters())
        raise ValueError(f"stage must be 0, 1 or 2, got {stage}")

    def _moe_parameters(self) -> list[nn.Parameter]:
        return [p for ex in self.extras.values() for p in ex.moe.parameters()]

    def set_stage(self, stage: int) -> list[nn.Parameter]:
        """Freeze everything except ``stage_parameters(stage)`` and return those."""
        self.requires_grad_(False)
        params = self.stage_parameters(stage)
        for p in params:
            p.requires_grad_(True)
        return params

    # ----------------------------------------------------------------- encoders
    def encode_images(self, images: torch.Tensor, *, sample: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> scaled latents (N, C, h, w)."""
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mean
        return z * self.cfg.vae.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, h, w) -> images (N, 3, H, W) in about [-1, 1]."""
        return self.vae.decode(latents / self.cfg.vae.scaling_factor).sample

    def reference_tokens(self, ref_latent: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) reference latent -> (B, grid^2, cross_attention_dim) tokens for ``attn2``."""
        g = self.cfg.unet.ref_token_grid
        pooled = F.adaptive_avg_pool2d(ref_latent, g).flatten(2).transpose(1, 2)
        return self.ref_proj(pooled)

    def project_audio(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, F, K, hidden) wav2vec2 windows -> (B, F, K, audio_dim)."""
        return self.audio_proj(windows)

    def emotion_audio_features(self, wave, n_frames: int) -> torch.Tensor:
        """(2 * n_frames, dim) features of an emotion-audio waveform (16 kHz) from the configured audio
        emotion encoder, on the same 50 Hz grid as the lip-sync features."""
        if self.emotion_audio_encoder is not None:
            return emotion2vec_features(self.emotion_audio_encoder, wave, n_frames)
        return wav2vec2_features(self.audio_encoder, wave, n_frames)

    def routing(self, weights: torch.Tensor, modality: str, *, palette: bool = False) -> torch.Tensor | None:
        """Weights that overwrite the global gate for a condition, or None (the experts are mixed by the
        network's own ``g``): only the forced (palette) variant, or a caller's explicit ``palette``, forces
        ``g``, and only label / compound / mixture conditions carry weights to force it with."""
        if self.cfg.moe.experts == 1 or modality != "label":
            return None
        if palette or self.cfg.moe.global_gate == "forced":
            return label_weights(weights)[0]
        return None

    def emotion_latents(self, modality: str, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Modality features -> (B, Q, latent_dim); labels pass (B, 6) mixture weights as ``feats``."""
        if modality == "label":
            feats, mask = self.emotion.label_features(feats)
        elif modality == "audio":
            feats, mask = self.emotion.audio_features(feats, mask)
        return self.emotion(modality, feats, mask)

    # ----------------------------------------------------------------- denoising
    def set_reference(self, ref_latents: torch.Tensor | None, ref_tokens: torch.Tensor | None) -> None:
        """Run the ReferenceNet once on (B, G, C, h, w) latents (reference + motion frames) and keep its
        self-attention tokens for the following denoiser calls; ``None`` clears them (reference dropped)."""
        self.bank.clear()
        if ref_latents is None:
            return
        b, g = ref_latents.shape[:2]
        self.bank.mode = "write"
        self.bank.group = g
        flat = ref_latents.flatten(0, 1)
        t = torch.zeros(flat.shape[0], device=flat.device, dtype=torch.long)
        self.reference_net(flat, t, encoder_hidden_states=ref_tokens.repeat_interleave(g, 0)).sample
        self.bank.mode = "read"

    def denoise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditions, *,
                moe: bool = True) -> torch.Tensor:
        """Predict the noise of (B, F, C, h, w) latents at ``timesteps`` (B,) under ``cond``.

        :meth:`set_reference` must have been called for this batch (or with None to drop it); a call with
        ``cond.ref_tokens`` None ignores the ReferenceNet tokens without clearing them.
        """
        b, f = noisy.shape[:2]
        ctx = self.ctx
        ctx.reset()
        ctx.num_frames = f
        ctx.moe_enabled = moe and cond.emotion is not None
        if cond.audio is not None:
            ctx.audio = cond.audio.flatten(0, 1)
        if cond.emotion is not None:
            ctx.emotion = cond.emotion.repeat_interleave(f, 0)
            ctx.routing = None if cond.routing is None else cond.routing.repeat_interleave(f, 0)
            ctx.emotion_active = None if cond.emotion_active is None else cond.emotion_active.repeat_interleave(f, 0)
        if cond.ref_tokens is None:
            tokens = torch.zeros(b, self.cfg.unet.ref_token_grid ** 2, self.cfg.unet.cross_attention_dim,
                                 device=noisy.device, dtype=noisy.dtype)
        else:
            tokens = cond.ref_tokens
        mode = self.bank.mode
        if cond.ref_tokens is None:
            self.bank.mode = "off"          # reference dropped for this call; the ReferenceNet tokens stay for the next
        try:
            out = self.denoiser(noisy.flatten(0, 1), timesteps.repeat_interleave(f, 0),
                                encoder_hidden_states=tokens.repeat_interleave(f, 0)).sample
        finally:
            self.bank.mode = mode
        return out.reshape(noisy.shape)

    def gate_outputs(self) -> list[torch.Tensor]:
        """The predicted global gates ``g`` (B*F, 6) of every MoE layer in the last :meth:`denoise` call."""
        return list(self.ctx.gates)


def _default_weights():
    return WeightsOptions()


PRETRAINED_FILES = {"unet": ("sd15_unet", "sd_vae_ft_mse"), "audio": ("wav2vec2_base_960h",),
                    "t5": ("t5_base_encoder", "t5_base_tokenizer"), "emotion2vec": ("emotion2vec_base",)}


def _check_pretrained_files(cfg: MoEEConfig, weights) -> None:
    """Resolve every registry file the config needs before building anything (one clear error, early)."""
    names = list(PRETRAINED_FILES["unet"])
    if cfg.audio.encoder == "wav2vec2-base-960h":
        names += PRETRAINED_FILES["audio"]
    if cfg.emotion.text_encoder == "t5":
        names += PRETRAINED_FILES["t5"]
    if cfg.emotion.audio_encoder == "emotion2vec":
        names += PRETRAINED_FILES["emotion2vec"]
    for n in names:
        weights.resolve(n)
