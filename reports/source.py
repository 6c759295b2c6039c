"""What the reports read from a result store: the declared interface that ``ResultStore`` (``bench/suite``, a higher
floor) implements, so that ``reports`` depends on this Protocol and never on the store's module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:                 # annotations only: pandas costs 0.2 s to import and every CLI command imports this
    import pandas as pd


@runtime_checkable
class ResultSource(Protocol):
    """The read methods the reports call, and the feature cache the set-level bootstrap reads (digest-checked)."""

    features: Any       # metrics.core.base.FeatureCache: get(key) -> features or None, rejected: key -> reason

    def runs(self) -> list[dict[str, Any]]:
        """Every run: ``run_id``, ``created``, ``suite_hash``, ``dataset``, ``split``, ``meta``, oldest first."""

    def clip_table(self, run_id: str | None = None) -> pd.DataFrame:
        """Per-clip values: one row per (run, method, clip), one column per key."""

    def status_table(self, run_id: str | None = None) -> pd.DataFrame:
        """Per-clip, per-metric status and message."""

    def aggregates(self, run_id: str | None = None) -> pd.DataFrame:
        """Aggregate values: ``run_id``, ``method``, ``key``, ``value``, ``extra``."""

    def throughput(self, run_id: str | None = None) -> pd.DataFrame:
        """Generation speed and memory per (run, method)."""

    def generated_video(self, method: str, clip_id: str) -> str | None:
        """The path of a method's generated video of a clip, if one was recorded."""

    def feature_keys(self, run_id: str, method: str, metric: str) -> dict[str, dict[str, str]]:
        """clip id -> part -> feature cache key of ``metric`` in a run."""

    def clip_feature_parts(self, run_id: str, method: str, metric: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """clip id -> part -> cached features of ``metric``, for the clips whose every part is cached."""
