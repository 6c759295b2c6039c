"""How a run finds and trusts its weights, and the record of which metric used which file."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from moee_bench.bench.core.weights.verify import ResolvedWeights, resolve


@dataclass
class WeightsOptions:
    """Weights lookup options passed down from the CLI, and the files resolved with them.

    :meth:`for_metric` gives a view that records under a metric's name which files it used; the
    views share one record, so :meth:`provenance` and :meth:`by_metric` cover the whole run.
    """

    weights_dir: str | None = None
    allow_unverified: bool = False
    trust: dict[str, str] = field(default_factory=dict)
    offline: bool | None = None            # None: $MOEE_BENCH_OFFLINE
    progress: bool = True
    used: list[ResolvedWeights] = field(default_factory=list)
    metric_use: dict[str, list[str]] = field(default_factory=dict)
    scope: str | None = None

    def for_metric(self, metric: str) -> WeightsOptions:
        """The same options, recording what is resolved through them as used by ``metric``."""
        return replace(self, scope=metric)

    def resolve(self, name: str) -> ResolvedWeights:
        """Resolve (fetching on first use) and record one registered file."""
        r = resolve(name, self.weights_dir, allow_unverified=self.allow_unverified, pins=self.trust,
                    offline=self.offline, progress=self.progress)
        self.record(r)
        return r

    def record(self, r: ResolvedWeights) -> None:
        if not any(u.spec.name == r.spec.name and u.path == r.path for u in self.used):
            self.used.append(r)
        if self.scope is not None:
            names = self.metric_use.setdefault(self.scope, [])
            if r.spec.name not in names:
                names.append(r.spec.name)

    def provenance(self) -> list[dict[str, Any]]:
        """Every file used: name, path, full digest, trust, and the metrics that used it."""
        return [{**r.provenance(), "metrics": sorted(m for m, ns in self.metric_use.items() if r.spec.name in ns)}
                for r in self.used]

    def by_metric(self) -> dict[str, list[dict[str, Any]]]:
        """Metric -> the provenance of each file it used."""
        prov = {r.spec.name: r.provenance() for r in self.used}
        return {m: [prov[n] for n in names if n in prov] for m, names in sorted(self.metric_use.items())}

    def unverified_metrics(self) -> list[str]:
        """The metrics computed with at least one unverified file."""
        bad = {r.spec.name for r in self.used if not r.verified}
        return sorted(m for m, names in self.metric_use.items() if bad & set(names))
