"""Lip-sync audio features: a frozen wav2vec2 (transformers) and per-frame windows of its features.

wav2vec2 produces features at 50 Hz, two per 25 fps video frame. Following Hallo (the paper's
likely backbone, moee_paper.md section 2.1) the feature sequence is linearly resampled to exactly
``2 * n_frames`` steps, and each video frame attends to the features of itself and ``window``
neighbouring frames on each side (edges clamp), i.e. ``K = 2 * (2 * window + 1)`` tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moee_bench.moee_ref.config import MoEEConfig
from moee_bench.bench.core.weights import load_into, load_state_dict
# imported inside the functions that use them (seconds to import, or optional): transformers

FEATURES_PER_FRAME = 2
AUDIO_RATE = 16000


def build_wav2vec2(cfg: MoEEConfig, weights=None) -> nn.Module:
    """The configured wav2vec2 encoder: tiny random (``wav2vec2-random``) or base-960h from the registry."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    a = cfg.audio
    if a.encoder == "wav2vec2-random":
        conf = Wav2Vec2Config(hidden_size=a.hidden_size, num_hidden_layers=a.num_hidden_layers,
                              num_attention_heads=a.num_attention_heads, intermediate_size=a.intermediate_size,
                              conv_dim=(a.conv_dim,) * 7, num_conv_pos_embedding_groups=min(16, a.hidden_size),
                              num_conv_pos_embeddings=32, do_stable_layer_norm=False, feat_extract_norm="group")
        return Wav2Vec2Model(conf)
    if a.encoder == "wav2vec2-base-960h":
        model = Wav2Vec2Model(Wav2Vec2Config())       # transformers' defaults are the base architecture
        if cfg.pretrained:
            sd = load_state_dict(weights.resolve("wav2vec2_base_960h"))
            sd = {k.removeprefix("wav2vec2."): v for k, v in sd.items() if not k.startswith("lm_head.")}
            load_into(model, sd, what="wav2vec2_base_960h weights for Wav2Vec2Model",
                      allow_missing=("masked_spec_embed",))               # training-only, absent in some exports
        return model
    raise ValueError(f"unknown audio encoder {a.encoder!r}")


@torch.no_grad()
def wav2vec2_features(model: nn.Module, wave: np.ndarray | torch.Tensor, n_frames: int) -> torch.Tensor:
    """``(2 * n_frames, hidden)`` features of a 16 kHz mono waveform, resampled to the video's frame grid."""
    w = torch.as_tensor(np.asarray(wave, np.float32)).reshape(1, -1)
    if w.shape[1] < 400:                                   # wav2vec2's receptive field
        w = F.pad(w, (0, 400 - w.shape[1]))
    w = (w - w.mean()) / (w.std() + 1e-7)                  # Wav2Vec2FeatureExtractor's normalisation
    p = next(model.parameters())
    h = model(w.to(p.device, p.dtype)).last_hidden_state     # (1, T, hidden)
    h = F.interpolate(h.transpose(1, 2).float(), size=FEATURES_PER_FRAME * n_frames, mode="linear",
                      align_corners=True)
    return h[0].transpose(0, 1).contiguous()


def frame_windows(feats: torch.Tensor, frames: torch.Tensor | list[int], window: int) -> torch.Tensor:
    """Gather the audio tokens of each frame index: ``(len(frames), 2 * (2 * window + 1), hidden)``."""
    idx = torch.as_tensor(frames, dtype=torch.long)
    n = feats.shape[0] // FEATURES_PER_FRAME
    offs = torch.arange(-window, window + 1)
    fr = (idx[:, None] + offs[None, :]).clamp(0, n - 1)                        # (n_idx, 2w+1)
    sub = fr[..., None] * FEATURES_PER_FRAME + torch.arange(FEATURES_PER_FRAME)  # (n_idx, 2w+1, 2)
    return feats[sub.reshape(len(idx), -1).to(feats.device)]
