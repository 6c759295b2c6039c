"""Path helpers: the one clip-id -> file-name function, reads kept inside a dataset root, writes
kept inside an output folder and made atomic, and output paths checked before any work starts."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from moee_bench.bench.core.errors import BenchError, ClipError, PathEscapeError

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
MAX_STEM = 120            # bytes; longer names are cut and suffixed with "~" + a hash (file systems allow 255)
_TEMP_RE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")     # atomic_write's temporary files
STALE_TEMP_S = 3600.0     # a temp file untouched this long is a leftover of a killed write


class OutputError(BenchError):
    """An output path cannot be written (a folder where a file is wanted, read-only, full disk...)."""


ESC = "="                  # escape character of file names (not %: ffmpeg's image2 and printf patterns use it)


def safe_name(name: str) -> str:
    """The file-name stem of a clip id, method label or suite name: injective, one path component.

    Names made only of ASCII letters, digits, ``-``, ``_`` and ``.`` (not starting with ``.``) are
    kept as they are, so a folder of ``<clip_id>.mp4`` keeps working. Every other byte of the UTF-8
    name, ``=`` included, becomes ``=XX`` (as does a leading ``.``), so ``"a b"``, ``"a_b"`` and
    ``"a/b"`` get three different files (``a=20b``, ``a_b``, ``a=2Fb``) and :func:`name_from_stem`
    reverses the mapping. Names longer than :data:`MAX_STEM` bytes are cut and end in ``~`` plus 16
    hex digits of their sha256 (``~`` appears in no other stem), so the mapping stays injective.
    """
    out = []
    for i, b in enumerate(name.encode("utf-8")):
        c = chr(b)
        out.append(c if c in _PLAIN and not (i == 0 and c == ".") else f"{ESC}{b:02X}")
    stem = "".join(out)
    if stem and len(stem) <= MAX_STEM:
        return stem
    cut = stem[: MAX_STEM - 20]
    cut = cut[: cut.rfind(ESC)] if ESC in cut[-2:] else cut       # never split an =XX escape
    return f"{cut}~{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


def name_from_stem(stem: str) -> str | None:
    """The name whose :func:`safe_name` is ``stem``, or None when ``stem`` is not such a stem (or a cut one)."""
    if "~" in stem or not stem:
        return None
    try:
        raw = bytearray()
        i = 0
        while i < len(stem):
            if stem[i] == ESC:
                raw.append(int(stem[i + 1:i + 3], 16))
                i += 3
            else:
                raw.append(ord(stem[i]))
                i += 1
        name = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return name if safe_name(name) == stem else None


def clip_id_of_file(path: str | Path, known: set[str] | frozenset[str] | None = None) -> str:
    """The clip id a file stands for: its stem when that is a ``known`` id, else the decoded stem
    (a file written by moee-bench, see :func:`safe_name`), else the stem as it is (a user's own name)."""
    stem = Path(path).stem
    if known is not None and stem in known:
        return stem
    return name_from_stem(stem) or stem


def _plain_component(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0" + ESC)


def clip_file_candidates(folder: str | Path, clip_id: str, ext: str = ".mp4") -> list[Path]:
    """Where a clip's file may be in ``folder``: ``<safe_name(id)><ext>`` (written by moee-bench) and
    ``<clip_id><ext>`` (a user's own folder) when the id is a plain file name without ``=``.

    No two ids share a candidate, so a file is never taken for another clip's."""
    folder = Path(folder)
    out = [folder / f"{safe_name(clip_id)}{ext}"]
    if _plain_component(clip_id) and f"{clip_id}{ext}" != out[0].name and len(clip_id.encode()) < 250:
        out.append(folder / f"{clip_id}{ext}")
    return out


def find_clip_file(folder: str | Path, clip_id: str, ext: str = ".mp4") -> Path | None:
    """The existing file of ``clip_id`` in ``folder`` (see :func:`clip_file_candidates`), or None.
    Two candidates that both exist and differ are an error: which one is the clip is unknowable."""
    found = [p for p in clip_file_candidates(folder, clip_id, ext) if p.is_file()]
    if len(found) > 1 and not os.path.samefile(found[0], found[1]):
        raise ClipError(clip_id, f"two files in {folder} stand for it: {found[0].name!r} and {found[1].name!r}; "
                        "remove one")
    return found[0] if found else None


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_write` (a hidden ``.NAME.XXXX.tmp.EXT``)."""
    return bool(_TEMP_RE.match(Path(path).name))


def clean_stale_temps(folder: str | Path, *, older_than: float = STALE_TEMP_S) -> list[Path]:
    """Delete :func:`atomic_write` leftovers in ``folder`` untouched for ``older_than`` seconds (a killed
    write); younger ones may belong to a process still writing. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        try:
            if is_temp_file(p) and p.is_file() and now - p.stat().st_mtime > older_than:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


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


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        if p.is_symlink():            # a dangling link: writing through it would go somewhere unchecked
            raise OutputError(f"{p} is a broken symbolic link")
        p = p.parent
    return p


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what} {p} is a file, not a folder")
    base = _nearest_existing(p.absolute())
    if not base.is_dir():
        raise OutputError(f"{what} {p} cannot be created: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {p} is not writable ({base} is read-only for this user)")
    return p


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Refuse, before any work, an output file path that is a folder or whose folder cannot be written."""
    p = Path(path).expanduser()
    if not str(path) or p.is_dir() or str(path).endswith(("/", os.sep)):
        raise OutputError(f"{what} {p} is a folder; give a file name")
    if _special(p):                        # /dev/null, a pipe: written in place
        if not os.access(p, os.W_OK):
            raise OutputError(f"{what} {p} is not writable")
        return p
    check_output_dir(p.parent if str(p.parent) else Path("."), f"the folder of {what} {p}")
    return p


def _special(p: Path) -> bool:
    """An existing path that is neither a regular file nor a folder (a device such as /dev/null, a pipe)."""
    return p.exists() and not p.is_file() and not p.is_dir()


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block finishes.

    A process killed inside the block leaves ``path`` as it was (old content or absent). A symbolic
    link is followed (the file it points to is replaced, the link kept); a device or pipe (``/dev/null``)
    is written in place, never replaced by a file.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if _special(path):
        fd, tmp = tempfile.mkstemp(prefix=".moee-bench-", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as src, open(path, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
        finally:
            os.unlink(tmp)
        return
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


def write_text_atomic(path: str | Path, text: str, what: str = "output file") -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`; a failed write (full disk,
    permissions) leaves the previous file intact and raises :class:`OutputError` naming the path."""
    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {what} {path}: {e.strerror or e}; the previous file (if any) is unchanged") from None
    return path
