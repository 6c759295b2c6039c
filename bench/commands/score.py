"""``moee-bench score``: score a folder of generated videos (optionally against GT) and write JSON.

Contract (other tools script against it): ``OUT.json = {"metrics": {...}, "clips": [{"clip": stem,
...per-clip values, "status": {metric: status}}], "protocol": {...}}``. A metric that cannot be
computed (weights missing, no GT, every clip failed) is ``null`` with ``<metric>_reason``; never 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import add_weights_arguments, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score generated videos against GT (JSON contract for scripts)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, help="folder of generated .mp4 files (paired by file stem)")
    p.add_argument("--gt", help="folder of ground-truth .mp4 files")
    p.add_argument("--manifest", help="dataset manifest: GT video, driving audio, reference image and emotion per clip id")
    p.add_argument("--split", help="with --manifest: score only the clips of this split (recorded with its hash); "
                                   "generated videos of other clips are left out and counted")
    p.add_argument("--metrics", default="psnr,ssim,lpips,fid", help="comma list of: psnr,ssim,lpips,fid,fvd,kid,kvd,csim,akd,sync,emotion,dynamics,flmd")
    p.add_argument("--json", required=True, help="output JSON file")
    add_weights_arguments(p)
    p.add_argument("--fps", type=float, default=25.0, help="evaluation frame rate (timestamp resampling; default 25)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="evaluation size (default: GT resolution)")
    p.add_argument("--strict", action="store_true", help="length mismatch is an error instead of a truncation warning")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--psnr-mode", choices=["frame", "dataset"], default="frame")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="metric parameter, repeatable")
    p.add_argument("--face-cropped", action="store_true",
                   help="sync: the videos are already face crops (no detection/tracking); same as --param face_cropped=true")
    p.set_defaults(func=_score)


def _score(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.metrics.evaluate import evaluate, pair_folders
    from moee_bench.bench.provenance import environment
    from moee_bench.bench.store import FeatureStore
    from moee_bench.metrics.registry import MetricOptions, build_metrics

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    pairs, warn = pair_folders(Path(args.pred), Path(args.gt) if args.gt else None)
    if not pairs:
        raise BenchError(f"no .mp4 files in {args.pred}")
    split_info = None
    if args.split and not args.manifest:
        raise BenchError("--split needs --manifest (the split is recorded in the manifest)")
    if args.manifest:
        from moee_bench.bench.core.references import choose_reference

        m = load_manifest(args.manifest)
        by = m.by_id()
        if args.split:
            from moee_bench.bench.core.splits import select_split, split_record

            chosen = select_split(m, args.split)
            split_info = split_record(m, args.split, chosen)
            wanted = {c.clip_id for c in chosen}
            outside = [c.clip_id for c in pairs if c.clip_id not in wanted]
            if outside:
                warn.append(f"{len(outside)} generated videos are not clips of split {args.split!r} and are not scored "
                            f"(e.g. {outside[:5]})")
            absent = sorted(wanted - {c.clip_id for c in pairs})
            if absent:
                warn.append(f"{len(absent)} clips of split {args.split!r} have no generated video in {args.pred} "
                            f"(e.g. {absent[:5]})")
            pairs = [c for c in pairs if c.clip_id in wanted]
            if not pairs:
                raise BenchError(f"no generated video in {args.pred} belongs to split {args.split!r} of {args.manifest}")
        for c in pairs:
            rec = by.get(c.clip_id)
            if rec is None:
                warn.append(f"clip {c.clip_id}: not in the manifest {args.manifest}")
                continue
            c.gt = c.gt or m.media_path(rec, "video")
            c.audio = m.media_path(rec, "audio") if rec.audio else None
            c.reference = choose_reference(m, rec)     # the same reference `run` gives methods and CSIM
            c.emotion, c.intensity, c.identity = rec.emotion, rec.intensity, rec.identity
    params: dict = {"psnr_mode": args.psnr_mode}
    for kv in args.param:
        k, _, v = kv.partition("=")
        params[k] = v
    if args.face_cropped:
        params["face_cropped"] = "true"
    wopts = options_from_args(args)
    if args.allow_unverified_weights:
        print("warning: --allow-unverified-weights: a weight file that matches neither the registry, the lock nor a "
              "--trust pin is used, and the metrics computed with it are marked unverified", file=sys.stderr)
    opts = MetricOptions(weights=wopts, device=args.device, params=params)
    metrics, unavailable = build_metrics(names, opts)
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory(prefix="moee-score-") as tmp:
        warnings.simplefilter("always")
        # KID/KVD read their features back from a feature cache: a temporary one for this command
        cache = FeatureStore(Path(tmp)) if any(getattr(m, "needs_feature_cache", False) for m in metrics) else None
        res = evaluate(pairs, metrics, fps=args.fps, size=tuple(args.size) if args.size else None, strict=args.strict,
                       cache=cache)
    out = res.to_json()
    for n, why in unavailable.items():
        out["metrics"][n] = None
        out["metrics"][f"{n}_reason"] = why
    bad = set(wopts.unverified_metrics())
    for mt in metrics:
        if mt.name in bad:
            for k in mt.keys:
                out["metrics"][f"{k}_unverified"] = "computed with unverified weights (digest not in the registry)"
    out["protocol"].update({**environment(args.device), "weights": wopts.provenance(),
                            "weights_by_metric": wopts.by_metric(), "unverified_weights": wopts.unverified_metrics(),
                            "pairing_warnings": warn,
                            "warnings": sorted({str(w.message) for w in caught}), "split": split_info})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    for w in warn + out["protocol"]["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{'metric':<24}{'value':>14}")
    for k, v in out["metrics"].items():
        if k.endswith(("_reason", "_warning", "_unverified")):
            continue
        print(f"{k:<24}{('null' if v is None else f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
        if v is None and f"{k}_reason" in out["metrics"]:
            print(f"  ({out['metrics'][f'{k}_reason']})")
    failed = [c for c in out["clips"] if any(s != "ok" for s in c["status"].values())]
    print(f"{len(out['clips'])} clips, {len(failed)} with a failed metric; JSON -> {args.json}")
    return 0
