"""The ``ffmpeg`` binary: imageio-ffmpeg's static build, called by its absolute path.

No system ffmpeg is assumed, and nothing is linked into a shared folder (a link left in the user's
cache dangles once the venv that held the binary is deleted). Our own code runs
``[ffmpeg_exe(), ...]`` with every file as :func:`ffmpeg_path` gives it (absolute: never a protocol or an
option). A reference package that shells out to whatever ``ffmpeg`` PATH finds gets
:func:`ffmpeg_env` as its subprocess environment: PATH led by a temporary folder private to this
process (removed at exit) that holds an ``ffmpeg`` link to the binary.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from moee_bench.bench.core.errors import BenchError
# imported inside the functions that use them (seconds to import, or optional): imageio_ffmpeg


def ffmpeg_path(path: str | os.PathLike) -> str:
    """``path`` as handed to FFmpeg (PyAV or the ffmpeg binary): absolute, so that no file name is ever read as a
    protocol (``concat:x.mp4``, ``http:...``) or, on the command line, as an option (``-i``)."""
    return os.path.abspath(os.fspath(path))


def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg binary (imageio-ffmpeg's; ``$IMAGEIO_FFMPEG_EXE`` overrides it)."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise BenchError(f"no ffmpeg binary: install imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE ({e})") from None
    found = shutil.which(exe)
    if not found:
        raise BenchError(f"the ffmpeg binary {exe} (imageio-ffmpeg) is missing or not executable; reinstall imageio-ffmpeg")
    return str(Path(found).resolve())


@lru_cache(maxsize=1)
def _private_bin() -> str:
    d = tempfile.mkdtemp(prefix="moee-bench-ffmpeg-")
    atexit.register(shutil.rmtree, d, True)
    os.symlink(ffmpeg_exe(), os.path.join(d, "ffmpeg"))
    return d


def ffmpeg_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A subprocess environment (a copy of ``base`` or ``os.environ``) whose PATH finds our ``ffmpeg`` first."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = _private_bin() + os.pathsep + env.get("PATH", "")
    return env


def ensure_ffmpeg_on_path(cache_dir: str | Path | None = None) -> str:
    """Put our ``ffmpeg`` first on this process's PATH (for packages that run ``ffmpeg`` by name) and
    return its absolute path. The folder is private to this process and removed at exit; ``cache_dir``
    is ignored (kept for callers of the old signature). Prefer :func:`ffmpeg_exe` / :func:`ffmpeg_env`."""
    d = _private_bin()
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != d:
        os.environ["PATH"] = os.pathsep.join([d] + [p for p in parts if p != d])
    return ffmpeg_exe()
