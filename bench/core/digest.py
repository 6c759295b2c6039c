"""The one file hasher: sha256 of a file's bytes, and its per-process memo (weights, videos, audio, checkpoints)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Full sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


_MEMO: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """:func:`sha256_file`, memoised on (path, size, mtime) so that a multi-GB file is hashed once per process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        _MEMO[key] = sha256_file(path)
    return _MEMO[key]
