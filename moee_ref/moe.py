"""The Mixture of Emotion Experts (MoE) layer.

Paper (moee_paper.md section 2.2, from the S4 note): six experts, one per basic emotion
(``bench.emotions.BASIC`` order), each a cross-attention from U-Net tokens to the emotion latent
tokens; a per-token local gate ``s = sigmoid(G(X))`` (n x 6), a per-sample global gate
``g = softmax(G(Pool(X)))`` (6), and the residual update ``X' = X + sum_i g_i * E_i(X * s_i)``.

Choices where the paper is silent (section 8), and why:

- **Gate networks**: ``G_local`` is one linear layer on the layer-normed tokens (cheap and enough for
  a per-token scalar per expert). ``G_global`` is one linear layer on ``[mean_pool(X), mean_pool(z)]``:
  pooling the *emotion latent* as well as X is our addition, because X alone carries no emotion
  information before the first MoE layer, so a gate on X only could not know which emotion was asked
  for (text and audio conditions have no label to route by).
- **Pooling**: mean over tokens (the digest's assumption; order-free and resolution-free).
- **Where s acts**: the formula scales the expert's *input* ``X * s_i``. For a cross-attention expert
  that input is only the query, and scaling a query changes the attention's sharpness, not the size
  of the update, so the gate alone would not localise anything. We keep ``E_i(X * s_i)`` as written
  and also multiply the expert output per token by ``s_i``, so ``s`` really is a per-token gate on
  where expression is changed (the note's "fine-grained control of local expressions").
- **Routing and supervision of g**: single emotion -> forced one-hot routing (only that expert is
  trained on that emotion's clips, the note's "each expert is trained on single-emotion data");
  compound/mixture -> the target weights. The predicted ``g`` is supervised with
  ``KL(target || g)`` (``moe.gate_loss_weight``) during stage 2, so that text- or audio-only
  conditions, which have no weights, can be routed by ``g`` at inference. With
  ``moe.train_routing = "predicted"`` the experts are mixed by ``g`` during training instead.
  At inference, label / compound / mixture specs force ``g`` to their weights
  (``moe.force_routing_at_inference``).
- **Neutral**: the MoE contributes nothing (residual only, ``X' = X``); neutral is "no expert".
  The same path is the "no emotion" branch of classifier-free guidance.
- **Expert form**: pre-LayerNorm, diffusers ``Attention`` (query = tokens, key/value = emotion
  latents); output projections are zero-initialised when ``zero_init`` so that inserting the layer
  into a trained U-Net starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn

N_EXPERTS = 6


class MoELayer(nn.Module):
    """Six cross-attention emotion experts with soft global-local gating, applied residually."""

    def __init__(self, dim: int, latent_dim: int, *, heads: int = 8, n_experts: int = N_EXPERTS,
                 zero_init: bool = False) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.norm = nn.LayerNorm(dim)
        self.local_gate = nn.Linear(dim, n_experts)
        self.global_gate = nn.Linear(dim + latent_dim, n_experts)
        self.experts = nn.ModuleList(
            Attention(query_dim=dim, cross_attention_dim=latent_dim, heads=heads, dim_head=max(1, dim // heads),
                      out_bias=True)
            for _ in range(n_experts))
        if zero_init:
            for e in self.experts:
                nn.init.zeros_(e.to_out[0].weight)
                nn.init.zeros_(e.to_out[0].bias)

    def gates(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local gate ``s`` (N, n, E) in (0, 1) and global gate ``g`` (N, E) summing to 1."""
        h = self.norm(x)
        s = torch.sigmoid(self.local_gate(h))
        g = torch.softmax(self.global_gate(torch.cat([h.mean(1), z.mean(1)], dim=-1)), dim=-1)
        return s, g

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, routing: torch.Tensor | None = None,
                active: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``X' = X + active * sum_i w_i * s_i * E_i(norm(X) * s_i, z)``.

        x: (N, n, d) tokens; z: (N, m, d_e) emotion latents; routing: (N, E) forced weights or None to
        use the predicted ``g``; active: (N,) 0/1, 0 = neutral / no emotion (residual only).
        Returns ``(X', g, s)``.
        """
        s, g = self.gates(x, z)
        w = g if routing is None else routing.to(g.dtype)
        h = self.norm(x)
        out = torch.zeros_like(x)
        for i, expert in enumerate(self.experts):
            wi = w[:, i]
            if routing is not None and not bool((wi != 0).any()):
                continue                      # forced routing: skip experts nobody asked for
            si = s[..., i:i + 1]
            out = out + wi[:, None, None] * si * expert(h * si, encoder_hidden_states=z)
        if active is not None:
            out = out * active.to(out.dtype)[:, None, None]
        return x + out, g, s


def gate_kl(g: torch.Tensor, target: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(target || g)`` per sample, averaged over active samples (0 when none are active)."""
    t = target.to(g.dtype)
    kl = (t * (torch.log(t.clamp_min(1e-8)) - torch.log(g.clamp_min(1e-8)))).sum(-1)
    if active is None:
        return kl.mean()
    a = active.to(kl.dtype)
    return (kl * a).sum() / a.sum().clamp_min(1.0)


def onehot_routing(index: int, batch: int = 1, n_experts: int = N_EXPERTS) -> torch.Tensor:
    """Forced routing to one expert."""
    return F.one_hot(torch.full((batch,), index, dtype=torch.long), n_experts).float()
