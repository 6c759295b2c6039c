"""moee-bench: evaluation and benchmark suite for emotional, audio-driven talking-head generation.

Everything installs under this one namespace (``moee_bench.bench``, ``moee_bench.metrics``, ...),
so the project's folders never collide with other distributions' top-level packages.

Layers, lowest first. A module may import its own layer and the layers below it, never above;
``tests/test_layers.py`` enforces this on the import graph.

0. ``moee_bench.bench.core``: errors, emotion taxonomy, paths and atomic writes, media I/O
   (the one ingest resize), manifests and splits, the weights registry, ffmpeg, face detection.
1. ``moee_bench.metrics`` (feature extraction, mergeable states) and ``moee_bench.baselines``
   (the method protocol and one adapter per method). Neither imports the other.
2. ``moee_bench.moee_ref``: the MoEE reference model; implements ``baselines.base.Method``.
3. ``moee_bench.reports``: leaderboard, HTML, plots, exports, bootstrap (reads metric keys and
   states; receives the store as an argument).
4. ``moee_bench.bench`` (everything outside ``core``): result store, runner, suites, sample
   data, importers and the ``moee-bench`` command line, which wire the layers together.
"""

__version__ = "0.2.0"
