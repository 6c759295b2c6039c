"""moee-bench: evaluation and benchmark suite for emotional talking-head generation.

Layering (imports only go downwards in this list):

1. ``bench.errors``, ``bench.emotions``, ``bench.paths``, ``bench.media``,
   ``bench.manifest``, ``bench.weights``: the foundation, importing nothing else
   from the project.
2. ``baselines`` and ``moee_ref`` (methods) and ``metrics``: import only layer 1.
3. ``bench.store``: result store, imports layer 1 (and ``metrics.base`` types).
4. ``reports``: reads the store.
5. ``bench.runner``, ``bench.cli`` and ``bench.commands``: wire everything together.
"""

__version__ = "0.1.0"
