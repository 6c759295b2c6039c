"""Named MoEE variants: the paper's model, the model rows of its Table 5 ablation, and two options.

Each variant is the paper default (``full``) with a few config switches changed; the same code runs
all of them. A config records its variant (``variant = "..."``) and its validation refuses a config
whose switches disagree with it, so a checkpoint's variant name is always true. The benchmark method
of a variant is ``moee-ref:<name>`` (``moee-ref`` for ``full``); ``reports/data/moee_paper_tables.toml``
uses the same names (a test keeps them equal).

Variants act in stage 2 (the MoE, its gates and masked noisy sampling exist only there), so all of
them can start from one stage-1 checkpoint: ``moee-bench train --stage 2 --variant NAME --init S1``.
``no-dhfev`` is a *training-data* ablation: the model and code are those of ``full``; what differs is
that stages 1 and 2 are trained on data without DH-FaceEmoVid-150 (pass such a manifest). Its name
only labels the checkpoint so that results are reported under the right row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the switches that define a variant: (section, key) -> value of the paper default
PAPER_SWITCHES: dict[tuple[str, str], Any] = {
    ("moe", "experts"): 6,
    ("moe", "global_gate"): "soft",
    ("moe", "local_gate"): "input",
    ("train", "masked_noisy"): True,
}


@dataclass(frozen=True)
class Variant:
    """One named variant: its switches (over the paper default), the row it stands for and what it is."""

    name: str
    label: str
    kind: str                         # paper | model-ablation | data-ablation | option
    switches: dict[tuple[str, str], Any] = field(default_factory=dict)
    doc: str = ""

    @property
    def method(self) -> str:
        """The benchmark method name (``moee-ref`` / ``moee-ref:<name>``)."""
        return "moee-ref" if self.name == "full" else f"moee-ref:{self.name}"

    def values(self) -> dict[tuple[str, str], Any]:
        return {**PAPER_SWITCHES, **self.switches}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "Full MoEE", "paper",
            doc="soft global-local gating in training and inference, masked noisy emotion sampling"),
    Variant("no-moe", "w/o MoEE", "model-ablation", {("moe", "experts"): 1},
            doc="one emotion cross-attention (the size of one expert) in place of the six experts and their gates; "
                "the emotion still arrives through Emotion-to-Latents (the paper does not say what replaces the MoE)"),
    Variant("no-global-gate", "w/o Global Soft Assignment", "model-ablation", {("moe", "global_gate"): "uniform"},
            doc="no global gate: every expert weighs 1/6 and only the per-token local gate s assigns"),
    Variant("no-masked-noisy", "w/o Masked Noisy Sampling", "model-ablation", {("train", "masked_noisy"): False},
            doc="stage 2 without noisy samples and without the mouth mask (same network)"),
    Variant("no-dhfev", "w/o DH-FaceEmoVid-150", "data-ablation",
            doc="training-data ablation: the full model trained on data without DH-FaceEmoVid-150"),
    Variant("palette", "forced routing (palette)", "option", {("moe", "global_gate"): "forced"},
            doc="g is overwritten by the condition's weights (label / compound) in training and inference; text "
                "and audio conditions, which have no weights, use the predicted g"),
    Variant("double-gate", "local gate applied twice", "option", {("moe", "local_gate"): "double"},
            doc="the earlier build's mixing g_i * s_i * E_i(X * s_i)"),
)}

TABLE5_ROWS = ("no-moe", "no-global-gate", "no-masked-noisy", "no-dhfev", "full")


def get(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown MoEE variant {name!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[name]
