"""``moee-bench bench memory``: peak RSS of ``score`` over N and 10 N clips (memory must not grow with the clips).

``--clips`` distinct random pred/GT pairs (``--frames`` frames, 128x128) are written once and repeated under
new names up to 10x as many clips; ``moee-bench score`` (psnr, ssim, lpips, fid; random-initialised
backbones) runs in a fresh process for each count and reports its own peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from moee_bench.bench.perf.common import report
# imported inside the functions that use them (seconds to import, or optional): our modules that import such packages: visual

_CHILD = ("import resource, sys\n"
          "from moee_bench.bench.cli.app import main\n"
          "rc = main(sys.argv[1:])\n"
          "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
          "sys.exit(rc)\n")


def repeat_clips(src: Path, dst: Path, n: int) -> Path:
    """``dst/pred`` and ``dst/gt`` holding ``n`` clips: the clips of ``src`` repeated under new names (hard links)."""
    names = sorted(p.name for p in (src / "pred").glob("*.mp4"))
    for side in ("pred", "gt"):
        (dst / side).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            target = dst / side / f"r{i:04d}.mp4"
            try:
                os.link(src / side / names[i % len(names)], target)
            except OSError:
                shutil.copyfile(src / side / names[i % len(names)], target)
    return dst


def score_peak_rss_mb(d: Path, wdir: Path, metrics: str, precision: str = "fp32") -> float:
    """Peak RSS (MB) of one ``moee-bench score`` process on ``d/pred`` vs ``d/gt``."""
    args = ["score", "--pred", str(d / "pred"), "--gt", str(d / "gt"), "--metrics", metrics, "--json",
            str(d / "out.json"), "--weights-dir", str(wdir), "--allow-unverified-weights", "--precision", precision,
            "--no-cache"]
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=True)
    m = re.search(r"PEAK_RSS_KB (\d+)", out.stdout)
    if m is None:
        raise RuntimeError(f"score printed no peak RSS: {out.stdout[-400:]} {out.stderr[-400:]}")
    return int(m.group(1)) / 1024


def run(args) -> int:
    from moee_bench.bench.perf.visual import make_clips, random_weights

    metrics = "psnr,ssim,lpips,fid"
    precision = getattr(args, "precision", None) or "fp32"
    n = max(1, args.clips)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        (d / "w").mkdir()
        random_weights(d / "w")
        make_clips(d / "base", n, args.frames)
        rss: dict[int, float] = {}
        for k in (n, 10 * n):
            rss[k] = score_peak_rss_mb(repeat_clips(d / "base", d / f"n{k}", k), d / "w", metrics, precision)
    rows: dict[str, Any] = {"metrics": metrics, "frames per clip": f"{args.frames} (128x128)", "precision": precision,
                            **{f"peak RSS of score, {k} clips (MB)": v for k, v in rss.items()},
                            f"ratio {10 * n} / {n} clips": rss[10 * n] / rss[n]}
    report("memory", rows, args.json)
    return 0
