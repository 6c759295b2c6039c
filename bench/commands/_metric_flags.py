"""First-class flags for the metric parameters people reach for, shared by ``score`` and ``run``.

Each flag is a named alias of one metric parameter (the key ``--param KEY=VALUE`` sets, and a suite's
``[params]`` table); ``--param`` stays for the long tail. A key given both ways with different values
is an error. Allowed values are read from the metric modules (imported only once the command runs).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Any

from moee_bench.bench.core.errors import BenchError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class MetricFlag:
    """``--flag`` -> metric parameter ``key`` of metric ``metric``; ``choices`` = ``module:NAME`` of the allowed values."""

    flag: str
    key: str
    metric: str
    help: str
    choices: str | None = None       # None: a boolean switch

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def allowed(self) -> tuple[str, ...]:
        """The values the metric accepts (for a classifier ``name:variant`` only the name is checked)."""
        if self.choices is None:
            return ("true", "false")
        mod, _, name = self.choices.partition(":")
        return tuple(sorted(getattr(importlib.import_module(mod), name)))

    def normalise(self, value: Any) -> str:
        """The value as the metric reads it; :class:`BenchError` for a value the metric does not accept."""
        text = str(value).strip()
        if self.choices is None:
            low = text.lower()
            if low in TRUE_WORDS or low in FALSE_WORDS:
                return "true" if low in TRUE_WORDS else "false"
            raise BenchError(f"{self.key}={value!r}: expected one of {TRUE_WORDS + FALSE_WORDS}")
        allowed = self.allowed()
        if text.partition(":")[0] not in allowed:
            raise BenchError(f"{self.flag} / {self.key}={text!r}: the {self.metric} metric accepts {', '.join(allowed)}")
        return text


FLAGS: tuple[MetricFlag, ...] = (
    MetricFlag("--face-cropped", "face_cropped", "sync",
               "videos are already face crops: SyncNet scores the whole frame resized to 224 (no face tracking)"),
    MetricFlag("--fvd-variant", "fvd_variant", "fvd", "FVD protocol: styleganv (default) or videogpt (TATS I3D)",
               "moee_bench.metrics.fvd:VARIANTS"),
    MetricFlag("--akd-landmarks", "akd_landmarks", "akd",
               "AKD landmarks: dlib (default, offline) or fan (FOMM's face-alignment FAN + S3FD)",
               "moee_bench.metrics.akd:LANDMARKS"),
    MetricFlag("--emotion-classifier", "emotion_classifier", "emotion",
               "emotion classifier: fer2013 (default, embedded), hsemotion[:variant] or emotion_fan",
               "moee_bench.metrics.emotion_classifiers:CLASSIFIERS"),
)
BY_KEY = {f.key: f for f in FLAGS}


def add_metric_flags(parser: argparse.ArgumentParser) -> None:
    """Add the first-class metric flags and ``--param KEY=VALUE`` to a command's parser."""
    g = parser.add_argument_group("metric options (first-class flags for metric parameters; --param for the rest)")
    for f in FLAGS:
        if f.choices is None:
            g.add_argument(f.flag, dest=f.dest, action="store_const", const="true", help=f.help)
        else:
            g.add_argument(f.flag, dest=f.dest, metavar=f.key.split("_")[-1].upper(), help=f.help)
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any metric parameter (see each metric's docstring), repeatable")


def metric_params(args: argparse.Namespace, metrics: list[str] | None = None) -> dict[str, str]:
    """Metric parameters from ``--param`` and the first-class flags of ``args``.

    A ``--param`` without ``=``, a repeated ``--param`` key with two values, a flag and a ``--param``
    giving one key two values, or a value the metric does not accept is a :class:`BenchError`. When
    ``metrics`` is given, a flag for a metric not among them is warned about on stderr (it changes nothing)."""
    params: dict[str, str] = {}
    for kv in args.param:
        key, eq, value = kv.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BenchError(f"--param {kv!r}: expected KEY=VALUE")
        if key in BY_KEY:
            value = BY_KEY[key].normalise(value)
        if key in params and params[key] != value:
            raise BenchError(f"--param {key} given twice with different values ({params[key]!r}, {value!r})")
        params[key] = value
    for f in FLAGS:
        given = getattr(args, f.dest, None)
        if given is None:
            continue
        value = f.normalise(given)
        if f.key in params and params[f.key] != value:
            raise BenchError(f"{f.flag} {value} conflicts with --param {f.key}={params[f.key]}; give it once")
        params[f.key] = value
        if metrics is not None and f.metric not in metrics:
            print(f"warning: {f.flag} sets a parameter of the {f.metric} metric, which is not among the metrics "
                  f"({', '.join(metrics)}); it changes nothing", file=sys.stderr)
    return params
