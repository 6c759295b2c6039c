"""Benchmarks of the run path (same process, ratios against a reference measured in the same run):
``moee-bench bench cache`` (a run cold, then re-scored from the feature cache) and ``moee-bench bench
leaderboard K`` (a K-method suite against K runs of the researcher's chain)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import statistics
import warnings
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.perf.common import report
from moee_bench.bench.suite.runner import run_suite
from moee_bench.bench.suite.spec import load_suite
from moee_bench.bench.suite.store import ResultStore
from moee_bench.metrics.core.evaluate import ClipInput
# imported inside the functions that use them (seconds to import, or optional): our modules that import such packages: visual


def run_cache(args) -> int:
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


LEADERBOARD_METRICS = ("psnr", "ssim", "lpips", "fid")


def run_leaderboard(args) -> int:
    """``moee-bench bench leaderboard K``: one K-method suite (``run``: GT features extracted once, every video
    decoded once) against K runs of the researcher's chain on the same videos (per method: PNG dump,
    ``pytorch_fid`` on the folders, an lpips / scikit-image loop; the GT PNGs dumped once and reused,
    which favours the chain). Random-initialised backbones in the reference formats, the same for both.
    Each repeat starts from an empty store (a cold run); the median ratio and its range are printed,
    and the numbers of both sides per method, to show they are equal."""
    from moee_bench.bench.perf.visual import random_weights, researcher_chain
    k = int(args.k or 6)
    warnings.simplefilter("ignore")
    quiet = lambda *a, **kw: None  # noqa: E731
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        (d / "w").mkdir()
        random_weights(d / "w")
        manifest = _leaderboard_dataset(d, args.clips, args.frames, k)
        body = "".join(f'[[methods]]\nname = "precomputed"\nlabel = "m{i}"\nfolder = "{d / f"m{i}"}"\n' for i in range(k))
        suite_file = d / "s.toml"
        suite_file.write_text(f'name = "leaderboard"\ndataset = "{manifest}"\nsplit = "test"\n'
                              f'metrics = {json.dumps(list(LEADERBOARD_METRICS))}\n{body}')
        suite = load_suite(suite_file)
        t_suite, t_chain, t_rerun = [], [], []
        for r in range(max(1, args.repeats)):
            out = d / f"out{r}"
            t = time.perf_counter()
            run_suite(suite, out, weights_dir=str(d / "w"), allow_unverified=True, report=False, log=quiet)
            t_suite.append(time.perf_counter() - t)
            t = time.perf_counter()
            run_suite(suite, out, weights_dir=str(d / "w"), allow_unverified=True, report=False, log=quiet)
            t_rerun.append(time.perf_counter() - t)
            chain: dict[str, dict[str, float]] = {}
            t = time.perf_counter()
            for i in range(k):              # the chain scores the videos the suite scored
                clips = [ClipInput(f"c{j}", out / "videos" / f"m{i}" / f"c{j}.mp4", d / "gt" / f"c{j}.mp4")
                         for j in range(args.clips)]
                chain[f"m{i}"] = researcher_chain(clips, d / f"chain{r}_{i}", d / "w", gt_png=d / f"chain{r}_gt")
            t_chain.append(time.perf_counter() - t)
        with ResultStore(out / "store") as st:
            agg = st.aggregates().set_index(["method", "key"])["value"]
    ratios = [c / s for c, s in zip(t_chain, t_suite)]
    rows = {"methods x clips x frames": f"{k} x {args.clips} x {args.frames} (128x128)",
            "metrics": ", ".join(LEADERBOARD_METRICS), "repeats (cold store each)": len(ratios),
            f"{k} x researcher chain (s, median)": statistics.median(t_chain),
            f"{k}-method suite, `run` (s, median)": statistics.median(t_suite),
            "speed-up (median)": statistics.median(ratios),
            "speed-up (min-max)": f"{min(ratios):.3g}-{max(ratios):.3g}",
            "re-run of the same suite (s, median)": statistics.median(t_rerun),
            "GT Inception passes per clip": f"suite 1, chain {k}"}
    for key in LEADERBOARD_METRICS:
        rows[f"max |{key} diff| over methods"] = max(abs(float(agg[(f"m{i}", key)]) - chain[f"m{i}"][key]) for i in range(k))
    rows["weights"] = "random init in the reference formats (same for both)"
    report("leaderboard", rows, args.json)
    return 0


def _leaderboard_dataset(d: Path, n_clips: int, n_frames: int, k: int) -> Path:
    """GT clips and ``k`` methods' outputs (the GT plus method-specific noise), 128x128, and their manifest."""
    rng = np.random.default_rng(0)
    clips = []
    for j in range(n_clips):
        g = rng.integers(0, 255, (n_frames, 128, 128, 3), dtype=np.uint8)
        media.write_video(d / "gt" / f"c{j}.mp4", [g], 25)
        for i in range(k):
            p = np.clip(g.astype(int) + rng.integers(-20 - 4 * i, 20 + 4 * i, g.shape), 0, 255).astype(np.uint8)
            media.write_video(d / f"m{i}" / f"c{j}.mp4", [p], 25)
        clips.append(ClipRecord(f"c{j}", f"id{j}", f"gt/c{j}.mp4", parse_emotion("neutral"), split="test"))
    return Manifest("leaderboard", d, clips).save(d / "manifest.json")
