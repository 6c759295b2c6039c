"""``moee-bench bench cache``: score a run cold, then re-score it from the feature cache, same process."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def run_cache(args) -> int:
    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest
    from moee_bench.bench.runner import run_suite
    from moee_bench.bench.suite import load_suite
    from moee_bench.metrics.benchmarks.common import report

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "ds"
        rng = np.random.default_rng(0)
        clips = []
        for i in range(args.clips):
            v = rng.integers(0, 255, (args.frames, 128, 128, 3), dtype=np.uint8)
            a = (0.1 * rng.standard_normal(int(args.frames / 25 * 16000))).astype(np.float32)
            media.write_video(root / f"c{i}.mp4", [v], 25, audio=a)
            clips.append(ClipRecord(f"c{i}", f"id{i}", f"c{i}.mp4", parse_emotion("neutral"), split="test"))
        m = Manifest("bench", root, clips).save(root / "manifest.json")
        suite_file = Path(tmp) / "s.toml"
        suite_file.write_text(f'name = "cache"\ndataset = "{m}"\nsplit = "test"\nmetrics = ["psnr", "ssim", "akd"]\n'
                              '[params]\nakd_stride = 5\n[[methods]]\nname = "static"\n')
        suite = load_suite(suite_file)
        quiet = lambda *a, **k: None  # noqa: E731
        t = time.perf_counter()
        run_suite(suite, Path(tmp) / "out", report=False, log=quiet)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        run_suite(suite, Path(tmp) / "out", report=False, log=quiet)
        warm = time.perf_counter() - t
    report("cache", {"clips x frames": f"{args.clips} x {args.frames}", "cold run (s)": cold,
                     "re-score from cache (s)": warm, "speed-up": cold / warm}, args.json)
    return 0
