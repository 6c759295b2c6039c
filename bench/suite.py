"""Suite files (TOML, read with tomllib): which dataset, split, methods, metrics and seeds to run.

``dataset`` is a manifest (or ``"sample"``) and ``split`` the name of a split recorded in it by
``moee-bench data split`` (no ``split``: every clip, on purpose). Split files are not read: the
manifest is the one place that says which clip is in which split.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moee_bench.bench.core.errors import BenchError

BUILTIN_SUITE = Path(__file__).with_name("suites") / "sample.toml"


@dataclass
class MethodSpec:
    name: str
    label: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    dataset: str
    split: str | None
    metrics: list[str]
    methods: list[MethodSpec]
    seed: int = 0
    fps: float = 25.0
    size: tuple[int, int] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()


def load_suite(path: str | Path | None = None) -> Suite:
    """Read a suite file (the built-in sample suite when ``path`` is None)."""
    p = Path(path) if path else BUILTIN_SUITE
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise BenchError(f"suite file {p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"suite file {p} is not valid TOML: {e}") from None
    for k in ("name", "dataset", "metrics", "methods"):
        if k not in raw:
            raise BenchError(f"suite file {p}: missing key {k!r}")
    if "split_file" in raw:
        raise BenchError(f"suite file {p}: `split_file` is no longer read; run `moee-bench data split MANIFEST --out "
                         "SPLIT_MANIFEST` and set `dataset` to the manifest it writes (the split lives in the manifest)")
    methods = []
    for m in raw["methods"]:
        cfg = {k: v for k, v in m.items() if k not in ("name", "label")}
        methods.append(MethodSpec(m["name"], m.get("label", m["name"]), cfg))
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise BenchError(f"suite file {p}: method labels must be unique, got {labels}")
    dataset = raw["dataset"]
    if dataset != "sample" and not Path(dataset).is_absolute():
        dataset = str((p.parent / dataset).resolve())
    size = tuple(raw["size"]) if raw.get("size") else None
    return Suite(raw["name"], dataset, raw.get("split"), list(raw["metrics"]), methods, int(raw.get("seed", 0)),
                 float(raw.get("fps", 25.0)), size, dict(raw.get("params", {})), p, raw)
