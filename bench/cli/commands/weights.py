"""``moee-bench weights``: list, locate, verify and fetch the registered checkpoints.

Every entry has a full published sha256 or is trusted on first use: ``weights fetch NAME``
downloads it (or takes the file already in place) and records its digest in ``weights.lock``
beside it; every later load must match. ``--trust NAME=SHA256`` pins one exact file instead.
"""

from __future__ import annotations

import argparse

from moee_bench.bench.core import exitcodes
from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.cli.options import add_weights_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="the weights registry: list | where NAME | verify [NAME...] | fetch NAME...",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list", "where", "verify", "fetch"])
    p.add_argument("names", nargs="*", metavar="NAME", help="registry names (see `weights list`)")
    p.add_argument("--all", action="store_true", help="fetch: every entry that can be downloaded")
    add_weights_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from moee_bench.bench.cli.options import options_from_args

    opts = options_from_args(args)
    wd = Path(opts.weights_dir) if opts.weights_dir else None
    if wd is not None and wd.exists() and not wd.is_dir():
        raise WeightsError(f"--weights-dir {wd} is a file, not a folder")
    if wd is not None and not wd.exists() and args.action != "fetch":
        raise WeightsError(f"--weights-dir {wd}: no such folder (`weights fetch` creates it; or fix the path)")
    if args.action == "list":
        return _list(opts)
    if args.action == "where":
        return _where(args.names, opts)
    if args.action == "verify":
        return _verify(args.names, opts)
    return _fetch(args.names, args.all, opts)


def _list(opts) -> int:
    from moee_bench.bench.core.weights import cache_dir, lock_path, locate, primary_dir, registry, search_dirs

    print(f"{'name':<30}{'sha256 (full) or trust on first use':<66}{'here':<6}file")
    for name, s in sorted(registry().items()):
        digest = s.sha256 or "trust on first use"
        here = "yes" if locate(name, opts.weights_dir) else "no"
        print(f"{name:<30}{digest:<66}{here:<6}{s.file}")
    print(f"cache: {cache_dir()}; missing files are fetched to {primary_dir(opts.weights_dir)}; "
          f"trust-on-first-use digests are kept in {lock_path(primary_dir(opts.weights_dir))} (beside the files)")
    print("search order: " + ", ".join(str(d) for d in search_dirs(opts.weights_dir)))
    print("digest sources: see sha256_source in bench/core/weights/catalog/*.toml")
    return 0


def _need(names: list[str], action: str) -> None:
    if not names:
        raise WeightsError(f"`weights {action}` needs at least one NAME (see `moee-bench weights list`)")


def _where(names: list[str], opts) -> int:
    from moee_bench.bench.core.weights import get_spec, locate, missing_message, primary_dir

    _need(names, "where")
    bad = 0
    for n in names:
        spec = get_spec(n)
        p = locate(n, opts.weights_dir)
        if p:
            print(p)
        else:
            bad += 1
            print(missing_message(spec, primary_dir(opts.weights_dir) / spec.file, "not fetched yet"))
    return exitcodes.USAGE if bad else exitcodes.OK


def _verify(names: list[str], opts) -> int:
    """Check every file that is here (nothing is downloaded); a named file that is missing is a failure."""
    from moee_bench.bench.core.weights import locate, registry, resolve

    bad = 0
    for n in names or sorted(registry()):
        if locate(n, opts.weights_dir) is None:
            print(f"{n}: missing")
            bad += bool(names)
            continue
        try:
            r = resolve(n, opts.weights_dir, pins=opts.trust, offline=True)
            print(f"{n}: {r.trust} ({r.path}, sha256 {r.sha256})")
        except WeightsError as e:
            print(f"{n}: FAILED: {e}")
            bad += 1
    return exitcodes.USAGE if bad else exitcodes.OK


def _fetch(names: list[str], every: bool, opts) -> int:
    """Download what is missing (verified, or locked on first use); a file already here is checked and,
    for an entry without a published digest, locked as it is."""
    from moee_bench.bench.core.weights import adopt, locate, registry, resolve

    if every:
        names = [n for n, s in sorted(registry().items()) if s.fetch and not s.packaged]
    _need(names, "fetch")
    for n in names:
        if locate(n, opts.weights_dir) is not None:
            r = adopt(n, opts.weights_dir, pins=opts.trust)
            verb = "found"
        else:
            r = resolve(n, opts.weights_dir, pins=opts.trust, offline=opts.offline, progress=opts.progress)
            verb = "fetched"
        print(f"{verb} {n} -> {r.path} (sha256 {r.sha256}, {r.trust}: {r.basis})")
    return 0
