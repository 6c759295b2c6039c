"""Metrics: each module holds one metric with a torchmetrics-style mergeable state.

See :mod:`moee_bench.metrics.core.base` for the contract and :mod:`moee_bench.metrics.core.evaluate` for the single-decode
evaluator that feeds every requested metric from one pass over each video.
"""
