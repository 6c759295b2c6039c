"""Method names -> adapter classes, imported lazily. Other packages add methods through the
``moee_bench.methods`` entry-point group (``name = "pkg.module:Class"``)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Mapping

from moee_bench.baselines.base import Method

METHODS: dict[str, str] = {
    "ground-truth": "moee_bench.baselines.builtin:GroundTruth",
    "static": "moee_bench.baselines.builtin:Static",
    "precomputed": "moee_bench.baselines.builtin:Precomputed",
    "aniportrait": "moee_bench.baselines.aniportrait:AniPortrait",
    "hallo": "moee_bench.baselines.hallo:Hallo",
    "hallo2": "moee_bench.baselines.hallo:Hallo2",
    "eat": "moee_bench.baselines.eat:EAT",
    "sadtalker": "moee_bench.baselines.sadtalker:SadTalker",
    "echomimic": "moee_bench.baselines.echomimic:EchoMimic",
    "dreamtalk": "moee_bench.baselines.dreamtalk:DreamTalk",
    "moee-ref": "moee_bench.moee_ref.method:MoEERef",
    # MoEE variants (moee_ref/variants.py): the paper's Table 5 ablations and two named options
    "moee-ref:no-moe": "moee_bench.moee_ref.method:MoEERefNoMoE",
    "moee-ref:no-global-gate": "moee_bench.moee_ref.method:MoEERefNoGlobalGate",
    "moee-ref:no-masked-noisy": "moee_bench.moee_ref.method:MoEERefNoMaskedNoisy",
    "moee-ref:no-dhfev": "moee_bench.moee_ref.method:MoEERefNoDHFEV",
    "moee-ref:palette": "moee_bench.moee_ref.method:MoEERefPalette",
    "moee-ref:double-gate": "moee_bench.moee_ref.method:MoEERefDoubleGate",
}


def available() -> dict[str, str]:
    """Built-in methods plus those registered by installed packages."""
    out = dict(METHODS)
    for ep in entry_points(group="moee_bench.methods"):
        out.setdefault(ep.name, ep.value)
    return out


def method_class(name: str) -> type[Method]:
    table = available()
    if name not in table:
        raise KeyError(f"unknown method {name!r}; known: {sorted(table)}")
    mod, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def build_method(name: str, config: Mapping[str, Any] | None = None) -> Method:
    return method_class(name)(config)
