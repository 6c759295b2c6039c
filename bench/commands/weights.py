"""``moee-bench weights``: list, locate, verify and fetch the registered checkpoints."""

from __future__ import annotations

import argparse
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from moee_bench.bench.core.errors import WeightsError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="the weights registry: list | where NAME | verify [NAME] | fetch NAME")
    p.add_argument("action", choices=["list", "where", "verify", "fetch"])
    p.add_argument("name", nargs="?", help="registry name (see `weights list`)")
    p.add_argument("--weights-dir", help="folder searched first (and where fetch writes)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench import exitcodes
    from moee_bench.bench.core.weights import get_spec, locate, registry, resolve, search_dirs

    wd = Path(args.weights_dir) if args.weights_dir else None
    if wd is not None and wd.exists() and not wd.is_dir():
        raise WeightsError(f"--weights-dir {wd} is a file, not a folder")
    if wd is not None and not wd.exists() and args.action != "fetch":
        raise WeightsError(f"--weights-dir {wd}: no such folder (create it and put the weight files there)")
    if args.action == "list":
        print(f"{'name':<20}{'file':<42}{'hash':<10}{'present':<9}used by / licence")
        for name, s in sorted(registry().items()):
            hash_state = "none" if not s.sha256 else ("partial" if s.hash_is_partial else "full")
            here = "yes" if locate(name, args.weights_dir) else "no"
            print(f"{name:<20}{s.file:<42}{hash_state:<10}{here:<9}{','.join(s.used_by)} / {s.licence}")
        print("search order: " + ", ".join(str(d) for d in search_dirs(args.weights_dir)))
        return 0
    if args.action in ("where", "fetch") and not args.name:
        raise WeightsError(f"`weights {args.action}` needs a NAME")
    if args.action == "where":
        s = get_spec(args.name)
        p = locate(args.name, args.weights_dir)
        print(p if p else f"missing: put {s.file} in {search_dirs(args.weights_dir)[0]} (from {s.url})")
        return exitcodes.OK if p else exitcodes.USAGE
    if args.action == "verify":
        names = [args.name] if args.name else sorted(registry())
        bad = 0
        for n in names:
            if locate(n, args.weights_dir) is None:
                print(f"{n}: missing")
                bad += args.name is not None
                continue
            try:
                r = resolve(n, args.weights_dir)
                print(f"{n}: ok ({r.path}, sha256 {r.sha256})")
            except WeightsError as e:
                print(f"{n}: FAILED: {e}")
                bad += 1
        return exitcodes.USAGE if bad else exitcodes.OK
    return _fetch(args.name, args.weights_dir)


def _fetch(name: str, weights_dir: str | None) -> int:
    from moee_bench.bench.core.paths import atomic_write
    from moee_bench.bench.core.weights import get_spec, search_dirs

    spec = get_spec(name)
    dest = search_dirs(weights_dir)[0] / spec.file
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(spec.url, timeout=30) as resp, atomic_write(dest) as tmp:
            with open(tmp, "wb") as f:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    h.update(block)
                    f.write(block)
            if not spec.hash_matches(h.hexdigest()):
                raise WeightsError(f"downloaded {spec.file} has sha256 {h.hexdigest()}, expected {spec.sha256}; discarded")
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise WeightsError(f"cannot download {spec.url} ({e}); this machine may have no internet. Download it "
                           f"elsewhere and put it at {dest}") from None
    print(f"fetched {name} -> {dest} (sha256 {h.hexdigest()})")
    return 0
