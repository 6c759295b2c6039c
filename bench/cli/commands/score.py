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
import tempfile
import warnings
from pathlib import Path

from moee_bench.bench.cli.commands._metric_flags import add_metric_flags, metric_params
from moee_bench.bench.core.errors import BenchError, ClipError
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
    add_metric_flags(p)
    p.set_defaults(func=_score)


def _pairs(args: argparse.Namespace, pred: Path,
           gt: Path | None) -> tuple[list, list[str], list[str], dict[str, str], dict | None]:
    """The clips to score, warnings, the manifest's (split's) clips that have no generated video, clips
    whose manifest entry cannot be used (id -> reason), and the split's record (``--split``)."""
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.references import choose_reference
    from moee_bench.metrics.core.evaluate import ClipInput, clip_files, pair_folders

    if not args.manifest:
        pairs, warn = pair_folders(pred, gt)
        return pairs, warn, [], {}, None
    m = load_manifest(args.manifest)
    by = m.by_id()
    split_info = None
    preds, warn = clip_files(pred, known=set(by))
    gts, w = clip_files(gt, known=set(by)) if gt else ({}, [])
    warn += w
    if args.split:
        from moee_bench.bench.core.splits import select_split, split_record

        chosen = select_split(m, args.split)
        split_info = split_record(m, args.split, chosen)
        wanted = {c.clip_id for c in chosen}
        outside = sorted(set(preds) - wanted)
        if outside:
            warn.append(f"{len(outside)} generated videos are not clips of split {args.split!r} and are not scored "
                        f"(e.g. {outside[:5]})")
        by = {cid: rec for cid, rec in by.items() if cid in wanted}
        preds = {cid: p for cid, p in preds.items() if cid in wanted}
    pairs, missing, broken = [], [], {}
    for cid, rec in by.items():
        if cid not in preds:
            missing.append(cid)
            warn.append(f"clip {cid}: in the {'split' if args.split else 'manifest'} but no generated video in {pred} "
                        "(missing, not scored)")
            continue
        try:
            c = ClipInput(cid, preds[cid], gts.get(cid) or m.media_path(rec, "video"))
            c.audio = m.media_path(rec, "audio") if rec.audio else None
            c.reference = choose_reference(m, rec)     # the same reference `run` gives methods and CSIM
        except ClipError as e:
            broken[cid] = e.reason
            continue
        c.emotion, c.intensity, c.identity = rec.emotion, rec.intensity, rec.identity
        pairs.append(c)
    for cid in sorted(set(preds) - set(by)):
        warn.append(f"clip {cid}: not in the manifest {args.manifest}"
                    + ("" if cid in gts else " (GT-based metrics skipped)"))
        pairs.append(ClipInput(cid, preds[cid], gts.get(cid)))
    if args.split and not pairs and not broken:
        raise BenchError(f"no generated video in {args.pred} belongs to split {args.split!r} of {args.manifest}")
    return pairs, warn, missing, broken, split_info


def _score(args: argparse.Namespace) -> int:
    from moee_bench.bench.cli import exitcodes
    from moee_bench.bench.core.paths import check_output_file, write_text_atomic
    from moee_bench.bench.core.values import check_device, existing_dir
    from moee_bench.bench.core.provenance import environment
    from moee_bench.bench.suite.store import FeatureStore
    from moee_bench.metrics.core.evaluate import ClipOutcome, evaluate
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics, check_params, check_size

    # everything the user gave is checked before any video is decoded
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not names:
        raise BenchError("--metrics is empty")
    if len(set(names)) != len(names):
        raise BenchError(f"--metrics names a metric twice: {args.metrics}")
    check_device(args.device)
    if args.split and not args.manifest:
        raise BenchError("--split needs --manifest (the split is recorded in the manifest)")
    out_path = check_output_file(args.json, "--json")
    pred = existing_dir(args.pred, "--pred")
    gt = existing_dir(args.gt, "--gt")
    existing_dir(args.weights_dir, "--weights-dir")
    params: dict = {"psnr_mode": args.psnr_mode} if "psnr" in names else {}
    params.update(metric_params(args))
    params = check_params(names, params)
    refuse_unsupplied(names, gt=args.gt is not None, manifest=args.manifest is not None)
    size = tuple(args.size) if args.size else None
    pairs, warn, missing, broken, split_info = _pairs(args, pred, gt)
    if not pairs and not broken:
        raise BenchError(f"no .mp4 files to score in {args.pred}"
                         + (f" ({len(missing)} manifest clips missing)" if missing else ""))
    wopts = options_from_args(args)
    if args.allow_unverified_weights:
        print("warning: --allow-unverified-weights: a weight file that matches neither the registry, the lock nor a "
              "--trust pin is used, and the metrics computed with it are marked unverified", file=sys.stderr)
    opts = MetricOptions(weights=wopts, device=args.device, params=params, precision=args.precision)
    metrics, unavailable = build_metrics(names, opts)
    check_size(metrics, size)
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory(prefix="moee-score-") as tmp:
        warnings.simplefilter("always")
        # KID/KVD read their features back from a feature cache: a temporary one for this command
        cache = FeatureStore(Path(tmp)) if any(getattr(m, "needs_feature_cache", False) for m in metrics) else None
        res = evaluate(pairs, metrics, fps=args.fps, size=size, strict=args.strict, cache=cache)
    out = res.to_json()
    for cid, why in broken.items():        # unusable manifest entries (a path escaping the root...): failed, named
        res.clips.append(ClipOutcome(cid, status={n: "error" for n in names}, messages={n: why for n in names}))
        out["clips"].append(res.clips[-1].to_dict())
    for n, why in unavailable.items():
        out["metrics"][n] = None
        out["metrics"][f"{n}_reason"] = why
    out["protocol"]["precision"] = args.precision
    out["protocol"].update({**environment(args.device), "weights": wopts.provenance(),
                            "weights_by_metric": wopts.by_metric(), "unverified_weights": wopts.unverified_metrics(),
                            "pairing_warnings": warn, "missing_clips": missing, "split": split_info,
                            "warnings": sorted({str(w.message) for w in caught})})
    write_text_atomic(out_path, json.dumps(out, indent=1, default=float) + "\n", "--json")
    for w in warn + out["protocol"]["warnings"]:
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


MAKE_MANIFEST = ("moee-bench data import folder ROOT --csv clips.csv --out manifest.json (CSV columns: path, "
                 "emotion[, audio, identity, text, ref_image, split]), then --manifest manifest.json")


def refuse_unsupplied(names: list[str], *, gt: bool, manifest: bool) -> None:
    """Refuse, before anything is decoded, metrics whose indispensable input no option can supply: a target
    emotion without ``--manifest``; a GT video without ``--gt`` or ``--manifest``; a reference image without
    either (``score`` takes it from the manifest, else the GT's first frame). Names what is missing and the
    command that supplies it (:class:`BenchError`, exit 2)."""
    from moee_bench.metrics.core.registry import metric_classes

    problems = []
    for name, cls in metric_classes(names).items():
        if cls is None:
            continue
        if cls.needs_emotion and not manifest:
            problems.append(f"metric {name} needs a target emotion (label) per clip and no --manifest gives one; "
                            f"make one: {MAKE_MANIFEST}")
        if cls.needs_gt and not (gt or manifest):
            problems.append(f"metric {name} needs ground-truth videos: give --gt DIR (or --manifest)")
        if cls.needs_ref and not (gt or manifest):
            problems.append(f"metric {name} needs a reference image: give --manifest (its ref_image) or --gt DIR "
                            "(the GT's first frame, warned)")
    if problems:
        raise BenchError("; ".join(problems) + "; nothing was decoded")


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
