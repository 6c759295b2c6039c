"""``moee-bench score``: score a folder of generated videos (optionally against GT) and write JSON.

Contract (other tools script against it): ``OUT.json = {"metrics": {...}, "clips": [{"clip": stem,
...per-clip values, "status": {metric: status}}], "protocol": {...}}``. A metric that cannot be
computed (weights missing, no GT, every clip failed) is ``null`` with ``<metric>_reason``; never 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from moee_bench.bench.core.errors import BenchError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score generated videos against GT (JSON contract for scripts)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, help="folder of generated .mp4 files (paired by file stem)")
    p.add_argument("--gt", help="folder of ground-truth .mp4 files")
    p.add_argument("--manifest", help="dataset manifest: GT video, driving audio, reference image and emotion per clip id")
    p.add_argument("--metrics", default="psnr,ssim,lpips,fid", help="comma list of: psnr,ssim,lpips,fid,fvd,csim,akd,sync,emotion")
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--weights-dir", help="folder searched first for weight files")
    p.add_argument("--allow-unverified-weights", action="store_true",
                   help="accept weight files whose sha256 does not match the registry (results are marked unverified)")
    p.add_argument("--fps", type=float, default=25.0, help="evaluation frame rate (timestamp resampling; default 25)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="evaluation size (default: GT resolution)")
    p.add_argument("--strict", action="store_true", help="length mismatch is an error instead of a truncation warning")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--psnr-mode", choices=["frame", "dataset"], default="frame")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="feature networks' precision: fp32 (default, the reference tools' numbers) or bf16 (declared "
                        "fast mode: autocast on CPU AMX / CUDA, named in every result; drift: bench drift)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="metric parameter, repeatable")
    p.set_defaults(func=_score)


def _score(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.metrics.evaluate import evaluate, pair_folders
    from moee_bench.bench.provenance import environment
    from moee_bench.metrics.registry import MetricOptions, build_metrics

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    pairs, warn = pair_folders(Path(args.pred), Path(args.gt) if args.gt else None)
    if not pairs:
        raise BenchError(f"no .mp4 files in {args.pred}")
    if args.manifest:
        m = load_manifest(args.manifest)
        by = m.by_id()
        for c in pairs:
            rec = by.get(c.clip_id)
            if rec is None:
                warn.append(f"clip {c.clip_id}: not in the manifest {args.manifest}")
                continue
            c.gt = c.gt or m.media_path(rec, "video")
            c.audio = m.media_path(rec, "audio") if rec.audio else None
            c.ref_image = m.media_path(rec, "ref_image") if rec.ref_image else None
            c.emotion, c.intensity, c.identity = rec.emotion, rec.intensity, rec.identity
    params: dict = {"psnr_mode": args.psnr_mode}
    for kv in args.param:
        k, _, v = kv.partition("=")
        params[k] = v
    wopts = WeightsOptions(args.weights_dir, args.allow_unverified_weights)
    if args.allow_unverified_weights:
        print("warning: --allow-unverified-weights: weights whose hash does not match are used and every result is "
              "marked unverified", file=sys.stderr)
    opts = MetricOptions(weights=wopts, device=args.device, params=params, precision=args.precision)
    metrics, unavailable = build_metrics(names, opts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = evaluate(pairs, metrics, fps=args.fps, size=tuple(args.size) if args.size else None, strict=args.strict)
    out = res.to_json()
    for n, why in unavailable.items():
        out["metrics"][n] = None
        out["metrics"][f"{n}_reason"] = why
    out["protocol"]["precision"] = args.precision
    out["protocol"].update({**environment(args.device), "weights": [r.provenance() for r in wopts.used],
                            "unverified_weights": wopts.any_unverified, "pairing_warnings": warn,
                            "warnings": sorted({str(w.message) for w in caught})})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    for w in warn + out["protocol"]["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if args.precision != "fp32":
        print(f"precision: {args.precision} feature networks (declared fast mode; not the reference tools' fp32 numbers)")
    print(f"{'metric':<24}{'value':>14}")
    for k, v in out["metrics"].items():
        if k.endswith("_reason") or k.endswith("_warning"):
            continue
        print(f"{k:<24}{('null' if v is None else f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
        if v is None and f"{k}_reason" in out["metrics"]:
            print(f"  ({out['metrics'][f'{k}_reason']})")
    failed = [c for c in out["clips"] if any(s != "ok" for s in c["status"].values())]
    print(f"{len(out['clips'])} clips, {len(failed)} with a failed metric; JSON -> {args.json}")
    return 0
