"""``moee-bench bench networks``: frames/s of each feature network, fp32 and bf16, on ``--device``.

The networks the metrics run under :mod:`moee_bench.metrics.core.precision` (FID Inception, LPIPS AlexNet, FVD I3D of the
VideoGPT/TATS variant, CSIM ArcFace IR-SE50, SyncNet), built by the same classes and the same input
preparation as the metrics, with random weights (a throughput figure needs no trained weights; the
StyleGAN-V I3D is a TorchScript file that only runs verified, so the PyTorch I3D of the same architecture
stands for it). Inputs are random frames of each metric's input size (``--size`` for the frame-level
networks, which resize as the metric does). Per network and precision: frames/s (median of
``--repeats`` timed passes after a warm-up, CUDA synchronised), the bf16/fp32 speed ratio and the largest
relative feature difference of bf16 against fp32 on the same input. Frames are counted as the metric
counts them: one video frame (a pair for LPIPS, a 16-frame clip = 16 frames for I3D, a 5-frame window =
one frame for SyncNet).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from moee_bench.bench.perf.common import report
from moee_bench.metrics.core.precision import autocast
from moee_bench.bench.perf.visual import random_fid_inception_net
from moee_bench.metrics.visual.fid import DIM, prepare_for_inference
from moee_bench.metrics.visual.fvd import preprocess
from moee_bench.metrics.visual.i3d import InceptionI3d
from unittest import mock
# imported inside the functions that use them (seconds to import, or optional): facexlib, lpips, pytorch_fid, syncnet_python


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _median_s(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, Any]:
    out = fn()
    _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _rel_diff(a: Any, b: Any) -> float:
    a = torch.as_tensor(a).double().flatten()
    b = torch.as_tensor(b).double().flatten()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def networks(device: str, batch: int, size: int) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (forward of one batch returning its features, frames that batch counts)."""
    import lpips
    import pytorch_fid.inception as pfi
    from facexlib.recognition.arcface_arch import Backbone
    from syncnet_python.SyncNetModel import S
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, size, size, 3), generator=g, dtype=torch.uint8)
    x01 = frames.permute(0, 3, 1, 2).float().div(255.0).to(device)

    net = random_fid_inception_net()
    with mock.patch.object(pfi, "fid_inception_v3", lambda: net):
        inc = prepare_for_inference(pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[DIM]]).eval(), device).to(device)
    x_inc = x01.contiguous(memory_format=torch.channels_last)

    lp = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval().to(device)
    x_lp = x01 * 2 - 1
    y_lp = x_lp.flip(0)

    i3d = InceptionI3d().eval().to(device)
    clips = max(1, batch // 16)
    video = torch.randint(0, 256, (16, size, size, 3), generator=g, dtype=torch.uint8).numpy()
    x_i3d = torch.stack([preprocess(video, device) for _ in range(clips)])

    arc = Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").eval().to(device)
    x_arc = torch.nn.functional.interpolate(x01, size=(112, 112), mode="bilinear").sub(0.5).div(0.5).contiguous()

    sync = S().eval().to(device)
    lips = torch.rand(batch, 3, 5, 224, 224, generator=g).mul(255).to(device)
    mfcc = torch.randn(batch, 1, 13, 20, generator=g).to(device)

    return {
        "fid_inception": (lambda: inc(x_inc)[0], batch),
        "lpips_alexnet": (lambda: lp(x_lp, y_lp), batch),
        "fvd_i3d": (lambda: i3d(x_i3d), 16 * clips),
        "csim_arcface": (lambda: arc(x_arc), batch),
        "syncnet": (lambda: torch.cat([sync.forward_lip(lips), sync.forward_aud(mfcc)], 1), batch),
    }


def run(args) -> int:
    device = getattr(args, "device", None) or "cpu"
    batch = getattr(args, "batch", None) or 32
    size = getattr(args, "size", None) or 256
    nets = networks(device, batch, size)
    rows: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "input": f"batch {batch}, frames {size}x{size} (I3D: 16-frame clips at 224, SyncNet: 5x224x224 windows, ArcFace: 112)",
        "weights": "random initialisation (throughput only)",
        "fp32 on cuda": (f"TF32 convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, TF32 matmul "
                         f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} (torch defaults; as pytorch-fid runs)"
                         if device.startswith("cuda") else "n/a"),
        "network": f"{'fp32 frames/s':>14} {'bf16 frames/s':>14} {'bf16/fp32':>10} {'bf16 rel diff':>14}",
    }
    raw: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for name, (fn, n) in nets.items():
            out: dict[str, Any] = {}
            fps: dict[str, float] = {}
            for p in ("fp32", "bf16"):
                with autocast(p, device):
                    s, out[p] = _median_s(fn, device, args.repeats)
                fps[p] = n / s
            d = _rel_diff(out["fp32"].float().cpu(), out["bf16"].float().cpu())
            raw[name] = {"fp32_fps": fps["fp32"], "bf16_fps": fps["bf16"], "bf16_rel_diff": d}
            rows[f"  {name}"] = f"{fps['fp32']:14.1f} {fps['bf16']:14.1f} {fps['bf16'] / fps['fp32']:10.2f} {d:14.2e}"
            if device.startswith("cuda"):
                rows[f"  {name}"] += f"   peak {torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB"
    rows["raw"] = raw
    report("networks", rows, args.json)
    return 0
