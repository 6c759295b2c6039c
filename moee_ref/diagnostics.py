"""Diagnostics of a trained MoEE: where the predicted global gate sends each basic emotion label."""

from __future__ import annotations

import torch

from moee_bench.bench.core.emotions import BASIC
from moee_bench.moee_ref.model import Conditions, MoEEModel


@torch.no_grad()
def gate_routing(model: MoEEModel, *, seed: int = 0, timestep: int = 300) -> torch.Tensor | None:
    """(6, 6) mean predicted global gate ``g`` (rows: the label asked for, columns: experts) on random
    latents with a random reference and silent audio, routing left to the gate (no forced weights);
    None for variants without a global gate network (no-moe, no-global-gate)."""
    cfg = model.cfg
    if cfg.moe.experts == 1 or cfg.moe.global_gate == "uniform":
        return None
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.latent_size
    f = cfg.video.frames
    ref = torch.randn(1, cfg.vae.latent_channels, h, w, generator=g).to(dev)
    tokens = model.reference_tokens(ref)
    audio = torch.zeros(1, f, 2 * (2 * cfg.audio.window + 1), cfg.audio.dim, device=dev)
    noisy = torch.randn(1, f, cfg.vae.latent_channels, h, w, generator=g).to(dev)
    rows = []
    for i in range(len(BASIC)):
        weights = torch.zeros(1, len(BASIC), device=dev)
        weights[0, i] = 1.0
        z = model.emotion_latents("label", weights, torch.ones(1, 1, dtype=torch.bool, device=dev))
        model.set_reference(ref[:, None].repeat(1, 1 + cfg.video.motion_frames, 1, 1, 1), tokens)
        model.denoise(noisy, torch.tensor([timestep], device=dev), Conditions(tokens, audio, z, None, torch.ones(1, device=dev)))
        model.set_reference(None, None)
        rows.append(torch.stack(model.gate_outputs()).mean((0, 1)))
    return torch.stack(rows).cpu()


def routing_summary(table: torch.Tensor | None) -> str:
    """One line: how many labels the gate sends mostly to their own expert, and where each goes."""
    if table is None:
        return "no global gate in this variant (no routing table)"
    own = int(sum(int(table[i].argmax()) == i for i in range(len(BASIC))))
    parts = [f"{BASIC[i]}->{BASIC[int(table[i].argmax())]} {float(table[i].max()):.2f}" for i in range(len(BASIC))]
    return f"predicted gate routes {own}/6 basic labels to their own expert ({', '.join(parts)})"
