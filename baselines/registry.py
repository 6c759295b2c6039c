"""Method names -> adapter classes, imported lazily. Methods of higher floors (the MoEE reference and its
variants, ``moee_bench.moee_ref``) and of other packages register through the ``moee_bench.methods``
entry-point group in their ``pyproject.toml`` (``name = "pkg.module:Class"``), so this floor never names them."""

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
}


def available() -> dict[str, str]:
    """Built-in methods plus those registered by installed packages."""
    out = dict(METHODS)
    for ep in entry_points(group="moee_bench.methods"):
        out.setdefault(ep.name, ep.value)
    return out


def method_class(name: str) -> type[Method]:
    """The adapter class registered under ``name``; a :class:`KeyError` naming the known methods otherwise."""
    table = available()
    if name not in table:
        raise KeyError(f"unknown method {name!r}; known: {sorted(table)}")
    mod, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def build_method(name: str, config: Mapping[str, Any] | None = None) -> Method:
    """An instance of the method ``name`` with its method config."""
    return method_class(name)(config)
