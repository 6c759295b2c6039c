"""Peak memory of a method's generation, labelled by what was measured (the suite runner and
``moee-bench throughput`` record the same figures).

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

import resource
from typing import Any, Iterable

import torch

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
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
