"""``moee-bench bench rates`` and ``moee-bench bench plan``: a scale model of ``score`` from measured per-stage rates.

``bench rates`` measures, on ``--device`` at ``--precision`` and in this process, the stages a ``score`` run is made
of, through the metrics' own classes and the evaluator (random-initialised network weights: a rate needs no
trained weights) on one synthetic clip pair of ``--frames`` frames at ``--size``: start-up (interpreter and
imports, a subprocess), each metric's construction, decoding a pair of frames, each metric's extraction per
frame pair (its evaluator time less the decode), and each metric's set-level ``compute`` (the Fréchet distance).
The rates are recorded in a small JSON (``--rates``, default ``$XDG_CACHE_HOME/moee-bench/rates.json``) under a
device key (``cpu``, or ``cuda:<name>``) and the precision; a GPU run records its own key beside the CPU's.

Each per-frame rate is the slope between a clip of ``--frames`` and one of twice as many frame pairs (after a
warm-up run), each per-clip cost the intercept, each first-call cost (``warmup``) the first run's excess: one
length alone charged every pair a share of the fixed costs, and the model overpredicted (195.5 s against 153.9 s).

``bench plan --clips N --frames F --metrics ...`` predicts the wall time of ``score`` from those rates::

    start-up + sum(build + warm-up + compute) + N * (decode per clip + sum(per clip)) + N * F * (decode + sum(per pair))

(``--warm``: GT features already cached, so the extraction of metrics with a GT-only part is halved), printed per
stage, for every recorded device key; for a CUDA key also over ``--gpus`` G processes (torchrun: the per-clip
part divided by G, the rest not). ``bench plan --check`` first records this machine's rates on one clip of a quarter
of the planned frames rounded up to whole chunks of 32, and one twice as long, then runs ``score`` on synthetic clips of the planned size and prints the
measured time beside the prediction and the error in % (same run, so the same machine load). Our own model (no
library predicts this).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from moee_bench.bench.core.paths import write_text_atomic
from moee_bench.bench.perf.common import report

DEFAULT_METRICS = "psnr,ssim,lpips,fid"
CHUNK = 32                 # frames per chunk of the evaluator (metrics.core.evaluate.evaluate's default)
#: the metrics a rate can be measured for with random weights (no face, audio or emotion inputs needed)
MEASURABLE = ("psnr", "ssim", "lpips", "fid", "kid")


def default_rates_file() -> Path:
    """``$XDG_CACHE_HOME/moee-bench/rates.json`` (default ``~/.cache/moee-bench/rates.json``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "moee-bench" / "rates.json"


def device_key(device: str) -> str:
    """``cpu`` or ``cuda:<device name>``: the key a device's rates are recorded under."""
    if device.startswith("cuda"):
        import torch

        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def _metrics(arg: str | None) -> list[str]:
    names = [m.strip() for m in (arg or DEFAULT_METRICS).split(",") if m.strip()]
    bad = [m for m in names if m not in MEASURABLE]
    if bad:
        from moee_bench.bench.core.errors import BenchError

        raise BenchError(f"bench rates/plan model only {', '.join(MEASURABLE)}; not {', '.join(bad)}")
    return names


def _weights(d: Path, names: list[str]):
    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.bench.perf.visual import random_weights

    d.mkdir(parents=True, exist_ok=True)
    if {"lpips", "fid", "kid"} & set(names):
        random_weights(d)
    return WeightsOptions(weights_dir=str(d), allow_unverified=True)


def _now() -> np.ndarray:
    """(wall seconds, CPU seconds of this process's threads and its finished children): each stage is timed on both
    clocks; CPU time stays put when other jobs load the machine, so ``--check`` can test the model under load."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return np.array([time.perf_counter(), time.process_time() + c.ru_utime + c.ru_stime])


#: the packages a metric's construction imports (in ``score``'s process, at start; here they are imported before any
#: build is timed, by the random weights, so they are counted in the start-up)
BUILD_IMPORTS = {"lpips": ("lpips",), "fid": ("pytorch_fid.inception",), "kid": ("pytorch_fid.inception",)}


def _startup_s(names: list[str]) -> np.ndarray:
    """An interpreter start with the imports a ``score`` of ``names`` makes (torch, the CLI, the evaluator, the
    packages the metrics' networks come from, e.g. lpips -> torchvision): wall and CPU seconds."""
    mods = ["torch", "moee_bench.bench.cli.app", "moee_bench.api", "moee_bench.metrics.core.evaluate",
            *sorted({m for n in names for m in BUILD_IMPORTS.get(n, ())})]
    t = _now()
    subprocess.run([sys.executable, "-c", "import " + ", ".join(mods)], check=True, capture_output=True)
    return _now() - t


def _slope(t_small: float, t_large: float, n_small: int, n_large: int) -> tuple[float, float]:
    """Seconds per frame pair (the slope between two clip lengths) and seconds per clip (the intercept)."""
    per = max(t_large - t_small, 0.0) / (n_large - n_small)
    return per, max(t_small - n_small * per, 0.0)


def measure(names: list[str], *, device: str, precision: str, frames: int, size: int, repeats: int,
            work: Path) -> dict[str, Any]:
    """The per-stage rates of ``names`` (seconds): ``startup``; ``decode`` per frame pair and ``decode_clip`` per clip;
    per metric ``build``, ``warmup`` (the first clip's extra time: kernel selection, first allocations), ``per_pair``
    and ``per_clip`` (its evaluator time less the decode), ``compute``, and whether its features have a GT-only part
    (``gt_part``).

    Per pair and per clip are the slope and intercept between a clip of ``frames`` and one of ``2 * frames`` frame
    pairs, ``frames`` rounded up to a whole number of the evaluator's chunks (:data:`CHUNK`: the networks see full
    batches, as in a run of long clips; a batch of 10 costs more per frame than one of 32), each the median of ``repeats`` runs after a warm-up run of each, the two lengths alternating; a single
    length would charge every pair a share of the fixed per-clip and first-call costs (what made the old model
    overpredict)."""
    import warnings

    from moee_bench.bench.core import media
    from moee_bench.bench.perf.visual import make_clips
    from moee_bench.metrics.core.evaluate import evaluate
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics

    frames = -(-frames // CHUNK) * CHUNK
    short = make_clips(work / "short", 1, frames, size)[0]
    long = make_clips(work / "long", 1, 2 * frames, size)[0]
    wopts = _weights(work / "w", names)

    def median_s(fn, n: int = max(1, repeats)) -> np.ndarray:
        ts = []
        for _ in range(n):
            t = _now()
            fn()
            ts.append(_now() - t)
        return np.median(ts, axis=0)

    def interleaved(fn) -> tuple[np.ndarray, np.ndarray]:
        """Median seconds of ``fn(short)`` and ``fn(long)``, run alternately (order reversed every other round), so a
        change of machine load falls on both lengths instead of tilting the slope."""
        ts: dict[int, list[np.ndarray]] = {0: [], 1: []}
        for r in range(max(1, repeats)):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                t = _now()
                fn((short, long)[i])
                ts[i].append(_now() - t)
        return np.median(ts[0], axis=0), np.median(ts[1], axis=0)

    def decode(clip) -> None:
        for side in (clip.pred, clip.gt):
            for _ in media.FrameReader(side, fps=25.0, size=(size, size), chunk=32):
                pass

    decode(short)                                           # file cache and codec warm
    decode(long)
    dec_s, dec_l = interleaved(decode)
    startup = np.median([_startup_s(names) for _ in range(max(1, repeats))], axis=0)
    stages: dict[str, Any] = {"startup": startup, "dec": [_slope(dec_s[k], dec_l[k], frames, 2 * frames) for k in (0, 1)]}
    per_metric: dict[str, dict[str, Any]] = {}
    gt_part: dict[str, bool] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            opts = MetricOptions(weights=wopts, device=device, precision=precision)
            t = _now()
            metrics, missing = build_metrics([name], opts)
            build = _now() - t
            if missing:
                raise RuntimeError(f"{name}: {missing[name]}")
            m = metrics[0]

            def run(clip) -> None:
                evaluate([clip], [m], fps=25.0, size=(size, size), progress=False, compute=False,
                         cache=_scratch_cache(work) if getattr(m, "needs_feature_cache", False) else None)

            first = median_s(lambda: run(short), 1)
            run(long)                                       # its own first call at that batch shape
            t_s, t_l = interleaved(run)
            per_metric[name] = {"build": build, "first": first, "t_s": t_s,
                                "fit": [_slope(t_s[k], t_l[k], frames, 2 * frames) for k in (0, 1)],
                                # the first call, as score makes one: the first 2048-dim eigh of a process measured
                                # 13.6 s against 2.3 s for a later call (a median of repeats hid it)
                                "compute": median_s(m.compute, 1)}
            gt_part[name] = "gt" in m.feature_parts()

    def rates_on(k: int) -> dict[str, Any]:
        """The rates on clock ``k`` (0 wall, 1 CPU)."""
        dec_pair, dec_clip = stages["dec"][k]
        r: dict[str, Any] = {"startup": float(stages["startup"][k]), "decode": dec_pair, "decode_clip": dec_clip,
                             "metrics": {}}
        for name, v in per_metric.items():
            per_pair, per_clip = v["fit"][k]
            r["metrics"][name] = {"build": float(v["build"][k]), "warmup": max(float(v["first"][k] - v["t_s"][k]), 0.0),
                                  "per_pair": max(per_pair - dec_pair, 0.0), "per_clip": max(per_clip - dec_clip, 0.0),
                                  "compute": float(v["compute"][k]), "gt_part": gt_part[name]}
        return r

    return {**rates_on(0), "cpu_seconds": rates_on(1), "frames": frames, "size": size}


def _scratch_cache(work: Path):
    from moee_bench.bench.suite.store import FeatureStore

    return FeatureStore(work / "cache")


def predict(rates: dict[str, Any], names: list[str], clips: int, frames: int, *, warm: bool = False,
            gpus: int = 1) -> dict[str, float]:
    """Seconds per stage of a ``score`` of ``clips`` x ``frames`` frame pairs with ``names`` (and ``total``)::

        startup + sum(build + warmup + compute) + C * (decode_clip + sum(per_clip)) + C * F * (decode + sum(per_pair))

    with C = clips / gpus (a torchrun rank scores its share; start-up, builds and the set-level compute are not
    divided); ``warm`` halves the per-pair extraction of metrics with a GT-only part. Rates recorded before
    ``warmup``/``per_clip``/``decode_clip`` existed count them as 0."""
    missing = [n for n in names if n not in rates["metrics"]]
    if missing:
        raise KeyError(f"no recorded rate for {', '.join(missing)} (run `moee-bench bench rates --metrics ...`)")
    n_clips = clips / max(1, gpus)
    pairs = n_clips * frames
    st = {"startup": rates["startup"], "decode": pairs * rates["decode"] + n_clips * rates.get("decode_clip", 0.0)}
    for n in names:
        r = rates["metrics"][n]
        per = r["per_pair"] * (0.5 if warm and r["gt_part"] else 1.0)
        st[f"{n} build"] = r["build"] + r.get("warmup", 0.0)
        st[f"{n} extract"] = pairs * per + n_clips * r.get("per_clip", 0.0)
        st[f"{n} compute"] = r["compute"]
    st["total"] = sum(st.values())
    return st


def predict_one_length(rates: dict[str, Any], names: list[str], clips: int, frames: int) -> float:
    """What the model before the two-length fit predicted from the same measurements: every stage timed on one clip
    of ``rates["frames"]`` pairs (its first run, warm-up included) and divided by its length, so each pair carried a
    share of the per-clip and first-call costs. Printed by ``--check`` beside the current model, for comparison."""
    f0 = rates["frames"]
    per = rates["decode"] + rates.get("decode_clip", 0.0) / f0
    total = rates["startup"]
    for n in names:
        r = rates["metrics"][n]
        per += r["per_pair"] + (r.get("per_clip", 0.0) + r.get("warmup", 0.0)) / f0
        total += r["build"] + r["compute"]
    return total + clips * frames * per


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def run_rates(args) -> int:
    """``bench rates``: measure and record."""
    device = getattr(args, "device", None) or "cpu"
    names = _metrics(getattr(args, "metrics", None))
    path = Path(args.rates) if getattr(args, "rates", None) else default_rates_file()
    with tempfile.TemporaryDirectory(prefix="moee-rates-", dir=args.workdir) as tmp:
        r = measure(names, device=device, precision=args.precision, frames=args.frames,
                    size=getattr(args, "size", None) or 128, repeats=args.repeats, work=Path(tmp))
    r["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    book = _load(path)
    key = device_key(device)
    entry = book.setdefault(key, {}).setdefault(args.precision, {"metrics": {}})
    entry.update({k: v for k, v in r.items() if k not in ("metrics", "cpu_seconds")})
    entry["metrics"].update(r["metrics"])
    cpu_entry = entry.setdefault("cpu_seconds", {"metrics": {}})
    cpu_entry.update({k: v for k, v in r["cpu_seconds"].items() if k != "metrics"})
    cpu_entry["metrics"].update(r["cpu_seconds"]["metrics"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(book, indent=1) + "\n", "--rates")
    rows: dict[str, Any] = {"device": key, "precision": args.precision, "rates file": str(path),
                            "measured at": f"clips of {r['frames']} and {2 * r['frames']} frame pairs, {r['size']}px",
                            "start-up (s)": r["startup"], "decode (ms / frame pair, ms / clip)":
                                f"{1e3 * r['decode']:.2f}, {1e3 * r['decode_clip']:.1f}"}
    for n, m in r["metrics"].items():
        rows[f"{n}: build s / warm-up s / ms per pair / ms per clip / compute s"] = (
            f"{m['build']:.2f} / {m['warmup']:.2f} / {1e3 * m['per_pair']:.2f} / {1e3 * m['per_clip']:.1f} / "
            f"{m['compute']:.3f}")
    report("rates", rows, args.json)
    return 0


def run_plan(args) -> int:
    """``bench plan``: predicted wall time per recorded device (and ``--check``: one measured run beside it)."""
    from moee_bench.bench.core.errors import BenchError

    names = _metrics(getattr(args, "metrics", None))
    path = Path(args.rates) if getattr(args, "rates", None) else default_rates_file()
    if getattr(args, "check", False):
        # the rates of this check are measured in the same run, on clips of another size (a quarter of the planned
        # frames, rounded up to whole chunks, and twice that), so the prediction and the measured run see the same load
        small = argparse.Namespace(**{**vars(args), "frames": max(4, args.frames // 4), "json": None})
        run_rates(small)
    book = _load(path)
    if not book:
        raise BenchError(f"no recorded rates in {path}: run `moee-bench bench rates` first (and on a GPU, with --device cuda)")
    rows: dict[str, Any] = {"clips x frames": f"{args.clips} x {args.frames}", "metrics": ",".join(names),
                            "warm GT": bool(getattr(args, "warm", False)), "rates file": str(path)}
    cpu_total = None
    for key, per_precision in book.items():
        rates = per_precision.get(args.precision)
        if rates is None:
            continue
        try:
            st = predict(rates, names, args.clips, args.frames, warm=getattr(args, "warm", False))
        except KeyError as e:
            rows[f"{key}"] = str(e.args[0])
            continue
        rows[f"{key} {args.precision} predicted (s)"] = round(st["total"], 2)
        rows[f"{key} stages"] = ", ".join(f"{k} {v:.2f}" for k, v in st.items() if k != "total")
        if key.startswith("cuda") and getattr(args, "gpus", 1) > 1:
            rows[f"{key} torchrun x{args.gpus} predicted (s)"] = round(
                predict(rates, names, args.clips, args.frames, warm=getattr(args, "warm", False), gpus=args.gpus)["total"], 2)
        if key == "cpu":
            cpu_total = st["total"]
    if getattr(args, "check", False):
        if cpu_total is None:
            raise BenchError(f"--check needs recorded cpu {args.precision} rates for {', '.join(names)}")
        measured, measured_cpu = _measured_score(names, args)
        rows["measured score here (s)"] = round(measured, 2)
        rows["predicted / measured"] = round(cpu_total / measured, 3)
        rows["prediction error (%)"] = round(100 * (cpu_total - measured) / measured, 1)
        old = predict_one_length(book["cpu"][args.precision], names, args.clips, args.frames)
        rows["one-length model (before), same rates: predicted (s), error (%)"] = \
            f"{old:.2f}, {100 * (old - measured) / measured:.1f}"
        cpu_rates = book["cpu"][args.precision].get("cpu_seconds")
        if cpu_rates is not None:
            cpu_pred = predict(cpu_rates, names, args.clips, args.frames, warm=getattr(args, "warm", False))["total"]
            rows["CPU s (all threads; load-independent): predicted, measured, error (%)"] = \
                f"{cpu_pred:.2f}, {measured_cpu:.2f}, {100 * (cpu_pred - measured_cpu) / measured_cpu:.1f}"
        rows["load average (1 min) at the end"] = f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        f0 = book["cpu"][args.precision]["frames"]
        rows["rates taken at"] = f"1 clip of {f0} and of {2 * f0} frames (planned: {args.clips} x {args.frames})"
    report("plan", rows, args.json)
    return 0


def _measured_score(names: list[str], args) -> tuple[float, float]:
    """Wall and CPU seconds of ``moee-bench score`` (a subprocess, as a user runs it) on synthetic clips of the
    planned size."""
    from moee_bench.bench.perf.visual import make_clips

    with tempfile.TemporaryDirectory(prefix="moee-plan-", dir=args.workdir) as tmp:
        work = Path(tmp)
        make_clips(work, args.clips, args.frames, getattr(args, "size", None) or 128)
        _weights(work / "w", names)
        cmd = [sys.executable, "-m", "moee_bench", "score", "--pred", str(work / "pred"), "--gt", str(work / "gt"),
               "--metrics", ",".join(names), "--json", str(work / "s.json"), "--weights-dir", str(work / "w"),
               "--allow-unverified-weights", "--precision", args.precision]
        if not getattr(args, "warm", False):
            cmd.append("--no-cache")
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "xdg")}
        if getattr(args, "warm", False):                   # the GT embedded by a first run, then the timed one
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        t = _now()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        wall, cpu = _now() - t
        return float(wall), float(cpu)
