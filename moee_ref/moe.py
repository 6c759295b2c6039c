"""The Mixture of Emotion Experts (MoE) layer.

Paper (moee_paper.md section 2.2, from the S4 note): six experts, one per basic emotion
(``bench.core.emotions.BASIC`` order), each a cross-attention from U-Net tokens to the emotion latent
tokens; a per-token local gate ``s = sigmoid(G(X))`` (n x 6), a per-sample global gate
``g = softmax(G(Pool(X)))`` (6), and the residual update ``X' = X + sum_i g_i * E_i(X * s_i)``.

The default (``moe.global_gate = "soft"``, ``moe.local_gate = "input"``) is that formula, in training
and in inference, for every kind of emotion condition::

    h = LN(X);  s = sigmoid(W_s h);  g = softmax(W_g [mean(h), mean(z)]);  X' = X + sum_i g_i * E_i(h * s_i, z)

The emotion (label, compound, text or audio) reaches ``g`` only through the emotion latent ``z`` that
Emotion-to-Latents makes of it; nothing overwrites ``g``.

Choices where the paper is silent (section 8), and why:

- **X inside the branch** is the pre-LayerNormed token ``h = LN(X)`` (pre-norm residual, like every
  sub-layer of the U-Net's transformer blocks). A LayerNorm *after* ``h * s_i`` would undo the
  per-token scale ``s_i``, so the norm comes first and ``s_i`` is applied once, to the expert's input.
- **What s does there**: the expert is a cross-attention whose query is ``h * s_i`` (diffusers'
  ``Attention`` has no query bias), so ``s_i`` acts as a per-token inverse temperature: ``s_i -> 0``
  gives uniform attention over the emotion tokens (their mean), ``s_i -> 1`` a sharp selection. The
  earlier build also multiplied the expert *output* by ``s_i`` (the local gate applied twice); that
  is kept as ``local_gate = "double"`` (variant ``double-gate``), not the default.
- **Gate networks**: one linear layer each. ``G_local`` sees the token ``h``. ``G_global`` sees
  ``[Pool(h), Pool(z)]``: the pooled *emotion latent* is our addition to the note's ``G(Pool(X))``.
  Before the first MoE layer, and at every layer of a zero-initialised model, ``X`` carries no emotion
  at all (noise, reference and audio only), so a gate on ``Pool(X)`` alone could not know which
  emotion was asked for; ``z`` is how the condition reaches ``g``.
- **Pool**: the mean over the tokens of *all frames of the window*, so ``g`` is one 6-vector per
  sample (per video window) and layer, as the note's ``g in R^6`` per sample; ``s`` is per token and
  frame.
- **What trains g**: the denoising loss, through the soft mixture, plus ``moe.gate_loss_weight *
  KL(label weights || g)`` in stage 2 (the clip's label weights, whatever modality the condition
  came in). The KL is what ties expert *i* to basic emotion *i* ("single emotion: activates only the
  corresponding expert; compound: a soft combination"); without it the experts would be an unordered
  mixture and a hand-mixed palette could not address them. Neutral samples have no KL term.
- **Neutral**: the MoE contributes nothing (``X' = X``); neutral is "no expert", which is also the
  "no emotion" branch of classifier-free guidance.
- **Other gates** (named options): ``global_gate = "forced"`` overwrites ``g`` with the condition's
  weights (the "palette", in training and inference; text and audio, which carry no weights, use the
  predicted ``g``); ``global_gate = "uniform"`` removes the global gate (``g_i = 1/6``, the
  ``no-global-gate`` ablation); ``experts = 1`` is one plain emotion cross-attention without gates
  (the ``no-moe`` ablation).
- **Expert form**: diffusers ``Attention`` (query = tokens, key/value = emotion latents); output
  projections are zero-initialised when ``zero_init`` so that inserting the layer into a trained U-Net
  starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn

N_EXPERTS = 6
GLOBAL_GATES = ("soft", "uniform", "forced")
LOCAL_GATES = ("input", "double")


class MoELayer(nn.Module):
    """Emotion experts (cross-attentions) with soft global-local gating, applied residually."""

    def __init__(self, dim: int, latent_dim: int, *, heads: int = 8, n_experts: int = N_EXPERTS,
                 global_gate: str = "soft", local_gate: str = "input", zero_init: bool = False) -> None:
        super().__init__()
        if global_gate not in GLOBAL_GATES or local_gate not in LOCAL_GATES:
            raise ValueError(f"global_gate must be one of {GLOBAL_GATES}, local_gate one of {LOCAL_GATES}")
        self.n_experts = n_experts
        self.global_mode = global_gate
        self.local_mode = local_gate
        self.norm = nn.LayerNorm(dim)
        self.gated = n_experts > 1
        if self.gated:
            self.local_gate = nn.Linear(dim, n_experts)
            if global_gate != "uniform":
                self.global_gate = nn.Linear(dim + latent_dim, n_experts)
        self.experts = nn.ModuleList(
            Attention(query_dim=dim, cross_attention_dim=latent_dim, heads=heads, dim_head=max(1, dim // heads),
                      out_bias=True)
            for _ in range(n_experts))
        if zero_init:
            for e in self.experts:
                nn.init.zeros_(e.to_out[0].weight)
                nn.init.zeros_(e.to_out[0].bias)

    @property
    def predicts_g(self) -> bool:
        """Whether this layer has a global gate network (soft or forced modes with several experts)."""
        return self.gated and self.global_mode != "uniform"

    def gates(self, x: torch.Tensor, z: torch.Tensor, num_frames: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Local gate ``s`` (N, n, E) in (0, 1) and the predicted global gate ``g`` (N, E) summing to 1
        (the same for all ``num_frames`` frames of a sample; None when the layer has no global gate)."""
        h = self.norm(x)
        s = torch.sigmoid(self.local_gate(h))
        if not self.predicts_g:
            return s, None
        n, t, d = h.shape
        pooled = h.reshape(n // num_frames, num_frames * t, d).mean(1).repeat_interleave(num_frames, 0)
        g = torch.softmax(self.global_gate(torch.cat([pooled, z.mean(1)], dim=-1)), dim=-1)
        return s, g

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, num_frames: int = 1, routing: torch.Tensor | None = None,
                active: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``X' = X + active * sum_i w_i * E_i(LN(X) * s_i, z)`` (see the module docstring for ``w``).

        x: (N, n, d) tokens, N = samples * ``num_frames``; z: (N, m, d_e) emotion latents; routing:
        (N, E) weights that overwrite ``g`` (forced / palette), or None; active: (N,) 0/1, 0 = neutral /
        no emotion (residual only). Returns ``(X', g, s)``: the predicted global gate (None without a
        global gate network) and the local gate (None with one expert).
        """
        h = self.norm(x)
        if not self.gated:
            out = self.experts[0](h, encoder_hidden_states=z)
            g = s = None
        else:
            s, g = self.gates(x, z, num_frames)
            if routing is not None:
                w = routing.to(h.dtype)
            elif g is not None:
                w = g
            else:
                w = torch.full((x.shape[0], self.n_experts), 1.0 / self.n_experts, dtype=h.dtype, device=h.device)
            out = torch.zeros_like(x)
            for i, expert in enumerate(self.experts):
                wi = w[:, i]
                if routing is not None and not bool((wi != 0).any()):
                    continue                      # forced routing: skip experts nobody asked for
                si = s[..., i:i + 1]
                e = expert(h * si, encoder_hidden_states=z)
                if self.local_mode == "double":
                    e = si * e
                out = out + wi[:, None, None] * e
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


def label_weights(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised basic-emotion weights (B, 6) and activity (B,) of condition weights; neutral rows
    (all zero) are inactive. The target of the gate KL, and the forced routing of the palette."""
    active = (weights.sum(-1) > 0).float()
    return weights / weights.sum(-1, keepdim=True).clamp_min(1e-8), active
