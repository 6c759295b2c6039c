"""Shared fixtures. Every test runs offline; ffmpeg comes from imageio-ffmpeg (put on this process's
PATH through a private temporary folder, for the tests that run the reference tools' ``ffmpeg``)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never download weights: fetch-on-first-use is off for the whole run (the local-server tests of
# tests/test_weights_fetch.py opt back in explicitly), and the weights cache and its weights.lock are
# a throw-away folder, never the user's ~/.cache/moee-bench/weights.
os.environ["MOEE_BENCH_OFFLINE"] = "1"
_WEIGHTS_CACHE = tempfile.mkdtemp(prefix="moee-bench-test-weights-")
os.environ["MOEE_BENCH_WEIGHTS"] = _WEIGHTS_CACHE
atexit.register(shutil.rmtree, _WEIGHTS_CACHE, True)
os.environ.setdefault("MPLBACKEND", "Agg")

from moee_bench.bench.core.ffmpeg import ensure_ffmpeg_on_path  # noqa: E402

ensure_ffmpeg_on_path()


@pytest.fixture(autouse=True)
def _private_feature_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``XDG_CACHE_HOME`` is a fresh folder for every test (inherited by the CLI subprocesses it starts): ``score``
    keeps GT features under it by default, never in the user's ``~/.cache``, and no test sees another's."""
    d = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    return d


@pytest.fixture(scope="session")
def sample_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sample dataset, generated once per test session; returns the manifest path."""
    from moee_bench.bench.suite.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("sample"))


def write_sample_pairs(manifest: Path, root: Path, frames: int) -> tuple[Path, Path]:
    """pred/gt folders under ``root`` of two real sample pairs (an emotional clip against its identity's neutral
    one: astronaut, hopper), the first ``frames`` frames of each, re-encoded."""
    from moee_bench.bench.core import media
    from moee_bench.bench.core.manifest import load_manifest

    m = load_manifest(manifest)
    by_id = {c.clip_id: c for c in m.clips}
    for ident, (p, g) in {"astronaut": ("astronaut_anger", "astronaut_neutral"),
                          "hopper": ("hopper_happiness", "hopper_neutral")}.items():
        for sub, cid in (("pred", p), ("gt", g)):
            fr = media.read_frames(m.media_path(by_id[cid], "video"))[:frames]
            media.write_video(root / sub / f"{ident}.mp4", [fr], 25.0)
    return root / "pred", root / "gt"


@pytest.fixture
def write_clip(tmp_path: Path):
    """Write a small synthetic H.264+AAC clip: ``write_clip(name, frames=..., fps=..., audio=True)``."""
    from moee_bench.bench.core.media import write_video

    def _write(name: str = "clip", *, frames: np.ndarray | None = None, n: int = 30, size: int = 64, fps: float = 25.0,
               audio: bool = True, seed: int = 0, folder: Path | None = None) -> Path:
        rng = np.random.default_rng(seed)
        if frames is None:
            frames = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        a = (0.1 * rng.standard_normal(int(16000 * len(frames) / fps))).astype(np.float32) if audio else None
        path = (folder or tmp_path) / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(path, [frames], fps, audio=a)

    return _write


def write_visual_weights(d: Path) -> Path:
    """Random-initialised LPIPS (AlexNet) and FID (pytorch-fid Inception) backbones saved under the registry file
    names, in the formats their reference code loads."""
    import pytorch_fid.inception as pfi
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet-owt-7be5be79.pth")
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=True)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    torch.save(net.state_dict(), d / "pt_inception-2015-12-05-6726825d.pth")
    return d


def save_i3d_standin(path: Path, seed: int = 0) -> Path:
    """A small random network with the call signature of StyleGAN-V's I3D TorchScript
    (``detector(x, rescale=, resize=, return_features=)`` -> (B, 400)), saved as TorchScript at ``path``."""
    import torch

    class StandInI3D(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 8, (3, 7, 7), stride=(2, 4, 4))
            self.fc = torch.nn.Linear(8, 400)

        def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                    return_features: bool = False) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))

    torch.manual_seed(seed)
    torch.jit.save(torch.jit.script(StandInI3D().eval()), str(path))
    return path


def write_fvd_standin(d: Path) -> Path:
    """The I3D stand-in as ``d/i3d_torchscript.pt`` (the registry file name)."""
    save_i3d_standin(d / "i3d_torchscript.pt")
    return d


@pytest.fixture(scope="session")
def save_standin_i3d():
    """``save(path, seed=0)``: :func:`save_i3d_standin`."""
    return save_i3d_standin


@pytest.fixture(scope="session")
def reference_format_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with random LPIPS, FID and FVD (stand-in I3D) weights in the reference formats."""
    d = tmp_path_factory.mktemp("refweights")
    write_visual_weights(d)
    return write_fvd_standin(d)
