"""Standalone generation throughput of a method: warm-up, repeats, frames/s, seconds per clip, peak memory."""

from __future__ import annotations

import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from moee_bench.baselines.registry import build_method
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.manifest import Manifest
from moee_bench.bench.core.paths import safe_name


def measure(method_name: str, manifest: Manifest, clip_ids: list[str], *, config: dict | None = None,
            repeats: int = 3, device: str = "cpu", workdir: str | None = None) -> dict[str, Any]:
    """Generate each clip once to warm up, then ``repeats`` times; report the median per-clip time."""
    from moee_bench.bench.runner import build_request

    method = build_method(method_name, config)
    unknown = sorted(set(clip_ids) - {c.clip_id for c in manifest.clips})
    if unknown:
        raise BenchError(f"clip ids not in the manifest: {unknown}")
    clips = [c for c in manifest.clips if c.clip_id in set(clip_ids)] if clip_ids else manifest.clips[:2]
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    times, frames = [], 0
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        def one(c, k):
            # the suite's own request (a clip without a reference image gets its first GT frame, as in `run`)
            req = build_request(manifest, c, Path(d) / f"{k}_{safe_name(c.clip_id)}.mp4", Path(d), seed=0, fps=25.0,
                                size=None)
            t = time.perf_counter()
            r = method.generate(req)
            return time.perf_counter() - t, r.n_frames

        for c in clips:
            one(c, "warm")
        for k in range(repeats):
            for c in clips:
                s, n = one(c, k)
                times.append(s)
                frames += n
    if cuda:
        import torch

        peak, dev = torch.cuda.max_memory_allocated(), torch.cuda.get_device_name(0)
    else:
        peak, dev = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, f"cpu ({platform.machine()})"
    return {"method": method_name, "device": dev, "clips": len(clips), "repeats": repeats,
            "seconds_per_clip_median": statistics.median(times), "frames_per_s": frames / sum(times),
            "peak_mem_bytes": peak, "peak_mem_kind": "CUDA max allocated" if cuda else "process peak RSS"}
