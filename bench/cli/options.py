"""argparse glue shared by the commands: ``type=`` functions built on :mod:`moee_bench.bench.core.values`
(a bad value exits with :data:`moee_bench.bench.core.exitcodes.USAGE`) and the weights options."""

from __future__ import annotations

import argparse

from moee_bench.bench.core.values import MAX_SIDE, finite_value, fps_value, int_value, size_value
from moee_bench.bench.core.weights import WeightsOptions, parse_trust


def _argtype(fn, name: str):
    def parse(s: str):
        try:
            return fn(s)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value ")) from None
    parse.__name__ = name
    return parse


# argparse ``type=`` functions
fps_arg = _argtype(lambda s: fps_value(s, "value"), "fps")
positive_int_arg = _argtype(lambda s: int_value(s, "value", 1), "positive integer")
nonneg_int_arg = _argtype(lambda s: int_value(s, "value", 0), "integer >= 0")
side_arg = _argtype(lambda s: int_value(s, "value", 1, MAX_SIDE), "size")
size_hxw_arg = _argtype(lambda s: size_value(s, "value"), "HxW size")
nonneg_float_arg = _argtype(lambda s: finite_value(s, "value", 0.0), "number >= 0")



def add_weights_arguments(p: argparse.ArgumentParser) -> None:
    """The weights options shared by ``run``, ``score``, ``train`` and ``weights``."""
    p.add_argument("--weights-dir", help="folder searched first for weight files (and where missing ones are fetched); "
                                         "default cache: $MOEE_BENCH_WEIGHTS or ~/.cache/moee-bench/weights")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never download: a missing weight file is an error saying where to put it "
                        "(also MOEE_BENCH_OFFLINE=1)")
    p.add_argument("--trust", action="append", default=[], metavar="NAME=SHA256",
                   help="trust this exact file for registry entry NAME (repeatable); recorded as 'pinned'")
    p.add_argument("--allow-unverified-weights", action="store_true",
                   help="use files whose digest matches neither the registry, the lock nor a --trust pin; each such "
                        "file is recorded as unverified, per metric (never for TorchScript files)")


def options_from_args(args: argparse.Namespace) -> WeightsOptions:
    """:class:`WeightsOptions` from the arguments of :func:`add_weights_arguments`."""
    return WeightsOptions(weights_dir=getattr(args, "weights_dir", None),
                          allow_unverified=bool(getattr(args, "allow_unverified_weights", False)),
                          trust=parse_trust(getattr(args, "trust", None)), offline=getattr(args, "offline", None))
