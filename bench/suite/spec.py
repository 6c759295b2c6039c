"""Suite files (TOML, read with tomllib): which dataset, split, methods, metrics and seeds to run.

``dataset`` is a manifest (or ``"sample"``) and ``split`` the name of a split recorded in it by
``moee-bench data split`` (no ``split``: every clip, on purpose). Split files are not read: the
manifest is the one place that says which clip is in which split.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moee_bench.baselines.registry import method_class
from moee_bench.bench.core.errors import BenchError, ManifestError
from moee_bench.bench.core.manifest import Manifest, load_manifest
from moee_bench.bench.core.splits import select_split
from moee_bench.bench.core.values import fps_value, int_value, size_value
from moee_bench.bench.suite.sample import SPLITS
from moee_bench.metrics.core.registry import check_params, metric_classes

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

    def override_params(self, params: dict[str, Any]) -> None:
        """Command-line metric parameters over the file's ``[params]``; they enter the suite hash (and so the run
        id), since they change the scores. A key the file sets otherwise is noted on stderr."""
        if not params:
            return
        for k, v in params.items():
            if k in self.params and str(self.params[k]) != str(v):
                print(f"note: {k}={v} from the command line overrides the suite file's {k}={self.params[k]}", file=sys.stderr)
        self.params.update(params)
        self.raw = {**self.raw, "params": dict(self.params)}

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()


KEYS = ("name", "dataset", "split", "metrics", "methods", "seed", "fps", "size", "params")


def _bad(p: Path, msg: str) -> BenchError:
    return BenchError(f"suite file {p}: {msg}")


def load_suite(path: str | Path | None = None) -> Suite:
    """Read a suite file (the built-in sample suite when ``path`` is None); every key's type and
    range is checked here, with one-line errors (see :func:`validate_suite` for the rest)."""
    p = Path(path) if path else BUILTIN_SUITE
    if p.exists() and not p.is_file() and not p.is_dir():
        raise BenchError(f"suite file {p} is not a regular file")
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise BenchError(f"suite file {p} does not exist") from None
    except IsADirectoryError:
        raise BenchError(f"suite file {p} is a folder") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"suite file {p} is not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"suite file {p} cannot be read: {e}") from None
    for k in ("name", "dataset", "metrics", "methods"):
        if k not in raw:
            raise _bad(p, f"missing key {k!r}")
    if "split_file" in raw:
        raise _bad(p, "`split_file` is no longer read; run `moee-bench data split MANIFEST --out SPLIT_MANIFEST` and set "
                      "`dataset` to the manifest it writes (the split lives in the manifest)")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise _bad(p, f"unknown keys {unknown}; known: {', '.join(KEYS)}")
    for k in ("name", "dataset"):
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise _bad(p, f"{k} must be a non-empty string, got {raw[k]!r}")
    if raw.get("split") is not None and (not isinstance(raw["split"], str) or not raw["split"]):
        raise _bad(p, f"split must be a non-empty string, got {raw['split']!r}")
    if not isinstance(raw["metrics"], list) or not raw["metrics"] or not all(isinstance(m, str) for m in raw["metrics"]):
        raise _bad(p, f"metrics must be a non-empty list of metric names, got {raw['metrics']!r}")
    if len(set(raw["metrics"])) != len(raw["metrics"]):
        raise _bad(p, f"metrics lists a metric twice: {raw['metrics']}")
    if not isinstance(raw["methods"], list) or not raw["methods"]:
        raise _bad(p, "methods must be a non-empty array of [[methods]] tables")
    methods = []
    for m in raw["methods"]:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise _bad(p, f"every [[methods]] table needs a name, got {m!r}")
        if not isinstance(m.get("label", m["name"]), str) or not m.get("label", m["name"]):
            raise _bad(p, f"method label must be a non-empty string, got {m.get('label')!r}")
        cfg = {k: v for k, v in m.items() if k not in ("name", "label")}
        if m["name"] == "precomputed":
            if not isinstance(cfg.get("folder"), str) or not cfg["folder"].strip():
                raise _bad(p, f"method {m.get('label', m['name'])!r}: `precomputed` needs `folder = \"...\"` (the folder of "
                              f"its videos), got {cfg.get('folder')!r}")
            # a relative folder is relative to the suite file, as `dataset` is (not to the working directory)
            if not Path(cfg["folder"]).expanduser().is_absolute():
                cfg["folder"] = str((p.parent / Path(cfg["folder"]).expanduser()).resolve())
        methods.append(MethodSpec(m["name"], m.get("label", m["name"]), cfg))
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise _bad(p, f"method labels must be unique, got {labels}")
    if not isinstance(raw.get("params", {}), dict):
        raise _bad(p, "[params] must be a table of KEY = VALUE")
    try:
        fps = fps_value(raw.get("fps", 25.0), "fps")
        size = size_value(raw["size"], "size") if raw.get("size") is not None else None
        if size is not None and (size[0] % 2 or size[1] % 2):
            raise ValueError(f"size must be even (H.264 yuv420p videos are written at it), got {raw['size']!r}")
        seed = int_value(raw.get("seed", 0), "seed", 0)
    except ValueError as e:
        raise _bad(p, str(e)) from None
    dataset = raw["dataset"]
    if dataset != "sample" and not Path(dataset).is_absolute():
        dataset = str((p.parent / dataset).resolve())
    return Suite(raw["name"], dataset, raw.get("split"), list(raw["metrics"]), methods, seed,
                 fps, size, dict(raw.get("params", {})), p, raw)


def validate_suite(suite: Suite) -> Manifest | None:
    """Check what :func:`load_suite` cannot check alone, before anything is created: the methods and
    metrics exist, the params are known to the metrics and well typed, the dataset and split load
    and the split has clips. Raises one :class:`BenchError` naming the problem. Returns the manifest it
    loaded, for the run to use (None for the built-in sample, which is built later)."""
    where = f"suite {suite.source or suite.name}"
    for m in suite.methods:
        try:
            method_class(m.name)
        except KeyError as e:
            raise BenchError(f"{where}: method {m.label!r}: {e.args[0]}") from None
    for m in suite.methods:
        folder = m.config.get("folder") if m.name == "precomputed" else None
        if folder is not None and not Path(folder).is_dir():
            raise BenchError(f"{where}: method {m.label!r}: folder {folder} does not exist or is not a folder")
    metric_classes(suite.metrics)
    check_params(suite.metrics, suite.params, source=f"{where}: [params]")
    if suite.dataset == "sample":
        if suite.split is not None and suite.split not in set(SPLITS.values()):
            raise BenchError(f"{where}: split {suite.split!r} is not a split of the sample dataset "
                             f"({', '.join(sorted(set(SPLITS.values())))})")
        return None
    try:
        manifest = load_manifest(suite.dataset)
    except (ManifestError, OSError, ValueError) as e:
        raise BenchError(f"{where}: dataset {suite.dataset}: {e}") from None
    try:
        select_split(manifest, suite.split)
    except BenchError as e:
        raise BenchError(f"{where}: {e}") from None
    return manifest
