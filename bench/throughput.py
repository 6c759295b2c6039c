"""Standalone generation throughput of a method: model load timed apart, warm-up, repeats, frames/s,
seconds per clip, and peak memory labelled by what was measured.

Memory, each labelled, None ("not measured") when it cannot be measured, never 0:

* ``peak_rss_self_bytes``: this process's peak resident set (``getrusage(RUSAGE_SELF)``); for in-process
  methods it includes whatever the process did before (scoring, other methods);
* ``child_peak_rss_bytes``: for subprocess baselines, the largest peak RSS of the method's processes
  (``os.wait4`` per clip, :mod:`baselines.process`);
* ``cuda_allocator_peak_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` of this process since the
  method started (in-process methods);
* ``child_gpu_peak_bytes``: on a GPU machine, the device memory held by a subprocess baseline's process
  tree, sampled with ``nvidia-smi``.
"""

from __future__ import annotations

import platform
import resource
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

NOT_MEASURED = "not measured"


def child_usage(normalisations: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Max over clips of the subprocess measurements that adapters record (``normalisation["process"]``)."""
    out: dict[str, Any] = {"child_peak_rss_bytes": None, "child_gpu_peak_bytes": None}
    for rec in normalisations:
        proc = (rec or {}).get("process") or {}
        for k in out:
            v = proc.get(k)
            if v is not None:
                out[k] = max(out[k] or 0, int(v))
        for k in ("child_peak_rss", "child_gpu_peak"):
            if proc.get(k):
                out[k] = proc[k]
    return out


def memory_report(device: str, child: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every peak-memory figure this process can give, each with its label; ``peak_mem_bytes`` is the headline
    (the subprocess's peak when the method ran in one, else the CUDA allocator's on CUDA, else this process's RSS)
    and ``peak_mem_kind`` says which it is."""
    child = child or {}
    out: dict[str, Any] = {
        "peak_rss_self_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_rss_self": "peak RSS of this process (resource.RUSAGE_SELF), including its work before this method",
        "child_peak_rss_bytes": child.get("child_peak_rss_bytes"),
        "child_peak_rss": child.get("child_peak_rss") or f"{NOT_MEASURED} (the method ran in this process)",
        "child_gpu_peak_bytes": child.get("child_gpu_peak_bytes"),
        "child_gpu_peak": child.get("child_gpu_peak") or f"{NOT_MEASURED} (the method ran in this process)",
        "cuda_allocator_peak_bytes": None,
        "cuda_allocator_peak": f"{NOT_MEASURED} (device {device})",
    }
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            out["cuda_allocator_peak_bytes"] = int(torch.cuda.max_memory_allocated())
            out["cuda_allocator_peak"] = "torch.cuda.max_memory_allocated of this process since the method started"
    if out["child_peak_rss_bytes"] is not None:
        head, kind = out["child_peak_rss_bytes"], "subprocess peak RSS (os.wait4)"
        if out["child_gpu_peak_bytes"] is not None:
            kind += f"; GPU: {out['child_gpu_peak_bytes']} bytes ({out['child_gpu_peak']})"
    elif out["cuda_allocator_peak_bytes"] is not None:
        head, kind = out["cuda_allocator_peak_bytes"], "CUDA allocator peak (torch.cuda.max_memory_allocated)"
    else:
        head, kind = out["peak_rss_self_bytes"], "process peak RSS (CPU; includes the process's earlier work)"
    out["peak_mem_bytes"], out["peak_mem_kind"] = head, kind
    return out


def reset_device_peak(device: str) -> None:
    """Start a fresh CUDA allocator peak for the next method (nothing on CPU)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def measure(method_name: str, manifest: Manifest, clip_ids: list[str], *, split: str | None = "test",
            config: dict | None = None, repeats: int = 3, device: str = "cpu", workdir: str | None = None) -> dict[str, Any]:
    """Load the model (timed apart when the method has a load step), generate each clip once to warm up, then
    ``repeats`` times; report the median per-clip time and labelled peak memory.

    Clips come from ``split`` of the manifest (``clip_ids``, or its first two); each request is built
    like the runner's (:func:`bench.runner.build_request`: the reference-image policy, the driving audio).
    """
    from moee_bench.bench.runner import build_request

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
        def one(c, k):
            # the suite's own request (a clip without a reference image gets its first GT frame, as in `run`)
            req = build_request(manifest, c, Path(d) / f"{k}_{safe_name(c.clip_id)}.mp4", Path(d), seed=0, fps=25.0,
                                size=None)
            t = time.perf_counter()
            r = method.generate(req)
            norms.append(r.normalisation)
            return time.perf_counter() - t, r.n_frames

        first = [one(c, "warm")[0] for c in clips]
        for k in range(repeats):
            for c in clips:
                s, n = one(c, k)
                times.append(s)
                frames += n
    mem = memory_report(device, child_usage(norms))
    dev = (__import__("torch").cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({platform.machine()})")
    return {"method": method_name, "device": dev, "clips": len(clips), "clip_ids": [c.clip_id for c in clips],
            "split": record["name"], "split_hash": record["hash"], "repeats": repeats,
            "seconds_per_clip_median": statistics.median(times), "frames_per_s": frames / sum(times),
            "model_load_s": load_s,
            "model_load": "Method.load(), timed apart" if load_s is not None else
                          f"{NOT_MEASURED}: no separate load step (subprocess baselines load inside every clip)",
            "first_clip_s": statistics.median(first),
            **mem}
