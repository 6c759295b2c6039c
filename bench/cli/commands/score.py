"""``moee-bench score``: score a folder of generated videos (optionally against GT) and write JSON.

Contract (other tools script against it): ``OUT.json = {"metrics": {...}, "clips": [{"clip": clip id,
...per-clip values, "status": {metric: status}}], "protocol": {...}}``. A metric that cannot be
computed (weights missing, no GT, every clip failed) is ``null`` with ``<metric>_reason``; never 0.
Manifest clips without a generated video are listed in ``protocol.missing_clips``. Exit status:
0, or 3 (bench/exitcodes.FAILED_CLIPS) when a clip failed (the failed clips are named); 2 for bad
options, checked before anything is decoded.
"""

from __future__ import annotations

import argparse
import json
import sys

from moee_bench.bench.cli.commands._metric_flags import add_metric_flags, metric_params
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.cli.options import add_weights_arguments, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import fps_arg, side_arg

    p = sub.add_parser("score", help="score generated videos against GT (JSON contract for scripts)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, help="folder of generated .mp4 files (paired by clip id: the file stem, or "
                                                 "the id a moee-bench file name encodes)")
    p.add_argument("--gt", help="folder of ground-truth .mp4 files")
    p.add_argument("--manifest", help="dataset manifest: GT video, driving audio, reference image and emotion per clip id")
    p.add_argument("--split", help="with --manifest: score only the clips of this split (recorded with its hash); "
                                   "generated videos of other clips are left out and counted")
    p.add_argument("--metrics", default="psnr,ssim,lpips,fid",
                   help="comma list of: psnr,ssim,lpips,fid,fvd,kid,kvd,csim,akd,sync,emotion,dynamics,flmd")
    p.add_argument("--json", required=True, help="output JSON file (checked before scoring, written atomically)")
    add_weights_arguments(p)
    p.add_argument("--fps", type=fps_arg, default=25.0, help="evaluation frame rate (timestamp resampling; default 25)")
    p.add_argument("--size", type=side_arg, nargs=2, metavar=("H", "W"), help="evaluation size (default: GT resolution)")
    p.add_argument("--strict", action="store_true", help="length mismatch is an error instead of a truncation warning")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--psnr-mode", choices=["frame", "dataset"], default="frame")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="feature networks' precision: fp32 (default, the reference tools' numbers) or bf16 (declared "
                        "fast mode: autocast on CPU AMX / CUDA, named in every result; drift: bench drift)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep every feature in this folder across runs (default: only GT features, in the persistent cache below)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not keep GT features between runs (default: features read from a GT video alone are kept in "
                        "$XDG_CACHE_HOME/moee-bench/features, content-keyed, so a later score against the same GT embeds "
                        "only the predictions; size and pruning: moee-bench cache info|prune)")
    add_metric_flags(p)
    p.set_defaults(func=_score)


def _score(args: argparse.Namespace) -> int:
    """Parse, call :func:`moee_bench.api.score` (the one scoring path), write the JSON, print the summary."""
    from moee_bench import api
    from moee_bench.bench.core import exitcodes
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic

    # everything the user gave is checked before any video is decoded (the output path here, the rest in api.score)
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not names:
        raise BenchError("--metrics is empty")
    if len(set(names)) != len(names):
        raise BenchError(f"--metrics names a metric twice: {args.metrics}")
    out_path = check_output_file(args.json, "--json")
    params: dict = {"psnr_mode": args.psnr_mode} if "psnr" in names else {}
    params.update(metric_params(args))
    if args.allow_unverified_weights:
        print("warning: --allow-unverified-weights: a weight file that matches neither the registry, the lock nor a "
              "--trust pin is used, and the metrics computed with it are marked unverified", file=sys.stderr)
    res = api.score(args.pred, args.gt, manifest=args.manifest, split=args.split, metrics=names, params=params,
                    device=args.device, fps=args.fps, size=tuple(args.size) if args.size else None, strict=args.strict,
                    precision=args.precision, weights=options_from_args(args),
                    cache=None if args.no_cache else args.feature_cache or "default")
    out = res.to_dict()
    write_text_atomic(out_path, json.dumps(out, indent=1, default=float) + "\n", "--json")
    missing = res.missing
    for w in out["protocol"]["pairing_warnings"] + out["protocol"]["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print_clip_warnings({c.clip_id: c.warnings for c in res.clips})
    if args.precision != "fp32":
        print(f"precision: {args.precision} feature networks (declared fast mode; not the reference tools' fp32 numbers)")
    print(f"{'metric':<24}{'value':>14}")
    for k, v in out["metrics"].items():
        if k.endswith("_reason") or k.endswith("_warning"):
            continue
        print(f"{k:<24}{('null' if v is None else f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
        if v is None and f"{k}_reason" in out["metrics"]:
            print(f"  ({out['metrics'][f'{k}_reason']})")
    failed = {c.clip_id: {m: f"{s}: {c.messages.get(m, '')}" for m, s in c.status.items() if exitcodes.is_failure(s)}
              for c in res.clips}
    failed = {k: v for k, v in failed.items() if v}
    other = sum(1 for c in res.clips if c.clip_id not in failed and any(s != "ok" for s in c.status.values()))
    print(f"{len(res.clips)} clips: {len(failed)} failed, {other} with a metric that could not score them "
          f"(no face, too short...); {len(missing)} manifest clips missing; JSON -> {out_path}")
    if failed:
        print_failed(failed, every=len(failed) == len(res.clips))
        return exitcodes.FAILED_CLIPS
    return exitcodes.OK




def print_clip_warnings(per_clip: dict[str, list[str]], limit: int = 3) -> None:
    """Per-clip warnings (length mismatch, fps resampling...) to stderr, the clip (or method/clip) named;
    a warning that many clips share is shown for ``limit`` of them and counted for the rest."""
    import re

    groups: dict[str, list[tuple[str, str]]] = {}
    for cid, ws in per_clip.items():
        for w in ws:
            groups.setdefault(re.sub(r"\d+(\.\d+)?", "#", w), []).append((cid, w))
    for items in groups.values():
        for cid, w in items[:limit]:
            print(f"warning: clip {cid}: {w}", file=sys.stderr)
        if len(items) > limit:
            print(f"warning: ... and {len(items) - limit} more clips with the same warning (per-clip list in the JSON)",
                  file=sys.stderr)


def print_failed(failed: dict[str, dict[str, str]], *, every: bool, limit: int = 20) -> None:
    """The failed clips by name with each failed metric's status and reason."""
    print(("every clip failed" if every else f"{len(failed)} failed clips") + ":")
    for cid, why in list(failed.items())[:limit]:
        print(f"  clip {cid}: " + "; ".join(f"{m} {r}" for m, r in why.items()))
    if len(failed) > limit:
        print(f"  ... and {len(failed) - limit} more (see the JSON)")
