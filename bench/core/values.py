"""Checks of command-line and suite option values, run before any work starts: each bad value is a one-line
error naming the option. The argparse ``type=`` wrappers live in :mod:`moee_bench.bench.cli.options`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from moee_bench.bench.core.errors import BenchError
import re
# imported inside the functions that use them (seconds to import, or optional): torch

MAX_FPS = 240.0          # the fastest real camera footage; more only multiplies duplicated frames
MAX_SIDE = 8192          # pixels; larger frames do not fit in memory in chunks of 32


def fps_value(raw: Any, what: str = "fps") -> float:
    """A frame rate: a finite number in (0, MAX_FPS]."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(v) or not 0 < v <= MAX_FPS:
        raise ValueError(f"{what} must be a finite number > 0 and <= {MAX_FPS:g}, got {raw!r}")
    return v


def int_value(raw: Any, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (bools and fractional numbers refused)."""
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(f"{what} must be an integer, got {raw!r}")
    try:
        v = int(str(raw).strip()) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be an integer, got {raw!r}") from None
    if v < minimum or (maximum is not None and v > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{what} must be >= {minimum}{hi}, got {raw!r}")
    return v


def size_value(raw: Any, what: str = "size") -> tuple[int, int]:
    """(H, W) from ``[H, W]``, ``(H, W)`` or ``"HxW"``; each side in [1, MAX_SIDE]."""
    parts = raw.lower().split("x") if isinstance(raw, str) else raw
    try:
        h, w = parts
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be height and width (e.g. 256x256), got {raw!r}") from None
    return int_value(h, f"{what} height", 1, MAX_SIDE), int_value(w, f"{what} width", 1, MAX_SIDE)


def finite_value(raw: Any, what: str, minimum: float | None = None) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        lo = f" >= {minimum:g}" if minimum is not None else ""
        raise ValueError(f"{what} must be a finite number{lo}, got {raw!r}")
    return v


def check_device(device: str, option: str = "--device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and present on this machine."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device or ""):
        raise BenchError(f"{option} {device!r}: expected cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        idx = int(device.partition(":")[2] or 0)
        if idx >= n:
            raise BenchError(f"{option} {device}: this machine has {n} CUDA device(s)")
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise BenchError(f"{option} mps: not available on this machine")
    return device


def existing_dir(path: str | None, option: str) -> Path | None:
    """``path`` as a Path when it is an existing folder; a :class:`BenchError` naming ``option`` otherwise."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        hint = " (create it first: weights are fetched into it)" if option == "--weights-dir" else ""
        raise BenchError(f"{option} {path}: no such folder{hint}")
    if not p.is_dir():
        raise BenchError(f"{option} {path} is a file, not a folder")
    return p


def parse_kv(items: list[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict; an item without ``=`` or with an empty key is refused."""
    out: dict[str, str] = {}
    for kv in items:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise BenchError(f"{option} {kv!r}: expected KEY=VALUE")
        out[k.strip()] = v
    return out
