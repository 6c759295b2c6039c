"""The denoiser and ReferenceNet: diffusers ``UNet2DConditionModel`` plus MoEE's additions.

Both networks are plain diffusers U-Nets of the same (SD 1.5-shaped) layout, so their state dicts
load SD 1.5 weights unchanged. The additions are attached without changing those key names:

- **Reference attention** (Animate Anyone / Hallo style): a custom attention processor on every
  ``attn1`` (self-attention). In the ReferenceNet it records its input tokens into a shared
  :class:`ReferenceBank`; in the denoiser it appends the recorded tokens of the same block (the
  reference image and the motion frames) to the keys and values, so each frame attends to the
  reference appearance.
- **Per transformer block of the denoiser** (a forward hook on each ``BasicTransformerBlock``, in
  this order, each residual and pre-LayerNorm):

  1. audio cross-attention to the frame's window of wav2vec2 features (``audio.window`` frames on
     each side: lips depend on the phonemes just before and after);
  2. the MoE layer (:mod:`moee_ref.moe`) with the emotion latents as key/value. It sits in *every*
     transformer block, after the audio attention and before the temporal attention: the paper only
     says it is "inside the U-Net"; every resolution sees it so both coarse (head, brows) and fine
     (mouth corners, eyes) expression can change, and placing it after audio lets the expert
     modulate already lip-synced features while temporal attention afterwards smooths the
     expression change across frames;
  3. temporal (motion) attention across the frames of the window at each spatial position, with
     sinusoidal frame positions (AnimateDiff style). ``DownBlock2D`` / ``UpBlock2D`` stages have no
     transformer and so no temporal layer (unlike AnimateDiff, which adds modules there too).

The per-call conditions reach the hooks through one shared :class:`BlockContext` that the model
fills before calling the denoiser (diffusers' ``cross_attention_kwargs`` would be forwarded to
every attention processor, which reject unknown keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import nn

from moee_bench.moee_ref.config import MoEEConfig
from moee_bench.moee_ref.moe import MoELayer


def build_unet(cfg: MoEEConfig) -> UNet2DConditionModel:
    """A randomly initialised diffusers U-Net of the configured (SD 1.5-like) layout."""
    u = cfg.unet
    h, w = cfg.latent_size
    return UNet2DConditionModel(
        sample_size=max(h, w), in_channels=cfg.vae.latent_channels, out_channels=cfg.vae.latent_channels,
        down_block_types=tuple(u.down_block_types), up_block_types=tuple(u.up_block_types),
        block_out_channels=tuple(u.block_out_channels), layers_per_block=u.layers_per_block,
        cross_attention_dim=u.cross_attention_dim, attention_head_dim=u.attention_head_dim,
        norm_num_groups=u.norm_num_groups)


class ReferenceBank:
    """Self-attention inputs recorded by the ReferenceNet, read by the denoiser."""

    def __init__(self) -> None:
        self.mode = "off"                  # off | write | read
        self.store: dict[str, torch.Tensor] = {}
        self.group = 1                     # ReferenceNet images per sample (reference + motion frames)

    def clear(self) -> None:
        self.store.clear()
        self.mode = "off"


class ReferenceAttnProcessor:
    """Self-attention that records (ReferenceNet) or also attends to (denoiser) reference tokens."""

    def __init__(self, name: str, bank: ReferenceBank, role: str) -> None:
        if role not in ("reference", "denoiser"):
            raise ValueError(f"role must be 'reference' or 'denoiser', got {role!r}")
        self.name = name
        self.bank = bank
        self.role = role

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        kv = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        bank = self.bank
        # roles, not only the bank's mode, decide: gradient checkpointing re-runs ReferenceNet blocks
        # in backward while the bank is in read mode, and they must not read their own tokens
        if self.role == "reference":
            if bank.mode == "write":
                bank.store[self.name] = hidden_states
        elif bank.mode == "read" and self.name in bank.store:
            ref = bank.store[self.name]                          # (B * group, n, d)
            n, d = ref.shape[1], ref.shape[2]
            ref = ref.reshape(-1, bank.group * n, d)             # (B, group * n, d)
            rep = hidden_states.shape[0] // ref.shape[0]
            kv = torch.cat([kv, ref.repeat_interleave(rep, dim=0).to(kv.dtype)], dim=1)
        return _attend(attn, hidden_states, kv)


def _attend(attn: Attention, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    q, k, v = attn.to_q(x), attn.to_k(kv), attn.to_v(kv)
    hd = q.shape[-1] // attn.heads
    q, k, v = (t.reshape(b, -1, attn.heads, hd).transpose(1, 2) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
    o = attn.to_out[1](attn.to_out[0](o))
    return o / attn.rescale_output_factor


def install_reference_attention(unet: UNet2DConditionModel, bank: ReferenceBank, role: str) -> int:
    """Put a :class:`ReferenceAttnProcessor` on every ``attn1`` of ``unet``; returns how many."""
    n = 0
    for name, mod in unet.named_modules():
        if isinstance(mod, BasicTransformerBlock):
            mod.attn1.set_processor(ReferenceAttnProcessor(name, bank, role))
            n += 1
    return n


@dataclass
class BlockContext:
    """Per-call conditions of the denoiser's added layers (filled by the model before each call)."""

    num_frames: int = 1
    audio: torch.Tensor | None = None          # (B*F, K, audio_dim)
    emotion: torch.Tensor | None = None        # (B*F, Q, latent_dim)
    routing: torch.Tensor | None = None        # (B*F, 6) weights overwriting g (palette), or None
    emotion_active: torch.Tensor | None = None  # (B*F,) 1 = apply MoE, 0 = residual only
    moe_enabled: bool = True
    gates: list[torch.Tensor] = field(default_factory=list)   # predicted g of every MoE layer (this call)

    def reset(self) -> None:
        self.audio = self.emotion = self.routing = self.emotion_active = None
        self.gates = []


def sinusoidal(n: int, dim: int, device=None) -> torch.Tensor:
    """Standard sinusoidal position table (n, dim)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=device) / max(half, 1))
    tab = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)
    return F.pad(tab, (0, dim - tab.shape[1]))


class TemporalAttention(nn.Module):
    """Self-attention across the frames of a window at each token position."""

    def __init__(self, dim: int, heads: int, max_frames: int, zero_init: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=max(1, dim // heads), out_bias=True)
        self.register_buffer("pos", sinusoidal(max_frames, dim), persistent=False)
        if zero_init:
            nn.init.zeros_(self.attn.to_out[0].weight)
            nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, n, d = x.shape
        if num_frames <= 1:
            return x
        if num_frames > self.pos.shape[0]:
            raise ValueError(f"window of {num_frames} frames exceeds unet.max_frames={self.pos.shape[0]}")
        b = bf // num_frames
        h = x.reshape(b, num_frames, n, d).permute(0, 2, 1, 3).reshape(b * n, num_frames, d)
        h = self.norm(h) + self.pos[:num_frames].to(h.dtype)
        h = self.attn(h)
        h = h.reshape(b, n, num_frames, d).permute(0, 2, 1, 3).reshape(bf, n, d)
        return x + h


class AudioAttention(nn.Module):
    """Cross-attention from each frame's tokens to its window of audio tokens."""

    def __init__(self, dim: int, audio_dim: int, heads: int, zero_init: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=heads, dim_head=max(1, dim // heads),
                              out_bias=True)
        if zero_init:
            nn.init.zeros_(self.attn.to_out[0].weight)
            nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x), encoder_hidden_states=audio.to(x.dtype))


class BlockExtras(nn.Module):
    """The layers MoEE adds after one denoiser transformer block."""

    def __init__(self, dim: int, cfg: MoEEConfig) -> None:
        super().__init__()
        heads = cfg.unet.extra_heads
        self.audio = AudioAttention(dim, cfg.audio.dim, heads, cfg.zero_init)
        self.moe = MoELayer(dim, cfg.emotion.latent_dim, heads=heads, n_experts=cfg.moe.experts,
                            global_gate=cfg.moe.global_gate, local_gate=cfg.moe.local_gate, zero_init=cfg.zero_init)
        self.temporal = TemporalAttention(dim, heads, cfg.unet.max_frames, cfg.zero_init)

    def forward(self, x: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        if ctx.audio is not None:
            x = self.audio(x, ctx.audio)
        if ctx.moe_enabled and ctx.emotion is not None:
            x, g, _ = self.moe(x, ctx.emotion.to(x.dtype), num_frames=ctx.num_frames, routing=ctx.routing,
                               active=ctx.emotion_active)
            if g is not None:
                ctx.gates.append(g)
        return self.temporal(x, ctx.num_frames)


def install_block_extras(unet: UNet2DConditionModel, cfg: MoEEConfig, ctx: BlockContext) -> nn.ModuleDict:
    """Create :class:`BlockExtras` for every transformer block and hook them in; returns them by block name."""
    extras = nn.ModuleDict()
    for name, mod in unet.named_modules():
        if isinstance(mod, BasicTransformerBlock):
            key = name.replace(".", "__")
            extras[key] = BlockExtras(mod.attn1.to_q.in_features, cfg)
            mod.register_forward_hook(_make_hook(extras, key, ctx))
    return extras


def _make_hook(extras: nn.ModuleDict, key: str, ctx: BlockContext):
    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return extras[key](output, ctx)
    return hook
