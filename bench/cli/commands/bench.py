"""``moee-bench bench NAME``: speed benchmarks that time our code against the reference chain in
the same run and print ratios (never absolute pass/fail times)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    "metrics": ("moee_bench.bench.perf.visual:run", "visual metrics vs PNG dump + pytorch-fid + lpips/skimage loops"),
    "sync": ("moee_bench.bench.perf.sync:run", "Sync-C/D scorer vs syncnet-python's SyncNetInstance.evaluate"),
    "cache": ("moee_bench.bench.perf.runs:run_cache", "re-scoring a finished run from the feature cache vs cold"),
    "leaderboard": ("moee_bench.bench.perf.runs:run_leaderboard",
                    "a K-method suite (GT features once) vs K runs of the PNG/pytorch-fid/lpips/skimage chain"),
    "memory": ("moee_bench.bench.perf.memory:run", "peak RSS of score over --clips and 10x as many clips"),
    "drift": ("moee_bench.bench.perf.drift:run", "bf16 vs fp32 per network metric on real clips (--real DIR)"),
    "networks": ("moee_bench.bench.perf.networks:run",
                 "frames/s of each feature network (FID Inception, LPIPS, I3D, ArcFace, SyncNet), fp32 and bf16, on --device"),
    "frechet": ("moee_bench.bench.perf.frechet_accuracy:run",
                "the headline Frechet distance (eigh) vs pytorch-fid / StyleGAN-V sqrtm: time and error vs extended precision"),
    "rates": ("moee_bench.bench.perf.plan:run_rates",
              "measure and record the per-stage rates of score (start-up, decode, each metric) on --device, --precision"),
    "plan": ("moee_bench.bench.perf.plan:run_plan",
             "predicted wall time of score for --clips x --frames with --metrics from the recorded rates (--check: and measured)"),
    "faces": ("moee_bench.bench.perf.faces:run",
              "AKD's per-frame face pass (MTCNN + dlib 68): facenet-pytorch's own detect vs FastMTCNN (--real DIR: real clips), identical landmarks"),
    "moee": ("moee_bench.bench.perf.moee:run", "MoEE generation frames/s, s/clip, peak memory; denoiser call vs plain SD U-Net"),
    "stats": ("moee_bench.bench.perf.stats:run",
              "coverage of every printed interval, compare's false-positive rate and power, by simulation with known truth"),
}


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import positive_int_arg

    p = sub.add_parser("bench", help="speed benchmarks against the reference tools (ratios, peak memory)",
                       description=__doc__)
    p.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v[1]}" for k, v in sorted(BENCHMARKS.items())))
    p.add_argument("k", nargs="?", type=positive_int_arg, default=None, help="leaderboard: number of methods (default 6)")
    p.add_argument("--clips", type=positive_int_arg, default=8, help="number of clips to time (default 8)")
    p.add_argument("--frames", type=positive_int_arg, default=50, help="frames per clip (default 50)")
    p.add_argument("--repeats", type=positive_int_arg, default=None,
                   help="timed repeats after one warm-up (default 1; metrics: 3 alternating rounds)")
    p.add_argument("--workdir", default=None, help="folder for temporary files (default: a temp folder)")
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="drift, rates, plan: our feature networks' precision (bf16: the declared fast mode; "
                        "metrics always times fp32 and bf16)")
    p.add_argument("--real", default=None, help="drift, faces: folder of real talking-face clips (*.mp4; drift: with audio)")
    p.add_argument("--weights-dir", default=None,
                   help="drift: network weights used where present (others random-initialised)")
    p.add_argument("--profile", action="store_true",
                   help="metrics: also print where the time goes, per 100 frame pairs, for ours and the chain")
    p.add_argument("--config", default=None, help="moee: model config, tiny (default) or paper (random weights)")
    p.add_argument("--device", default=None, help="moee, networks: cpu (default) or cuda")
    p.add_argument("--batch", type=positive_int_arg, default=32, help="networks: frames per batch (default 32)")
    p.add_argument("--size", type=positive_int_arg, default=256, help="networks: frame size fed to the frame networks (default 256)")
    p.add_argument("--steps", type=positive_int_arg, default=None, help="moee: DDIM steps (default: the config's)")
    p.add_argument("--train-steps", type=positive_int_arg, default=None,
                   help="moee: also time this many training steps of stages 1 and 2 (synthetic batch) and a plain U-Net step")
    p.add_argument("--detect-every", type=positive_int_arg, default=5,
                   help="faces: akd_detect_every of the declared fast mode timed beside (default 5)")
    p.add_argument("--sims", type=positive_int_arg, default=1000, help="stats: simulated data sets per row (default 1000)")
    p.add_argument("--boot", type=positive_int_arg, default=500, help="stats: bootstrap resamples per interval (default 500)")
    p.add_argument("--sizes", default="10,30,100", help="stats: comma list of clip counts N (default 10,30,100)")
    p.add_argument("--metrics", default=None, help="rates, plan: comma list of psnr,ssim,lpips,fid,kid (default "
                                                   "psnr,ssim,lpips,fid)")
    p.add_argument("--rates", default=None, help="rates, plan: the rates JSON (default $XDG_CACHE_HOME/moee-bench/rates.json)")
    p.add_argument("--warm", action="store_true", help="plan: GT features already in the feature cache")
    p.add_argument("--gpus", type=positive_int_arg, default=1, help="plan: GPUs of a torchrun (with recorded CUDA rates)")
    p.add_argument("--check", action="store_true", help="plan: also run score on synthetic clips of that size and time it")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.paths import check_output_dir, check_output_file

    if args.json:
        check_output_file(args.json, "--json")
    if args.workdir:
        check_output_dir(args.workdir, "--workdir")
    if args.repeats is None:
        args.repeats = 3 if args.name == "metrics" else 1
    target, _ = BENCHMARKS[args.name]
    mod, _, fn = target.partition(":")
    return int(getattr(importlib.import_module(mod), fn)(args) or 0)
