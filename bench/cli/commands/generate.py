"""``moee-bench generate``: generate a dataset split's videos with one method (resumable, no scoring)."""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import fps_arg, nonneg_int_arg, positive_int_arg, size_hxw_arg

    p = sub.add_parser("generate", help="generate a split's videos with one method (only missing ones; resumable)",
                       description="Generate <out>/<clip_id>.mp4 for every clip of a split with a registered method (an id that "
                                   "is not a plain file name is escaped, e.g. `a b` -> a=20b.mp4); "
                                   "a sidecar <clip_id>.json records timing and normalisation. Finished clips are "
                                   "skipped on re-runs (the rule of `run`: same method config, seed, fps, size and "
                                   "emotion, same reference, unchanged video); a failed clip is recorded and the run "
                                   "goes on.")
    p.add_argument("--method", required=True, help="registered method name (moee-bench weights/methods: see README)")
    p.add_argument("--manifest", help="dataset manifest (default: the sample dataset under moee_bench_runs/sample)")
    p.add_argument("--split", default="test", help="a split recorded in the manifest by `data split` (default test; "
                                                   "`all`: every clip)")
    p.add_argument("--out", required=True, help="output folder for the videos")
    p.add_argument("--checkpoint", help="passed to the method config as `checkpoint` (moee-ref)")
    p.add_argument("--method-config", help="TOML file with the method's config table")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="method config, repeatable")
    p.add_argument("--seed", type=nonneg_int_arg, default=0)
    p.add_argument("--fps", type=fps_arg, default=25.0)
    p.add_argument("--size", type=size_hxw_arg, help="HxW output size, even (default: the method's native size)")
    p.add_argument("--emotion", help="generate every clip with this emotion label instead of the clip's own")
    p.add_argument("--limit", type=positive_int_arg, help="only the first N clips of the split")
    p.add_argument("--device", help="passed to the method config as `device`")
    p.add_argument("--fail-fast", action="store_true")
    p.add_argument("--allow-identity-overlap", action="store_true",
                   help="generate with a checkpoint on identities it was trained on (refused by default; recorded)")
    p.add_argument("--dry-run", action="store_true",
                   help="print, per clip, what would run (for external methods: the exact argv, cwd and config files) "
                        "without generating")
    p.set_defaults(func=_run)


def _method_config(args: argparse.Namespace) -> dict:
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.values import parse_kv

    cfg: dict = {}
    if args.method_config:
        try:
            with open(args.method_config, "rb") as fh:
                cfg.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise BenchError(f"--method-config {args.method_config}: {e}") from None
    cfg.update(parse_kv(args.config, "--config"))
    if args.checkpoint:
        cfg["checkpoint"] = args.checkpoint
    if args.device:
        cfg["device"] = args.device
    return cfg


def _run(args: argparse.Namespace) -> int:
    from moee_bench.baselines.registry import build_method
    from moee_bench.bench.core import exitcodes
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.digest import file_digest
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.paths import (atomic_write, check_output_dir, clean_stale_temps, resolve_inside,
                                             safe_name)
    from moee_bench.bench.core.splits import select_split, split_record
    from moee_bench.bench.suite.runner import (build_request, config_hash, generate_clips, reference_record,
                                               training_check)

    from moee_bench.baselines.registry import method_class

    try:
        method_class(args.method)
    except KeyError as e:
        raise BenchError(e.args[0]) from None
    size = args.size
    if size is not None and (size[0] % 2 or size[1] % 2):
        raise BenchError(f"--size {size[0]}x{size[1]}: must be even (H.264 yuv420p)")
    out = check_output_dir(args.out, "--out")
    cfg = _method_config(args)
    if args.manifest:
        manifest = load_manifest(args.manifest)
    else:
        from moee_bench.bench.suite.sample import ensure_sample

        manifest = load_manifest(ensure_sample(Path("moee_bench_runs") / "sample"))
    clips = select_split(manifest, args.split)
    split = split_record(manifest, args.split, clips)
    clips = clips[: args.limit] if args.limit else clips
    emotion = parse_emotion(args.emotion, compounds=manifest.compounds, keep_outside=True) if args.emotion else None
    method = build_method(args.method, cfg)
    check = training_check(method, split, allow=args.allow_identity_overlap)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)                      # leftovers of a killed write (never a clip)
    done = skipped = 0
    failures: list[str] = []
    unsupported: dict[str, str] = {}
    t0 = time.perf_counter()
    if args.dry_run:
        for clip in clips:
            why = method.skip_reason(emotion or clip.emotion)
            if why:
                unsupported[clip.clip_id] = why
                continue
            _print_plan(method, build_request(manifest, clip, resolve_inside(out, f"{safe_name(clip.clip_id)}.mp4"), out,
                                              seed=args.seed, fps=args.fps, size=size, emotion=emotion))
        clips = []
    chash = config_hash(args.method, method.version, cfg, seed=args.seed, fps=args.fps, size=size,
                        emotion=args.emotion)

    def plan(clip):
        video = resolve_inside(out, f"{safe_name(clip.clip_id)}.mp4")
        req = build_request(manifest, clip, video, out, seed=args.seed, fps=args.fps, size=size, emotion=emotion)
        sidecar = video.with_suffix(".json")
        prev = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        if prev and "config_hash" not in prev:
            print(f"  {clip.clip_id}: its sidecar predates the reuse record (config hash, sha256): generated again")
        if prev.get("config_hash") != chash:
            return req, None
        return req, {"status": "ok", "sha256": prev.get("sha256"), "reference": prev.get("reference_record")}

    for step in generate_clips(method, clips, plan, emotion=emotion, fail_fast=args.fail_fast):
        if step.status == "skipped":
            unsupported[step.clip.clip_id] = step.reason
        elif step.status == "reused":
            skipped += 1
        elif step.result is None:
            failures.append(f"{step.clip.clip_id}: {step.status}: {step.reason}")
            print(f"  {step.clip.clip_id}: {step.status}: {(step.reason.splitlines() or [''])[0]}")
        else:
            req, res = step.request, step.result
            record = {"clip_id": req.clip_id, "method": {**method.describe(), **check}, "seconds": res.seconds,
                      "n_frames": res.n_frames, "seed": args.seed,
                      "emotion": req.emotion.to_dict() if req.emotion else None,
                      "normalisation": res.normalisation, "reference": req.ref_source,
                      "reference_file": str(req.ref_image), "split": {k: split[k] for k in ("name", "hash", "manifest_hash")},
                      # what the reuse rule (bench.suite.runner.reusable) checks on a re-run
                      "config_hash": chash, "sha256": file_digest(req.out_path), "reference_record": reference_record(req)}
            with atomic_write(req.out_path.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(record, indent=1, default=str))
            done += 1
            print(f"  {req.clip_id}: {res.n_frames} frames in {res.seconds:.1f} s")
    if failures:
        with atomic_write(out / "generate_failures.json") as tmp:
            tmp.write_text(json.dumps(failures, indent=1))
    if unsupported:
        with atomic_write(out / "generate_skipped.json") as tmp:
            tmp.write_text(json.dumps(unsupported, indent=1))
    if args.dry_run:
        print(f"{args.method}: dry run over {len(clips) - len(unsupported)} clips of split {split['name']!r} "
              f"(split hash {split['hash'][:12]}); nothing generated")
        _print_unsupported(unsupported)
        return 0
    print(f"{args.method}: {done} generated, {skipped} already done, {len(failures)} failed, {len(unsupported)} skipped "
          f"({time.perf_counter() - t0:.1f} s); split {split['name']!r} (hash {split['hash'][:12]}); videos in {out}")
    _print_unsupported(unsupported)
    for f in failures[:20]:
        print(f"  failed {f}")
    return exitcodes.FAILED_CLIPS if failures else exitcodes.OK


def _print_unsupported(unsupported: dict[str, str]) -> None:
    from collections import Counter

    for why, n in Counter(unsupported.values()).items():
        print(f"  skipped {n} clips: {why}")


def _print_plan(method, req) -> None:
    """One clip of ``--dry-run``: the external command (argv, cwd, config files) or the request of a built-in method."""
    plan = getattr(method, "plan", None)
    if plan is None:
        print(f"  {req.clip_id}: {method.name} runs in this process (ref {req.ref_image}, audio {req.audio}, "
              f"emotion {req.emotion.label if req.emotion else None}) -> {req.out_path}")
        return
    p = plan(req)
    print(f"== {req.clip_id} -> {req.out_path}")
    print(f"cwd: {p['cwd']}")
    print("argv: " + json.dumps(p["argv"]))
    print(f"runs: {p['command']} (through the seeding launcher, flags {p['flags'] or 'none'})")
    if p["env"]:
        print("env: " + " ".join(f"{k}={v}" for k, v in p["env"].items()))
    print(f"inputs and configs written to {p['work']} (kept for inspection)")
    for path, text in p["configs"].items():
        print(f"config {path}:")
        print("  " + text.rstrip().replace("\n", "\n  "))
