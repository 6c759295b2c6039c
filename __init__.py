"""moee-bench: evaluation and benchmark suite for emotional, audio-driven talking-head generation.

Everything installs under this one namespace (``moee_bench.bench``, ``moee_bench.metrics``, ...),
so the project's folders never collide with other distributions' top-level packages.

Layers, lowest first. A module may import its own layer and the layers below it, never above;
``tests/test_layers.py`` enforces this on the import graph, on module paths named in strings
and on subprocess calls of the CLI.

0. ``moee_bench.bench.core``: errors, emotion taxonomy, paths and atomic writes, media I/O
   (the one ingest resize), manifests and splits, the weights registry, ffmpeg, face detection.
1. ``moee_bench.metrics`` (feature extraction, mergeable states) and ``moee_bench.baselines``
   (the method protocol and one adapter per method). Neither imports the other.
2. ``moee_bench.moee_ref``: the MoEE reference model; implements ``baselines.base.Method``.
3. ``moee_bench.reports``: leaderboard, HTML, plots, exports, bootstrap (reads metric keys and
   states; receives the store as an argument).
4. ``moee_bench.bench.suite``: result store, staged runner, suite files, sample data, importers.
5. ``moee_bench.api``: :func:`score`, :func:`run`, :func:`compare`, the functions the CLI commands call
   (exposed here lazily, so ``import moee_bench`` imports neither torch nor the metrics).
6. The roof: ``moee_bench.bench.cli`` (the ``moee-bench`` commands, options, exit codes, the one
   error handler) and ``moee_bench.bench.perf`` (speed, memory and drift benchmarks, which time the
   commands as users run them).
"""

__version__ = "0.2.0"

from typing import Any

#: names of :mod:`moee_bench.api` reachable as ``moee_bench.<name>``, imported on first use (PEP 562)
LAZY_EXPORTS = ("score", "run", "compare", "ScoreResult", "CompareResult")
__all__ = ["__version__", *LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in LAZY_EXPORTS:
        from moee_bench import api       # the one upward reach of this module (tests/test_layers.py allows it)

        return getattr(api, name)
    raise AttributeError(f"module 'moee_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY_EXPORTS})
