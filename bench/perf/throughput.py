"""Standalone generation throughput of a method: model load timed apart, warm-up, repeats, frames/s,
seconds per clip, and peak memory labelled by what was measured.

Memory, each labelled, None ("not measured") when it cannot be measured, never 0:

* ``peak_rss_self_bytes``: this process's peak resident set (``getrusage(RUSAGE_SELF)``); for in-process
  methods it includes whatever the process did before (scoring, other methods);
* ``child_peak_rss_bytes``: for subprocess baselines, the largest peak RSS of the method's processes
  (``os.wait4`` per clip, :mod:`moee_bench.baselines.process`);
* ``cuda_allocator_peak_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` of this process since the
  method started (in-process methods);
* ``child_gpu_peak_bytes``: on a GPU machine, the device memory held by a subprocess baseline's process
  tree, sampled with ``nvidia-smi``.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from moee_bench.baselines.registry import build_method
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.manifest import Manifest
from moee_bench.bench.core.paths import safe_name
from moee_bench.bench.core.splits import select_split, split_record
from moee_bench.bench.suite.resources import NOT_MEASURED, child_usage, memory_report, reset_device_peak
from moee_bench.bench.suite.runner import build_request, generate_clips


def measure(method_name: str, manifest: Manifest, clip_ids: list[str], *, split: str | None = "test",
            config: dict | None = None, repeats: int = 3, device: str = "cpu", workdir: str | None = None) -> dict[str, Any]:
    """Load the model (timed apart when the method has a load step), generate each clip once to warm up, then
    ``repeats`` times; report the median per-clip time and labelled peak memory.

    Clips come from ``split`` of the manifest (``clip_ids``, or its first two); each request is built
    through the suite's generation loop (:func:`moee_bench.bench.suite.runner.generate_clips`).
    """

    method = build_method(method_name, config)
    pool = select_split(manifest, split)
    if clip_ids:
        by_id = {c.clip_id: c for c in pool}
        unknown = [c for c in clip_ids if c not in by_id]
        if unknown:
            raise BenchError(f"clips {unknown} are not in split {split!r} of manifest {manifest.path or manifest.dataset}")
        clips = [by_id[c] for c in clip_ids]
    else:
        clips = pool[:2]
    record = split_record(manifest, split, pool)
    reset_device_peak(device)
    t = time.perf_counter()
    has_load = method.load()
    load_s = time.perf_counter() - t if has_load else None
    times, frames, norms = [], 0, []
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        def timed(k: str) -> list[tuple[float, int]]:
            """Every clip once through the suite's generation loop (its request: the reference-image policy, the
            driving audio; nothing reused), as (wall seconds, frames)."""
            def plan(c):
                return build_request(manifest, c, Path(d) / f"{k}_{safe_name(c.clip_id)}.mp4", Path(d), seed=0,
                                     fps=25.0, size=None), None

            out = []
            for step in generate_clips(method, clips, plan, fail_fast=True, loaded=True):
                if step.result is None:
                    raise BenchError(f"{method_name} cannot generate clip {step.clip.clip_id}: {step.reason}")
                norms.append(step.result.normalisation)
                out.append((step.wall_seconds, step.result.n_frames))
            return out

        first = [s for s, _ in timed("warm")]
        for k in range(repeats):
            for s, n in timed(str(k)):
                times.append(s)
                frames += n
    mem = memory_report(device, child_usage(norms))
    dev = (__import__("torch").cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({platform.machine()})")
    return {"method": method_name, "device": dev, "clips": len(clips), "clip_ids": [c.clip_id for c in clips],
            "split": record["name"], "split_hash": record["hash"], "repeats": repeats,
            "seconds_per_clip_median": statistics.median(times), "frames_per_s": frames / sum(times),
            "batch": f"{method.batch_size()} clips a batch (a batch's wall time shared evenly by its clips)",
            "model_load_s": load_s,
            "model_load": "Method.load(), timed apart" if load_s is not None else
                          f"{NOT_MEASURED}: no separate load step (subprocess baselines load inside every clip)",
            "first_clip_s": statistics.median(first),
            **mem}
