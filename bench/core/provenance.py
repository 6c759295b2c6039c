"""What every stored result records about where it was computed: package versions, git commit, device."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path
# imported inside the functions that use them (seconds to import, or optional): torch

# The packages whose versions can change a number; recorded by ``run`` and ``score`` alike.
PACKAGES = ("moee-bench", "torch", "torchvision", "numpy", "scipy", "scikit-image", "lpips", "pytorch-fid",
            "syncnet-python", "facexlib", "face-alignment", "dlib-bin", "av", "imageio-ffmpeg", "timm", "diffusers",
            "transformers", "facenet-pytorch")


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (absent ones are left out)."""
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, or None outside a git checkout (an installed wheel, even in a
    venv that lies inside some checkout: the package folder must be the checkout's root, as in this repository)."""
    root = Path(__file__).resolve().parents[2]          # the package folder: bench/core/provenance.py -> root
    try:
        r = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True, timeout=10,
                           cwd=root)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = r.stdout.split()
    if r.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1]


def device_name(device: str) -> str:
    """A readable name of the compute device (GPU model, or the CPU)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()})"


def environment(device: str) -> dict[str, object]:
    """Versions, commit, Python and device, as stored with every run and score."""
    return {"git_commit": git_commit(), "versions": package_versions(), "python": sys.version.split()[0],
            "device": device_name(device)}
