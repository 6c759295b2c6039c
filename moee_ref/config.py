"""MoEE reference configuration: TOML files -> typed dataclasses.

``load_config("tiny")`` / ``load_config("paper")`` read ``moee_ref/configs/<name>.toml``; any
other string is a path to a TOML file with the same sections. Unknown keys are refused so a
typo cannot silently fall back to a default. ``variant`` names the model variant
(:mod:`moee_ref.variants`); :func:`with_variant` switches a config to another variant and validation
refuses a config whose switches disagree with its variant name.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from moee_bench.bench.core.errors import BenchError
from moee_bench.moee_ref.variants import VARIANTS

CONFIG_DIR = Path(__file__).with_name("configs")


class ConfigError(BenchError):
    """A MoEE config file is missing, malformed or has unknown keys."""


@dataclass
class VideoConfig:
    height: int = 64
    width: int = 64
    fps: float = 25.0
    frames: int = 4
    motion_frames: int = 1


@dataclass
class VAEConfig:
    block_out_channels: list[int] = field(default_factory=lambda: [8, 16, 32, 32])
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    scaling_factor: float = 0.18215


@dataclass
class UNetConfig:
    block_out_channels: list[int] = field(default_factory=lambda: [32, 48, 64])
    down_block_types: list[str] = field(default_factory=lambda: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"])
    up_block_types: list[str] = field(default_factory=lambda: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
    layers_per_block: int = 1
    cross_attention_dim: int = 32
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    ref_token_grid: int = 4
    extra_heads: int = 2
    max_frames: int = 64


@dataclass
class AudioConfig:
    encoder: str = "wav2vec2-random"
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    conv_dim: int = 16
    window: int = 2
    dim: int = 32


@dataclass
class EmotionConfig:
    latent_dim: int = 32
    num_queries: int = 4
    label_dim: int = 32
    heads: int = 2
    text_encoder: str = "minilm"
    audio_encoder: str = "emotion2vec-tiny"
    emotion_audio_seconds: float = 2.0


@dataclass
class MoEConfig:
    experts: int = 6                   # 6 (paper) | 1 (variant no-moe: one emotion cross-attention, no gates)
    global_gate: str = "soft"          # soft (paper) | uniform (no-global-gate) | forced (palette)
    local_gate: str = "input"          # input (paper: E_i(X * s_i)) | double (s_i * E_i(X * s_i))
    gate_loss_weight: float = 0.1      # KL(label weights || g) in stage 2, for a predicted g


@dataclass
class TrainConfig:
    lr_stage1: float = 1e-3
    lr_stage2: float = 1e-3
    batch_size: int = 2
    weight_decay: float = 0.0
    steps: int = 300
    log_every: int = 10
    save_every: int = 100
    lambda_spatial: float = 0.1
    spatial_loss_frames: int = 2
    perceptual_backbone: str = "random"
    p_drop_ref: float = 0.05
    p_drop_audio: float = 0.05
    masked_noisy: bool = True          # masked noisy emotion sampling in stage 2 (variant no-masked-noisy: off)
    p_noisy: float = 0.2
    noisy_source: str = "neutral"      # neutral | other (other emotions and neutral); see moee_ref/data.py
    mouth_mask: str = "all"            # all stage-2 samples | noisy samples only
    modality_probs: dict[str, float] = field(default_factory=lambda: {"label": 0.5, "text": 0.25, "audio": 0.25})
    grad_clip: float = 1.0
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False


@dataclass
class InferConfig:
    steps: int = 10
    guidance_ref: float = 1.0
    guidance_audio: float = 1.0
    guidance_emotion: float = 1.0


@dataclass
class MoEEConfig:
    """The whole model/training/inference configuration."""

    name: str = "tiny"
    variant: str = "full"
    pretrained: bool = False
    random_init: bool = False          # built without any registry weights (smoke tests / throughput only)
    zero_init: bool = False
    video: VideoConfig = field(default_factory=VideoConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def latent_size(self) -> tuple[int, int]:
        f = 2 ** (len(self.vae.block_out_channels) - 1)
        return self.video.height // f, self.video.width // f


def from_dict(d: Mapping[str, Any], *, source: str = "<dict>") -> MoEEConfig:
    """Build a :class:`MoEEConfig` from nested mappings, refusing unknown sections and keys."""
    cfg = MoEEConfig()
    known = {f.name: f for f in dataclasses.fields(MoEEConfig)}
    legacy = sorted(set(d.get("moe", {})) & {"train_routing", "force_routing_at_inference"})
    if legacy:
        raise ConfigError(f"{source}: {legacy} no longer exist: soft global gating is the default (moe.global_gate = "
                          "soft | uniform | forced, moe.local_gate = input | double). A checkpoint trained with them "
                          "used forced routing and the double local gate; retrain stage 2 (--variant palette or "
                          "double-gate reproduces either)")
    for key, value in d.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown config key {key!r}; known: {sorted(known)}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [{key}] must be a table")
            sub = {f.name for f in dataclasses.fields(current)}
            bad = sorted(set(value) - sub)
            if bad:
                raise ConfigError(f"{source}: unknown keys {bad} in [{key}]; known: {sorted(sub)}")
            setattr(cfg, key, dataclasses.replace(current, **dict(value)))
        else:
            setattr(cfg, key, value)
    _validate(cfg, source)
    return cfg


def _validate(cfg: MoEEConfig, source: str) -> None:
    f = 2 ** (len(cfg.vae.block_out_channels) - 1)
    if cfg.video.height % f or cfg.video.width % f:
        raise ConfigError(f"{source}: frame size {cfg.video.height}x{cfg.video.width} is not divisible by the VAE factor {f}")
    if len(cfg.unet.down_block_types) != len(cfg.unet.block_out_channels) or \
            len(cfg.unet.up_block_types) != len(cfg.unet.block_out_channels):
        raise ConfigError(f"{source}: [unet] block type lists must match block_out_channels in length")
    if cfg.moe.experts not in (1, 6):
        raise ConfigError(f"{source}: MoEE has one expert per basic emotion (6), or 1 for the no-moe ablation; "
                          f"got {cfg.moe.experts}")
    _choice(source, "moe.global_gate", cfg.moe.global_gate, ("soft", "uniform", "forced"))
    _choice(source, "moe.local_gate", cfg.moe.local_gate, ("input", "double"))
    _choice(source, "train.noisy_source", cfg.train.noisy_source, ("other", "neutral"))
    _choice(source, "train.mouth_mask", cfg.train.mouth_mask, ("all", "noisy"))
    _choice(source, "emotion.text_encoder", cfg.emotion.text_encoder, ("minilm", "t5", "none"))
    _choice(source, "emotion.audio_encoder", cfg.emotion.audio_encoder, ("emotion2vec", "emotion2vec-tiny", "wav2vec2-pool"))
    if not 0.0 <= cfg.train.p_noisy < 1.0:
        raise ConfigError(f"{source}: train.p_noisy must be in [0, 1), got {cfg.train.p_noisy}")
    if cfg.variant not in VARIANTS:
        raise ConfigError(f"{source}: unknown variant {cfg.variant!r}; known: {sorted(VARIANTS)}")
    wrong = {f"{sec}.{key}": (getattr(getattr(cfg, sec), key), want)
             for (sec, key), want in VARIANTS[cfg.variant].values().items() if getattr(getattr(cfg, sec), key) != want}
    if wrong:
        raise ConfigError(f"{source}: variant {cfg.variant!r} needs " + ", ".join(
            f"{k} = {w!r} (got {g!r})" for k, (g, w) in wrong.items()) + "; use with_variant() / --variant to switch")
    if cfg.video.frames < 1 or cfg.video.motion_frames < 0:
        raise ConfigError(f"{source}: video.frames must be >= 1 and motion_frames >= 0")


def _choice(source: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{source}: {key} must be one of {' | '.join(allowed)}, got {value!r}")


def with_variant(cfg: MoEEConfig, variant: str) -> MoEEConfig:
    """A copy of ``cfg`` switched to ``variant`` (its switches set, everything else kept)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown MoEE variant {variant!r}; known: {sorted(VARIANTS)}")
    d = cfg.to_dict()
    d["variant"] = variant
    for (sec, key), value in VARIANTS[variant].values().items():
        d[sec][key] = value
    return from_dict(d, source=f"{cfg.name} (variant {variant})")


def with_random_init(cfg: MoEEConfig) -> MoEEConfig:
    """A copy of ``cfg`` that reads nothing from the weights registry: every network random, the T5 text
    encoder (whose tokenizer is a registry file) replaced by the packaged MiniLM, the perceptual loss a
    random VGG. Marked ``random_init = true``; for smoke tests and throughput, never for results."""
    d = cfg.to_dict()
    d.update(pretrained=False, random_init=True)
    if d["emotion"]["text_encoder"] == "t5":
        d["emotion"]["text_encoder"] = "minilm"
    d["train"]["perceptual_backbone"] = "random"
    return from_dict(d, source=f"{cfg.name} (random init)")


def load_config(name_or_path: str | Path) -> MoEEConfig:
    """A built-in config by name (``tiny``, ``paper``) or a TOML file path."""
    p = Path(name_or_path)
    if not p.suffix and (CONFIG_DIR / f"{name_or_path}.toml").is_file():
        p = CONFIG_DIR / f"{name_or_path}.toml"
    if not p.is_file():
        builtin = sorted(x.stem for x in CONFIG_DIR.glob("*.toml"))
        raise ConfigError(f"MoEE config {str(name_or_path)!r} is neither a built-in ({', '.join(builtin)}) nor a TOML file")
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"MoEE config {p}: invalid TOML ({e})") from None
    return from_dict(data, source=str(p))
