"""``moee-bench train``: train the MoEE reference model (stage 1 or 2) with accelerate; resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from moee_bench.bench.cli.options import add_weights_arguments, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import nonneg_int_arg, positive_int_arg

    p = sub.add_parser("train", help="train the MoEE reference model (moee_ref), stage 0, 1 or 2",
                       description="Train MoEE. Stage 0 (tiny/random-init configs): the VAE; stage 1 (--init the stage-0 checkpoint): ReferenceNet + U-Net; stage 2 (--init a stage-1 checkpoint): "
                                   "only the emotion experts and Emotion-to-Latents. Re-running with the same --out "
                                   "resumes from the newest checkpoint.")
    p.add_argument("--config", default="tiny", help="built-in config (tiny, paper) or a TOML file (default tiny)")
    p.add_argument("--stage", type=int, choices=(0, 1, 2), required=True,
                   help="0: fit the VAE (random-init configs only), 1: ReferenceNet + U-Net, 2: experts + Emotion-to-Latents")
    p.add_argument("--manifest", help="dataset manifest (default: the sample dataset under moee_bench_runs/sample)")
    p.add_argument("--split", default="train", help="a split recorded in the manifest by `data split` (default train)")
    p.add_argument("--out", required=True, help="output folder for checkpoints and train_log.jsonl")
    p.add_argument("--init", help="checkpoint to start from (required for stage 2)")
    p.add_argument("--steps", type=positive_int_arg, help="total steps (default: the config's train.steps)")
    p.add_argument("--seed", type=nonneg_int_arg, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (mixed precision follows the config on GPU)")
    p.add_argument("--max-clips", type=positive_int_arg, help="use only the first N clips of the split")
    p.add_argument("--clip-cache", help="folder for prepared clips (default OUT/clip_cache); share it between stages")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in --out")
    p.add_argument("--variant", help="MoEE variant (full, no-moe, no-global-gate, no-masked-noisy, no-dhfev, palette, "
                                     "double-gate; moee_ref/variants.py); stage 2 of any variant starts from one stage-1 "
                                     "checkpoint; default: the config's / the --init checkpoint's")
    p.add_argument("--random-init", action="store_true",
                   help="every network random, nothing read from the weights registry (smoke tests and throughput, "
                        "e.g. --config paper --device cuda on a machine without weights); the checkpoint is marked")
    add_weights_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.splits import select_split
    from moee_bench.bench.core.paths import check_output_dir
    from moee_bench.bench.core.values import existing_dir
    from moee_bench.moee_ref.config import load_config

    check_output_dir(args.out, "--out")
    existing_dir(args.weights_dir, "--weights-dir")
    load_config(args.config)                    # a bad config fails before the sample dataset is built
    if args.manifest:
        manifest = Path(args.manifest)
    else:
        from moee_bench.bench.suite.sample import ensure_sample

        manifest = ensure_sample(Path("moee_bench_runs") / "sample")
    select_split(load_manifest(manifest), args.split)        # a missing split is refused before torch is loaded
    from moee_bench.moee_ref.train import train

    weights = options_from_args(args)
    r = train(args.config, stage=args.stage, manifest=manifest, out_dir=args.out, split=args.split, init=args.init,
              steps=args.steps, seed=args.seed, device=args.device, weights=weights, resume=not args.no_resume,
              max_clips=args.max_clips, clip_cache=args.clip_cache, variant=args.variant, random_init=args.random_init)
    print(f"stage {r.stage}: steps {r.start_step}->{r.steps} in {r.seconds:.1f} s; fixed-batch loss "
          f"{r.fixed_batch_before:.4f} -> {r.fixed_batch_after:.4f}; checkpoint {r.checkpoint}")
    return 0
