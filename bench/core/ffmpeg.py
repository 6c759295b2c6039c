"""Put an ``ffmpeg`` binary on PATH (syncnet-python shells out to whatever ``ffmpeg`` PATH finds).

No system ffmpeg is assumed: imageio-ffmpeg ships a static binary, which we link as
``<cache>/bin/ffmpeg`` and prepend to PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def ensure_ffmpeg_on_path(cache_dir: str | Path | None = None) -> str:
    """Return the path of the ``ffmpeg`` that PATH now finds, linking imageio-ffmpeg's binary if needed."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    d = Path(cache_dir or os.environ.get("MOEE_BENCH_CACHE", Path.home() / ".cache" / "moee-bench")) / "bin"
    d.mkdir(parents=True, exist_ok=True)
    link = d / "ffmpeg"
    if not link.exists():
        try:
            link.symlink_to(exe)
        except FileExistsError:
            pass
    os.environ["PATH"] = f"{d}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(link)
