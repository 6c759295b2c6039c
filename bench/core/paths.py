"""Path helpers that keep every read inside a dataset root and every write inside an output folder."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from moee_bench.bench.core.errors import PathEscapeError


def resolve_inside(root: str | Path, rel: str | Path, *, clip_id: str | None = None, what: str = "path") -> Path:
    """Join ``rel`` to ``root`` and refuse results outside ``root`` (``..``, absolute paths, symlink escapes)."""
    root_p = Path(root).resolve()
    rel_s = str(rel)
    if not rel_s:
        raise PathEscapeError(clip_id, f"empty {what}")
    if Path(rel_s).is_absolute():
        raise PathEscapeError(clip_id, f"{what} {rel_s!r} is absolute; manifest paths must be relative to the dataset root {root_p}")
    full = (root_p / rel_s).resolve()
    if full != root_p and root_p not in full.parents:
        raise PathEscapeError(clip_id, f"{what} {rel_s!r} escapes the dataset root {root_p}")
    return full


def safe_name(name: str) -> str:
    """A file-system-safe single path component derived from ``name`` (clip ids, method names)."""
    out = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name)
    out = out.lstrip(".")
    if not out:
        raise ValueError(f"cannot make a file name from {name!r}")
    return out


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block finishes.

    A process killed inside the block leaves ``path`` as it was (old content or absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        yield tmp_p
        if tmp_p.exists():
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_p, 0o666 & ~umask)          # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_p, path)
    finally:
        if tmp_p.exists():
            tmp_p.unlink()
