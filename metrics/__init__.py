"""Metrics: each module holds one metric with a torchmetrics-style mergeable state.

See :mod:`metrics.base` for the contract and :mod:`metrics.evaluate` for the single-decode
evaluator that feeds every requested metric from one pass over each video.
"""
