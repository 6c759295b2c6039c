"""Run a baseline's process and measure what it used: the child's peak RSS from the kernel
(``os.wait4``, the per-child form of ``getrusage(RUSAGE_CHILDREN)``: the maximum over the child and the
descendants it waited for) and, where ``nvidia-smi`` exists, the GPU memory its process tree held,
sampled while it runs. A quantity that could not be measured is None, never 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Sequence
# imported inside the functions that use them (seconds to import, or optional): psutil

GPU_SAMPLE_S = 1.0


def _tree(pid: int) -> set[int]:
    import psutil

    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def _gpu_used_by(pids: set[int], smi: str) -> int | None:
    """Bytes of GPU memory held by ``pids`` on every device, from ``nvidia-smi``; None if it cannot say."""
    try:
        out = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    total = 0
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
            try:
                total += int(float(parts[1])) * 1024 * 1024      # MiB
            except ValueError:
                continue
    return total


def run_measured(argv: Sequence[str], *, cwd: Path, stdout: IO[bytes], timeout: float,
                 gpu: bool = True, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run ``argv`` (an argument list, never a shell) to completion or ``timeout`` (then killed: exit code -9).

    Returns the exit code and ``{"child_peak_rss_bytes", "child_gpu_peak_bytes", "child_gpu_peak",
    "seconds"}``. ``env`` is the child's whole environment (None: this process's)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(list(argv), cwd=str(cwd), stdout=stdout, stderr=subprocess.STDOUT, env=env)
    smi = shutil.which("nvidia-smi") if gpu else None
    gpu_peak: int | None = None
    next_gpu = t0
    delay = 0.01
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now - t0 > timeout and not killed:
            proc.kill()
            killed = True
        if smi and now >= next_gpu:
            used = _gpu_used_by(_tree(proc.pid), smi)
            if used is not None:
                gpu_peak = max(gpu_peak or 0, used)
            next_gpu = now + GPU_SAMPLE_S
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    proc.returncode = -9 if killed else os.waitstatus_to_exitcode(status)
    stats: dict[str, Any] = {
        "child_peak_rss_bytes": int(usage.ru_maxrss) * 1024 if usage.ru_maxrss else None,
        "child_peak_rss": "peak RSS of the method's process and its waited-for children (os.wait4 ru_maxrss)",
        "child_gpu_peak_bytes": gpu_peak,
        "child_gpu_peak": (f"GPU memory held by the method's process tree, nvidia-smi sampled every {GPU_SAMPLE_S:g} s "
                           "(a sampled peak)") if smi else "not measured (no nvidia-smi on this machine)",
        "seconds": time.monotonic() - t0,
    }
    return proc.returncode, stats
