"""Per-file trust: the lock file of digests trusted on first use, and explicit ``--trust`` pins.

``weights.lock`` lives in the weights folder, beside the files it vouches for: by default
``~/.cache/moee-bench/weights/weights.lock`` (``$MOEE_BENCH_WEIGHTS/weights.lock``, or
``DIR/weights.lock`` for ``--weights-dir DIR``). It is JSON::

    {"version": 1, "files": {"arcface_x": {"file": "x.pth", "sha256": "...", "source": "...", "locked": "2026-..."}}}

An entry is written only for a registry entry without a published digest, when its file is
fetched (``weights fetch`` or fetch on first use) or explicitly adopted with ``weights fetch``;
every later load must match it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights.specs import get_spec, is_full_digest

LOCK_NAME = "weights.lock"


def lock_path(folder: str | Path) -> Path:
    """The lock file of a weights folder."""
    return Path(folder) / LOCK_NAME


def read_lock(folder: str | Path) -> dict[str, dict]:
    """Name -> lock entry of the folder's ``weights.lock`` (empty when there is none)."""
    p = lock_path(folder)
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text())
        files = data["files"]
        if not isinstance(files, dict) or not all(is_full_digest(v.get("sha256")) for v in files.values()):
            raise ValueError("entries need a full sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"the lock file {p} is not valid ({type(e).__name__}: {e}); fix or delete it "
                           f"(its entries are then trusted again on the next fetch)") from None
    return files


def write_lock(folder: str | Path, name: str, file: str, sha256: str, source: str) -> Path:
    """Record ``name -> sha256`` in the folder's lock file (atomic replace; other entries kept)."""
    if not is_full_digest(sha256):
        raise WeightsError(f"refusing to lock {name!r} with {sha256!r}: not a full sha256")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = read_lock(folder)
    files[name] = {"file": file, "sha256": sha256, "source": source,
                   "locked": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    p = lock_path(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".weights.lock.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "files": dict(sorted(files.items()))}, f, indent=1)
            f.write("\n")
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return p


def parse_trust(values: list[str] | None) -> dict[str, str]:
    """``["NAME=SHA256", ...]`` (``--trust``) -> name -> digest; names must be registered, digests full."""
    out: dict[str, str] = {}
    for v in values or []:
        name, eq, digest = v.partition("=")
        name, digest = name.strip(), digest.strip().lower()
        if not eq or not is_full_digest(digest):
            raise WeightsError(f"--trust {v!r}: expected NAME=SHA256 with a full 64-hex-digit sha256")
        get_spec(name)
        out[name] = digest
    return out
