"""``moee-bench cache``: the persistent feature cache of ``score`` (GT features, content-keyed).

``cache info`` shows where it is, how many feature files it holds and their size; ``cache prune`` deletes
entries unused for ``--older-than`` days, then the least recently used ones down to ``--max-size``
(neither: every entry). ``--dir`` names another cache folder (a store's ``features/`` folder, for instance);
the default is ``$XDG_CACHE_HOME/moee-bench/features`` (``~/.cache/moee-bench/features``). The per-frame face
record kept there (``faces.sqlite``: MTCNN detections and dlib landmarks by frame content) is shown too, and
pruned by ``--older-than`` (frames written before) or emptied by a prune with no option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from moee_bench.bench.core import exitcodes
from moee_bench.bench.core.errors import BenchError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="the persistent feature cache of score: info | prune", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["info", "prune"])
    p.add_argument("--dir", help="cache folder (default: $XDG_CACHE_HOME/moee-bench/features)")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="prune: entries unused for more than DAYS days")
    p.add_argument("--max-size", type=float, metavar="GB", help="prune: least recently used entries down to GB gigabytes")
    p.set_defaults(func=_run)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _run(args: argparse.Namespace) -> int:
    from moee_bench.bench.core.face_record import FILENAME as FACES_FILE, FaceRecord
    from moee_bench.bench.suite.store import FeatureStore, default_feature_cache_dir

    folder = Path(args.dir) if args.dir else default_feature_cache_dir()
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"--dir {folder} is a file, not a folder")
    for flag, v in (("--older-than", args.older_than), ("--max-size", args.max_size)):
        if v is not None and not v >= 0:
            raise BenchError(f"{flag} must be a number >= 0, got {v}")
    if args.action == "info" and (args.older_than is not None or args.max_size is not None):
        raise BenchError("--older-than and --max-size are options of `cache prune`")
    store = FeatureStore(folder)
    record = FaceRecord(folder) if (folder / FACES_FILE).is_file() else None
    if args.action == "prune":
        n, freed = store.prune(max_bytes=None if args.max_size is None else int(args.max_size * 1024 ** 3),
                               older_than_s=None if args.older_than is None else args.older_than * 86400.0)
        print(f"pruned {n} feature files ({_human(freed)}) from {folder}")
        if record is not None and args.max_size is None:
            rows = record.prune(None if args.older_than is None else args.older_than * 86400.0)
            print(f"pruned {rows} frames from the face record {record.path}")
        elif record is not None:
            print(f"face record {record.path} left as it is: --max-size prunes feature files "
                  "(prune the record with --older-than, or with no option to empty it)")
    n, size = store.size()
    print(f"{folder}: {n} feature files, {_human(size)}")
    if record is not None:
        rows, size = record.size()
        print(f"{record.path}: {rows} frames (MTCNN detections and dlib landmarks), {_human(size)}")
        record.close()
    return exitcodes.OK
