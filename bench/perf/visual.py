"""``moee-bench bench metrics``: PSNR, SSIM, LPIPS and FID of the same clips, as a user runs each side.

Ours: ``moee-bench score --metrics psnr,ssim,lpips,fid`` (a subprocess, as a user runs it; one decode
pass). The researcher's chain: every frame dumped to PNG, ``python -m pytorch_fid PRED_PNG GT_PNG``
(a subprocess with its defaults: batch 50, 2048 dims, its DataLoader workers) and an lpips /
scikit-image loop over the PNGs (run in this process, so the chain is not charged a second interpreter
start). Random-initialised backbones, the same files for both. Sides: the chain, ours cold fp32 (``--no-cache``),
ours warm fp32 (GT features in the feature cache), ours cold bf16 (the declared fast mode; the chain stays fp32,
so bf16's differences are its drift), and the bound of each of ours, measured in process
(:mod:`moee_bench.bench.perf.visual_bound`). They alternate ``--repeats`` rounds (default 3); one table prints
per side the wall median (min-max), the ratio to the chain and ours/bound round by round, the target and the
numbers' differences; CPU seconds (this process and its children) follow. ``--profile`` adds the per-line
profile of every side (:mod:`moee_bench.bench.perf.visual_profile`) and names the line that explains a missed target.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from moee_bench.bench.core import media
from moee_bench.metrics.core.base import ClipInput
from moee_bench.bench.perf.common import peak_rss_mb, report
import json
from moee_bench.bench.perf.visual_profile import profile_table
from moee_bench.bench.perf.visual_bound import BoundMeter, summary_rows
from unittest import mock
# imported inside the functions that use them (seconds to import, or optional): PIL, lpips, pytorch_fid, skimage, torchvision

METRICS = ("psnr", "ssim", "lpips", "fid")
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def random_fid_inception_net(seed: int = 0) -> torch.nn.Module:
    """pytorch-fid's FID Inception (``fid_inception_v3``) with random weights."""
    import pytorch_fid.inception as pfi

    torch.manual_seed(seed)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
         mock.patch("torch.nn.Module.load_state_dict", lambda self, sd, *a, **k: None):
        return pfi.fid_inception_v3()


def random_fid_inception(path: Path, seed: int = 0) -> Path:
    """pytorch-fid's FID Inception with random weights, saved as its reference state dict file."""
    torch.save(random_fid_inception_net(seed).state_dict(), path)
    return path


def random_weights(d: Path) -> None:
    """Random AlexNet (LPIPS backbone) and FID Inception under their registry file names in ``d``."""
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / ALEXNET_FILE)
    random_fid_inception(d / INCEPTION_FILE)


def make_clips(d: Path, n: int, frames: int, size: int = 128) -> list[ClipInput]:
    """``n`` random pred/GT clip pairs of ``frames`` frames (H.264) under ``d/pred`` and ``d/gt``."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        g = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
        p = np.clip(g.astype(int) + rng.integers(-20, 20, g.shape), 0, 255).astype(np.uint8)
        clips.append(ClipInput(f"c{i}", media.write_video(d / "pred" / f"c{i}.mp4", [p], 25),
                               media.write_video(d / "gt" / f"c{i}.mp4", [g], 25)))
    return clips


# the researcher's chain --------------------------------------------------------------------------
def dump_png(clips: list[ClipInput], side: str, folder: Path) -> None:
    """Every frame of every clip's ``side`` video as ``folder/<clip>_<t>.png`` (PyAV decode, as ours decodes)."""
    for c in clips:
        for t, img in enumerate(media.read_frames(getattr(c, side))):
            media.write_image(folder / f"{c.clip_id}_{t:04d}.png", img)


def torch_home(work: Path, wdir: Path) -> Path:
    """A TORCH_HOME where pytorch-fid finds ``wdir``'s Inception as its cached download."""
    hub = work / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    link = hub / INCEPTION_FILE
    if not link.exists():
        link.symlink_to(wdir / INCEPTION_FILE)
    return work / "th"


def pytorch_fid_cli(pred_png: Path, gt_png: Path, th: Path) -> float:
    """``python -m pytorch_fid PRED GT --device cpu`` as a researcher runs it; its printed FID."""
    out = subprocess.run([sys.executable, "-m", "pytorch_fid", str(pred_png), str(gt_png), "--device", "cpu"],
                         env={**os.environ, "TORCH_HOME": str(th)}, capture_output=True, text=True, check=True)
    m = re.search(r"FID:\s+([-+0-9.eE]+|nan|inf)", out.stdout)
    if m is None:
        raise RuntimeError(f"pytorch_fid printed no FID: {out.stdout[-500:]} {out.stderr[-500:]}")
    return float(m.group(1))


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def loop_metrics(pred_png: Path, gt_png: Path, wdir: Path) -> dict[str, float]:
    """PSNR, SSIM and LPIPS the way a researcher's script computes them: one PNG pair at a time."""
    import lpips
    from skimage import metrics as skm

    lp = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = torch.load(wdir / ALEXNET_FILE, weights_only=True)
    for mod in lp.net.children():
        for idx, layer in mod.named_children():
            if hasattr(layer, "weight"):
                layer.weight.data, layer.bias.data = sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"]
    ps, ss, ls = [], [], []
    for f in sorted(pred_png.glob("*.png")):
        a, b = read_png(f), read_png(gt_png / f.name)
        ps.append(skm.peak_signal_noise_ratio(b, a, data_range=255))
        ss.append(skm.structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            data_range=255, channel_axis=-1))
        with torch.no_grad():
            t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
            ls.append(float(lp(t(a), t(b))))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "lpips": float(np.mean(ls))}


def researcher_chain(clips: list[ClipInput], work: Path, wdir: Path, gt_png: Path | None = None) -> dict[str, float]:
    """PSNR, SSIM, LPIPS and FID of ``clips`` the way a researcher computes them today: every frame dumped to
    PNG, ``python -m pytorch_fid`` on the two folders (TORCH_HOME pointed at ``wdir``'s Inception), and an
    lpips / scikit-image loop over the PNGs. ``gt_png``: a folder of GT PNGs dumped by an earlier call (reused,
    as a researcher scoring several methods against one GT would); None dumps them under ``work``."""
    pred_dir, gt_dir = work / "png_pred", gt_png or work / "png_gt"
    dump_png(clips, "pred", pred_dir)
    if gt_png is None or not any(gt_png.glob("*.png")):
        dump_png(clips, "gt", gt_dir)
    fid = pytorch_fid_cli(pred_dir, gt_dir, torch_home(work, wdir))
    return {**loop_metrics(pred_dir, gt_dir, wdir), "fid": fid}


# ours -----------------------------------------------------------------------------------------------
def moee_score(d: Path, wdir: Path, precision: str, out: Path, cache: Path | None = None) -> dict[str, Any]:
    """``python -m moee_bench score`` on ``d/pred`` vs ``d/gt`` as a user runs it; its JSON metrics. ``cache``
    None: cold (``--no-cache``); else the ``XDG_CACHE_HOME`` whose feature cache holds the GT features (warm)."""
    import json

    cmd = [sys.executable, "-m", "moee_bench", "score", "--pred", str(d / "pred"), "--gt", str(d / "gt"),
           "--metrics", ",".join(METRICS), "--json", str(out), "--weights-dir", str(wdir),
           "--allow-unverified-weights", "--precision", precision]
    env = dict(os.environ)
    if cache is None:
        cmd.append("--no-cache")
    else:
        env["XDG_CACHE_HOME"] = str(cache)
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.read_text())["metrics"]


# timing -----------------------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def alternate(sides: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]],
                                                                          dict[str, Any]]:
    """Run the sides one after the other, ``repeats`` rounds, the order reversed every other round (so
    neither always runs first). Returns wall seconds and CPU seconds per side per round, and the last results."""
    wall: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    last: dict[str, Any] = {}
    names = list(sides)
    for r in range(max(1, repeats)):
        for k in (names if r % 2 == 0 else names[::-1]):
            c, t = _cpu_seconds(), time.perf_counter()
            last[k] = sides[k]()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(_cpu_seconds() - c)
    return wall, cpu, last


def spread(xs: list[float]) -> str:
    """``median (min-max)``."""
    return f"{np.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def run(args) -> int:
    warnings.simplefilter("ignore")
    ours = ["fp32", "bf16"]                     # cold exact and the declared fast mode (issue 30 points 2 and 5)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        wdir = d / "w"
        wdir.mkdir()
        random_weights(wdir)
        clips = make_clips(d, args.clips, args.frames)
        subprocess.run([sys.executable, "-c", "import torch, pytorch_fid, lpips, skimage"], check=True)  # warm file cache
        sides: dict[str, Callable[[], Any]] = {"chain": lambda: researcher_chain(clips, d / "chain", wdir)}
        for p in ours:
            sides[f"ours {p}"] = lambda p=p: moee_score(d, wdir, p, d / f"ours_{p}.json")
        moee_score(d, wdir, "fp32", d / "warmup.json", cache=d / "xdg")      # the GT embedded once, not timed
        sides["ours fp32 warm"] = lambda: moee_score(d, wdir, "fp32", d / "ours_warm.json", cache=d / "xdg")
        meter = BoundMeter(clips, str(wdir), ours)
        sides["bound"] = meter.measure                  # in every round, beside the sides it bounds
        wall, cpu, last = alternate(sides, args.repeats)
        profile = profile_table(clips, d, wdir, ours) if getattr(args, "profile", False) else {}
        rows: dict[str, Any] = {
            "clips x frames": f"{args.clips} x {args.frames} (128x128), {args.repeats} alternating rounds (ours cold: "
                              "--no-cache; warm: GT features in the feature cache); bound measured in each round",
            **summary_rows(wall, last, meter.history, meter.counts, ours[:1] + ["fp32 warm"] + ours[1:],
                           profile.get("profile raw seconds")),
            "CPU s, median (min-max)": "; ".join(f"{k} {spread(cpu[k])}" for k in sides if k != "bound"),
            "x chain on CPU s (less load-bound), median (min-max)": "; ".join(
                f"{k[5:]} {spread([c / o if o > 0 else float('nan') for c, o in zip(cpu['chain'], cpu[k])])}"
                for k in sides if k.startswith("ours")),
            "load average (1 min) at the end": f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            "weights": "random init (same for both); the chain is fp32",
            **profile,
            "rounds raw": {"wall": wall, "cpu": cpu, "bound rates": [vars(r) for r in meter.history],
                           "counts": vars(meter.counts)}}
        rows["peak RSS of this process (MB)"] = peak_rss_mb()
    report("metrics", rows, args.json)
    return 0
