"""MoEE reference configuration: TOML files -> typed dataclasses.

``load_config("tiny")`` / ``load_config("paper")`` read ``moee_ref/configs/<name>.toml``; any
other string is a path to a TOML file with the same sections. Unknown keys are refused so a
typo cannot silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from moee_bench.bench.core.errors import BenchError

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
    audio_encoder: str = "wav2vec2-pool"
    emotion_audio_seconds: float = 2.0


@dataclass
class MoEConfig:
    experts: int = 6
    gate_loss_weight: float = 0.1
    train_routing: str = "forced"
    force_routing_at_inference: bool = True


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
    p_noisy: float = 0.2
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
    pretrained: bool = False
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
    if cfg.moe.experts != 6:
        raise ConfigError(f"{source}: MoEE has one expert per basic emotion (6), got {cfg.moe.experts}")
    if cfg.moe.train_routing not in ("forced", "predicted"):
        raise ConfigError(f"{source}: moe.train_routing must be 'forced' or 'predicted'")
    if cfg.emotion.text_encoder not in ("minilm", "t5", "none"):
        raise ConfigError(f"{source}: emotion.text_encoder must be minilm | t5 | none")
    if cfg.emotion.audio_encoder not in ("wav2vec2-pool", "emotion2vec"):
        raise ConfigError(f"{source}: emotion.audio_encoder must be wav2vec2-pool | emotion2vec")
    if cfg.video.frames < 1 or cfg.video.motion_frames < 0:
        raise ConfigError(f"{source}: video.frames must be >= 1 and motion_frames >= 0")


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
