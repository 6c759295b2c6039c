"""First-class flags for the metric parameters people reach for, shared by ``score`` and ``run``.

Each flag is a named alias of one metric parameter (the key ``--param KEY=VALUE`` sets, and a suite's
``[params]`` table); ``--param`` stays for the long tail. Values are parsed by the metric's own
declaration (``Metric.PARAMS``: type, choices, checks), imported only once the command runs; a flag and a
``--param`` that give one key two different values are an error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.values import parse_kv


@dataclass(frozen=True)
class MetricFlag:
    """``--flag`` -> parameter ``key`` of metric ``metric``; ``switch``: a flag without a value (sets true)."""

    flag: str
    key: str
    metric: str
    help: str
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def parse(self, raw: Any) -> Any:
        """The typed value as the metric declares it; ``ValueError`` with the metric's reason otherwise."""
        from moee_bench.metrics.core.registry import metric_class

        return metric_class(self.metric).parameters()[self.key].parse(raw)


FLAGS: tuple[MetricFlag, ...] = (
    MetricFlag("--face-cropped", "face_cropped", "sync",
               "sync: the videos are already face crops, scored whole (no detection or tracking)", switch=True),
    MetricFlag("--fvd-variant", "fvd_variant", "fvd", "FVD protocol: styleganv (default) or videogpt (TATS I3D)"),
    MetricFlag("--akd-landmarks", "akd_landmarks", "akd",
               "AKD landmarks: dlib (default, offline) or fan (FOMM's face-alignment FAN + S3FD)"),
    MetricFlag("--emotion-classifier", "emotion_classifier", "emotion",
               "emotion classifier: fer2013 (default, embedded), hsemotion[:variant] or emotion_fan"),
)


def add_metric_flags(parser: argparse.ArgumentParser) -> None:
    """Add the first-class metric flags and ``--param KEY=VALUE`` to a command's parser."""
    g = parser.add_argument_group("metric options (first-class flags; --param KEY=VALUE for any other parameter, "
                                  "`moee-bench metrics` lists them)")
    for f in FLAGS:
        if f.switch:
            g.add_argument(f.flag, dest=f.dest, action="store_const", const="true",
                           help=f"{f.help}; same as --param {f.key}=true")
        else:
            g.add_argument(f.flag, dest=f.dest, metavar=f.key.rsplit("_", 1)[-1].upper(),
                           help=f"{f.help}; same as --param {f.key}=...")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="metric parameter, repeatable; unknown keys are refused")


def metric_params(args: argparse.Namespace) -> dict[str, Any]:
    """``--param`` items and the first-class flags of ``args`` as one params dict (values still as given).

    A ``--param`` without ``=``, a flag value its metric refuses, or a flag and a ``--param`` that give one
    key different values (compared as the metric parses them) is a :class:`BenchError`. Keys and values are
    then checked against the requested metrics by :func:`moee_bench.metrics.core.registry.check_params`."""
    params: dict[str, Any] = parse_kv(args.param, "--param")
    for f in FLAGS:
        given = getattr(args, f.dest, None)
        if given is None:
            continue
        try:
            value = f.parse(given)
        except ValueError as e:
            raise BenchError(f"{f.flag} {given}: {e}") from None
        if f.key in params:
            try:
                same = f.parse(params[f.key]) == value
            except ValueError:
                same = False
            if not same:
                raise BenchError(f"{f.flag} {given} conflicts with --param {f.key}={params[f.key]}; give it once")
        params[f.key] = given
    return params
