"""``moee-bench data``: build the sample dataset, import datasets, validate manifests, make splits."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from moee_bench.bench.cli.options import nonneg_int_arg

    p = sub.add_parser("data", help="datasets: make-sample, import, validate, split",
                       description="Dataset commands. Manifests are JSON files with a schema version and a content hash.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    s = dsub.add_parser("make-sample", help="generate the built-in sample dataset (offline, deterministic)")
    s.add_argument("out", help="output folder (manifest.json, videos/, audio/, refs/)")
    s.set_defaults(func=_make_sample)

    from moee_bench.bench.suite.importers import IMPORTERS

    i = dsub.add_parser("import", help="import a dataset from its own layout into a manifest",
                        description="KIND: " + ", ".join(IMPORTERS) + ". See bench/importers.py for each layout.")
    i.add_argument("kind", choices=sorted(IMPORTERS))
    i.add_argument("root", help="dataset root folder")
    i.add_argument("--out", required=True, help="manifest file to write")
    i.add_argument("--csv", help="folder: the CSV listing path, emotion[, audio, identity, text, ref_image, split]")
    i.add_argument("--clip-list", help="hdtf: official clip list (one file name per line)")
    i.add_argument("--labels-csv", help="dh-faceemovid-150: labels CSV (path, emotion, identity[, text])")
    i.add_argument("--pattern", help="dh-faceemovid-150: file-stem regex with named groups subject, emotion, clip")
    i.set_defaults(func=_import)

    v = dsub.add_parser("validate", help="check every clip; report problems by clip id")
    v.add_argument("manifest")
    v.add_argument("--strict", action="store_true", help="any problem is fatal (exit 3, failed clips)")
    v.add_argument("--out", help="write a cleaned manifest without the bad clips")
    v.add_argument("--rehash", action="store_true", help="accept a hand-edited manifest and rewrite its content hash")
    v.set_defaults(func=_validate)

    sp = dsub.add_parser("split", help="identity-disjoint train/val/test split, written into a new manifest",
                         description="Write a new manifest whose clips carry their split (each identity in one split), "
                                     "with the seed, ratios and the assignment hash recorded in it. Pass that manifest "
                                     "to generate, train, run (suite `dataset`), score --manifest and throughput.")
    sp.add_argument("manifest")
    sp.add_argument("--out", help="manifest to write (default: the input manifest, rewritten in place)")
    sp.add_argument("--seed", type=nonneg_int_arg, default=0)
    sp.add_argument("--ratios", default="train=0.8,val=0.1,test=0.1", help="e.g. train=0.8,val=0.1,test=0.1")
    sp.add_argument("--official", help="official split: CSV with columns clip_id, split (wins over the seed)")
    sp.set_defaults(func=_split)


def _make_sample(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.paths import check_output_dir
    from moee_bench.bench.suite.sample import make_sample

    check_output_dir(args.out)
    t = time.perf_counter()
    path = make_sample(args.out, verbose=True)
    print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
    return 0


def _import(args: argparse.Namespace) -> int:
    from moee_bench.bench.core import exitcodes
    from moee_bench.bench.core.paths import check_output_file
    from moee_bench.bench.suite.importers import IMPORTERS
    from moee_bench.bench.core.values import existing_dir

    root = existing_dir(args.root, "dataset root")
    check_output_file(args.out, "--out")
    kw: dict = {}
    if args.kind == "folder":
        if not args.csv:
            print("moee-bench: error: `data import folder` needs --csv", file=sys.stderr)
            return exitcodes.USAGE
        kw["csv_path"] = Path(args.csv)
    if args.kind == "hdtf" and args.clip_list:
        kw["clip_list"] = Path(args.clip_list)
    if args.kind == "dh-faceemovid-150":
        if args.labels_csv:
            kw["labels_csv"] = Path(args.labels_csv)
        if args.pattern:
            kw["pattern"] = args.pattern
    m = IMPORTERS[args.kind](root, **kw)
    path = m.save(args.out)
    print(f"imported {len(m.clips)} clips from {root} ({args.kind}) -> {path}")
    for label, d in (m.meta.get("outside_taxonomy") or {}).items():
        print(f"  {d['count']} clips labelled {label!r} outside the taxonomy: {d['reason']}")
    refs = m.meta.get("references") or {}
    if refs:
        print("  reference portraits: " + ", ".join(f"{k} {v}" for k, v in refs.items()))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from moee_bench.bench.core import exitcodes
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.paths import check_output_file
    from moee_bench.bench.suite.validate import validate_manifest

    if args.out:
        check_output_file(args.out, "--out")
    unreadable: dict[str, str] = {}
    m = load_manifest(args.manifest, verify_hash=not args.rehash, bad_clips=unreadable)
    if args.rehash and not unreadable:
        m.save(args.manifest)
        print(f"rewrote the content hash of {args.manifest}")
    elif unreadable:
        print(f"warning: {len(unreadable)} clip entries cannot be read; the content hash was not checked"
              + (" nor rewritten" if args.rehash else ""))
    rep = validate_manifest(m)
    for cid, why in unreadable.items():
        print(f"clip {cid}: {why}")
    for cid, probs in rep.problems.items():
        for p in probs:
            print(f"clip {cid}: {p}")
    for cid, notes in rep.notes.items():
        for n in notes:
            print(f"note: clip {cid}: {n}")
    print(f"{len(rep.ok)} clips ok, {len(rep.problems) + len(unreadable)} with problems")
    if args.out:
        m.with_clips(rep.ok).save(args.out)
        print(f"wrote {args.out} without the bad clips")
    if (rep.problems or unreadable) and args.strict:
        return exitcodes.FAILED_CLIPS
    return exitcodes.OK


def _split(args: argparse.Namespace) -> int:
    import csv

    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.references import assign_references
    from moee_bench.bench.core.splits import apply_split, make_split

    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.paths import check_output_file
    from moee_bench.bench.core.values import finite_value, parse_kv

    check_output_file(args.out or args.manifest, "--out")
    m = load_manifest(args.manifest)
    try:
        ratios = {k: finite_value(v, f"--ratios {k}", 0.0)
                  for k, v in parse_kv(args.ratios.split(","), "--ratios").items()}
    except ValueError as e:
        raise BenchError(str(e)) from None
    if not sum(ratios.values()) > 0:
        raise BenchError(f"--ratios {args.ratios}: the ratios sum to 0")
    official = None
    if args.official:
        with open(args.official, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"clip_id", "split"} <= set(rows[0]):
            raise BenchError(f"--official {args.official}: needs the columns clip_id and split, has {sorted(rows[0])}")
        official = {r["clip_id"]: r["split"] for r in rows}
    split = make_split(m, seed=args.seed, ratios=ratios, official=official)
    out = apply_split(assign_references(m), split)
    target = args.out or args.manifest
    out.save(target)
    info = out.meta["split"]
    for name, ids in split["clips"].items():
        print(f"  {name}: {len(ids)} clips, {len(split['identities'][name])} identities")
    if info["identity_overlap"]:
        print(f"warning: the official split puts identities in several splits: {info['identity_overlap'][:10]}",
              file=sys.stderr)
    print(f"-> {target} (split hash {info['hash'][:12]}, manifest hash {out.content_hash()[:12]}); pass it as --manifest "
          "to generate, train, score and throughput, or as a suite's dataset")
    return 0
