"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import resource
import time
from typing import Any, Callable

from moee_bench.bench.core.paths import write_text_atomic


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs after one warm-up, and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, rows: dict[str, Any], json_path: str | None) -> None:
    print(f"== {name}")
    for k, v in rows.items():
        if isinstance(v, dict):                 # raw measurements: in the JSON only
            print(f"  {k:<42} {'(--json)' if json_path else '(not printed; --json writes it)'}")
        else:
            print(f"  {k:<42} {v:.4g}" if isinstance(v, float) else f"  {k:<42} {v}")
    if json_path:
        write_text_atomic(json_path, json.dumps(rows, indent=1, default=str), "--json")
