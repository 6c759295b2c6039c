"""emotion2vec (Ma et al. 2023, arXiv 2312.15185): the paper's audio emotion encoder, frozen.

emotion2vec_base is a data2vec 2.0 audio model: a 7-layer convolutional feature extractor
(16 kHz -> 50 Hz), a projection to 768, a 5-layer grouped-convolution relative position encoder,
10 learned extra tokens, 4 "prenet" transformer blocks and 8 main blocks (post-LayerNorm, ALiBi
attention bias with a learned per-head scale). Its official checkpoint (``emotion2vec_base.pt`` on
Hugging Face ``emotion2vec/emotion2vec_base`` and ModelScope ``iic/emotion2vec_base``) is a fairseq
checkpoint: a dict whose ``"model"`` entry is the state dict and whose ``"cfg"`` is a pickled
OmegaConf object; FunASR loads it with ``torch.load(...)["model"]``.

This module is our own code: FunASR runs the model, but installing it pulls about thirty packages
(ModelScope, cloud SDKs, umap-learn, hydra) for one encoder, and its loader unpickles the whole file.
The module and parameter names mirror FunASR's ``funasr.models.emotion2vec`` so the official
``"model"`` state dict loads **strictly**: every tensor of the encoder must be present with its shape;
extra tensors are accepted only from the pre-training-only parts (the data2vec decoder, the EMA
teacher, a classification head); anything else is refused. The checkpoint is read with
``torch.load(weights_only=True)``; the non-tensor objects of a fairseq checkpoint (its OmegaConf
config, logging meters, numpy scalars) are rebuilt as inert stand-ins that are never used, so no code
from the file runs.

Feature extraction follows FunASR's ``extract_features`` (no masking, eval mode): waveform layer norm
(``normalize: true`` in emotion2vec_base's config), features at 50 Hz with the extra tokens removed.
Not supported (not needed here): padding masks (one utterance per call), the pre-training decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import WeightsOptions
# imported inside the functions that use them (seconds to import, or optional): safetensors

PREFIX = "modality_encoders.AUDIO."
# the convolutional feature extractor's strides (not recorded in tensor shapes; fixed by the spec
# '[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]' of every data2vec audio model)
STRIDES = (5, 2, 2, 2, 2, 2, 2)
# checkpoint parts that exist only for pre-training / fine-tuning heads: present in the official file,
# not part of the feature extractor
PRETRAINING_ONLY = (PREFIX + "decoder.", "_ema", "ema.", "proj.")
# globals whose pickled objects are containers in a fairseq checkpoint's non-tensor parts: rebuilt as
# plain dicts so their items can be set (the weights-only unpickler sets items on exact dicts only)
DICT_GLOBALS = ("collections.defaultdict",)


@dataclass(frozen=True)
class E2VArch:
    """Sizes of an emotion2vec / data2vec 2.0 audio encoder (defaults: emotion2vec_base)."""

    embed_dim: int = 768
    heads: int = 12
    prenet_depth: int = 4
    depth: int = 8
    mlp_hidden: int = 3072
    conv_dims: tuple[int, ...] = (512,) * 7
    conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    pos_kernel: int = 19                # max(3, conv_pos_width 95 // conv_pos_depth 5)
    pos_groups: int = 16
    pos_depth: int = 5
    extra_tokens: int = 10
    norm_eps: float = 1e-5
    normalize: bool = True              # F.layer_norm on the waveform first (emotion2vec_base: true)


BASE = E2VArch()
# a small random-weight encoder of the same structure, for offline tests and the tiny config
TINY = E2VArch(embed_dim=32, heads=2, prenet_depth=1, depth=1, mlp_hidden=64, conv_dims=(16,) * 7, pos_kernel=3,
               pos_groups=2, pos_depth=2, extra_tokens=2)
ARCHS = {"emotion2vec": BASE, "emotion2vec-tiny": TINY}


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class _FirstHalfPad(nn.Module):
    """Drop the last time step after an even-kernel 'same' convolution (fairseq's SamePad)."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] - self.remove]


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """data2vec 2.0 ``AltBlock`` with ``layer_norm_first = false`` (post-norm), as in emotion2vec_base."""

    def __init__(self, a: E2VArch) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(a.embed_dim, eps=a.norm_eps)
        self.attn = _Attention(a.embed_dim, a.heads)
        self.norm2 = nn.LayerNorm(a.embed_dim, eps=a.norm_eps)
        self.mlp = _Mlp(a.embed_dim, a.mlp_hidden)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        r = self.norm1(x + self.attn(x, bias))
        return self.norm2(r + self.mlp(r))


class _ContextEncoder(nn.Module):
    def __init__(self, a: E2VArch) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(a) for _ in range(a.prenet_depth))
        self.norm = nn.LayerNorm(a.embed_dim, eps=a.norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        for blk in self.blocks:
            x = blk(x, bias)
        return x


def _conv_layer(n_in: int, n_out: int, kernel: int, stride: int) -> nn.Sequential:
    # index layout (conv, dropout slot, (T, LayerNorm, T), GELU) keeps fairseq's parameter names
    return nn.Sequential(nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=False), nn.Identity(),
                         nn.Sequential(_Transpose(), nn.LayerNorm(n_out), _Transpose()), nn.GELU())


def _pos_layer(dim: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups), _FirstHalfPad(kernel),
                         _Transpose(), nn.LayerNorm(dim, elementwise_affine=False), _Transpose(), nn.GELU())


class _AudioEncoder(nn.Module):
    def __init__(self, a: E2VArch) -> None:
        super().__init__()
        layers, n_in = [], 1
        for dim, k, s in zip(a.conv_dims, a.conv_kernels, STRIDES):
            layers.append(_conv_layer(n_in, dim, k, s))
            n_in = dim
        self.local_encoder = nn.Module()
        self.local_encoder.conv_layers = nn.ModuleList(layers)
        self.project_features = nn.Sequential(_Transpose(), nn.LayerNorm(n_in), nn.Linear(n_in, a.embed_dim))
        self.relative_positional_encoder = nn.Sequential(
            _Transpose(), *[_pos_layer(a.embed_dim, a.pos_kernel, a.pos_groups) for _ in range(a.pos_depth)],
            _Transpose())
        self.context_encoder = _ContextEncoder(a)
        self.extra_tokens = nn.Parameter(torch.zeros(1, a.extra_tokens, a.embed_dim))
        self.alibi_scale = nn.Parameter(torch.ones(1, 1, a.heads, 1, 1))


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi head slopes (Press et al. 2022), with the interleaving for a head count that is no power of 2."""
    def pow2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(heads).is_integer():
        return pow2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return pow2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def alibi_bias(heads: int, steps: int, device=None) -> torch.Tensor:
    """(heads, T, T) symmetric linear distance penalty ``-slope_h * |i - j|``."""
    pos = torch.arange(steps, device=device, dtype=torch.float32)
    dist = -(pos[None, :] - pos[:, None]).abs()
    return torch.tensor(alibi_slopes(heads), device=device)[:, None, None] * dist[None]


class Emotion2Vec(nn.Module):
    """Frozen emotion2vec audio encoder: 16 kHz waveform -> (B, T, embed_dim) features at 50 Hz."""

    sample_rate = 16000
    frame_rate = 50

    def __init__(self, arch: E2VArch = BASE) -> None:
        super().__init__()
        self.arch = arch
        self.modality_encoders = nn.ModuleDict({"AUDIO": _AudioEncoder(arch)})
        self.blocks = nn.ModuleList(_Block(arch) for _ in range(arch.depth))

    @property
    def dim(self) -> int:
        return self.arch.embed_dim

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) float waveforms of equal length -> (B, frames, embed_dim)."""
        enc = self.modality_encoders["AUDIO"]
        x = wave.float()
        if self.arch.normalize:
            x = F.layer_norm(x, x.shape)               # FunASR normalises the (1, samples) tensor as a whole
        h = x[:, None, :]
        for layer in enc.local_encoder.conv_layers:
            h = layer(h)
        h = enc.project_features(h)                    # (B, T, D)
        h = h + enc.relative_positional_encoder(h)
        b, t, _ = h.shape
        bias = alibi_bias(self.arch.heads, t, h.device)[None] * enc.alibi_scale.clamp_min(0).squeeze(0)
        n = enc.extra_tokens.shape[1]
        bias = F.pad(bias, (n, 0, n, 0))               # extra tokens: no distance penalty
        h = torch.cat([enc.extra_tokens.expand(b, -1, -1), h], dim=1)
        h = enc.context_encoder(h, bias)
        for blk in self.blocks:
            h = blk(h, bias)
        return h[:, n:]


def arch_from_state_dict(sd: dict[str, torch.Tensor]) -> E2VArch:
    """The encoder sizes a checkpoint's tensors imply (strides are fixed, see :data:`STRIDES`)."""
    try:
        convs = sorted({int(k[len(PREFIX) + len("local_encoder.conv_layers."):].split(".")[0])
                        for k in sd if k.startswith(PREFIX + "local_encoder.conv_layers.")})
        w = [sd[f"{PREFIX}local_encoder.conv_layers.{i}.0.weight"] for i in convs]
        pos = sorted({int(k[len(PREFIX) + len("relative_positional_encoder."):].split(".")[0])
                      for k in sd if k.startswith(PREFIX + "relative_positional_encoder.")})
        pw = sd[f"{PREFIX}relative_positional_encoder.{pos[0]}.0.weight"]
        dim = pw.shape[0]
        prenet = len({k.split(".")[4] for k in sd if k.startswith(PREFIX + "context_encoder.blocks.")})
        depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
        return E2VArch(embed_dim=dim, heads=int(sd[PREFIX + "alibi_scale"].shape[2]), prenet_depth=prenet, depth=depth,
                       mlp_hidden=int(sd["blocks.0.mlp.fc1.weight"].shape[0]),
                       conv_dims=tuple(int(x.shape[0]) for x in w), conv_kernels=tuple(int(x.shape[2]) for x in w),
                       pos_kernel=int(pw.shape[2]), pos_groups=dim // int(pw.shape[1]), pos_depth=len(pos),
                       extra_tokens=int(sd[PREFIX + "extra_tokens"].shape[1]))
    except (KeyError, IndexError) as e:
        raise WeightsError(f"not an emotion2vec / data2vec 2.0 audio state dict (missing {e})") from None


def _inert(name: str):
    """A stand-in for one non-tensor global of a fairseq checkpoint (its config, logging meters, numpy
    scalars): it accepts and discards its arguments and state, so no code of the original runs."""
    if name in DICT_GLOBALS:
        return lambda *args, **kwargs: {}
    module, _, qual = name.rpartition(".")

    def _new(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    return type(qual, (), {"__module__": module, "__new__": _new, "__init__": lambda self, *a, **k: None,
                           "__setstate__": lambda self, state: None})


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state dict of an official emotion2vec checkpoint (``.pt``) or of a safetensors export.

    ``.pt`` files are read with ``torch.load(weights_only=True)``; every non-tensor global in them (the
    fairseq config, meters, numpy scalars) is replaced by an inert stand-in, so nothing but tensors
    and plain containers is built. The state dict is the ``"model"`` entry (fairseq / FunASR layout),
    or the file itself when it is a plain state dict; :func:`from_state_dict` then checks that every
    value it uses is a tensor.
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
        with torch.serialization.safe_globals([(_inert(g), g) for g in unsafe]):
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"emotion2vec checkpoint {p} cannot be loaded safely (weights_only): "
                           f"{type(e).__name__}: {e}") from None
    for key in ("state_dict", "model_state_dict", "model"):      # FunASR's unwrapping order
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"emotion2vec checkpoint {p} holds no state dict")
    return obj


def from_state_dict(sd: dict[str, Any], *, what: str = "emotion2vec checkpoint") -> Emotion2Vec:
    """Build the encoder a state dict implies and load it strictly (see the module docstring)."""
    arch = arch_from_state_dict(sd)
    model = Emotion2Vec(arch)
    own = model.state_dict()
    extra = sorted(k for k in sd if k not in own and not k.startswith(PRETRAINING_ONLY))
    missing = sorted(k for k in own if k not in sd)
    shape = sorted(k for k in own if k in sd and (not isinstance(sd[k], torch.Tensor)
                                                 or tuple(sd[k].shape) != tuple(own[k].shape)))
    if extra or missing or shape:
        raise WeightsError(f"{what} does not fit the emotion2vec encoder: missing {missing[:5]}, unexpected "
                           f"{extra[:5]}, wrong shape {shape[:5]}")
    model.load_state_dict({k: sd[k] for k in own}, strict=True)
    return model.eval().requires_grad_(False)


def build_emotion2vec(kind: str, *, pretrained: bool, weights=None) -> Emotion2Vec:
    """``emotion2vec``: the base architecture, registry weights (``emotion2vec_base``) when ``pretrained``,
    else random; ``emotion2vec-tiny``: a small random encoder of the same structure (tests, tiny config)."""
    if kind not in ARCHS:
        raise ValueError(f"unknown emotion2vec kind {kind!r}; known: {sorted(ARCHS)}")
    if pretrained and kind == "emotion2vec":
        resolved = (weights or WeightsOptions()).resolve("emotion2vec_base")
        return from_state_dict(read_checkpoint(resolved.path), what=f"emotion2vec weights {resolved.path}")
    return Emotion2Vec(ARCHS[kind]).eval().requires_grad_(False)


@torch.no_grad()
def emotion2vec_features(model: Emotion2Vec, wave, n_frames: int | None = None) -> torch.Tensor:
    """(T, dim) features of a 16 kHz mono waveform at 50 Hz; resampled to ``2 * n_frames`` steps when given
    (two per 25 fps video frame, like the lip-sync features)."""
    w = torch.as_tensor(np.asarray(wave, np.float32)).reshape(1, -1)
    if w.shape[1] < 400:                                   # the convolutional stack's receptive field
        w = F.pad(w, (0, 400 - w.shape[1]))
    p = next(model.parameters())
    h = model(w.to(p.device))
    if n_frames is not None:
        h = F.interpolate(h.transpose(1, 2).float(), size=2 * n_frames, mode="linear", align_corners=True).transpose(1, 2)
    return h[0].float().contiguous()


__all__ = ["ARCHS", "BASE", "TINY", "E2VArch", "Emotion2Vec", "arch_from_state_dict", "build_emotion2vec",
           "emotion2vec_features", "from_state_dict", "read_checkpoint"]
