"""``bench metrics --profile``: where the time goes, per 100 frame pairs, for ours and for the chain.

Each side runs once more in this process with its functions wrapped by :class:`moee_bench.bench.perf.lines.Lines`
(exclusive wall time per line): ours is ``build_metrics`` + ``evaluate`` (what ``score`` runs); the chain is
its PNG dump, pytorch-fid's ``calculate_fid_given_paths`` (in process, DataLoader workers 0, so its PNG reads
are timed) and the lpips / scikit-image loop. The interpreter start and imports of each side's command are
timed as subprocesses. ``other`` is the side's wall time minus its lines (Python, tensor copies, threads).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from moee_bench.metrics.core.base import ClipInput
from moee_bench.bench.perf.lines import Lines
import os
from moee_bench.bench.core import media
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.registry import build_metrics, MetricOptions
from moee_bench.metrics.visual import fid, lpips as lpips_metric, psnr, ssim
# imported inside the functions that use them (seconds to import, or optional): lpips, pytorch_fid, skimage, torch; our modules that import such packages: evaluate, perf

FRECHET = "Frechet distance (ours eigh, chain sqrtm)"
#: the lines a cold exact score cannot do without: every frame through Inception, every pair through LPIPS, one
#: Fréchet distance (the bound of issue 30, measured in the same run, in process)
BOUND = ("Inception network", "LPIPS", FRECHET)
ORDER = ("process start + imports", "model load", "decode (H.264 -> RGB)", "PNG write", "PNG read",
         "resize to 299 (Inception input)", "Inception network", "LPIPS", "SSIM", "PSNR",
         FRECHET, "other (Python, copies, threads)")

# what `score --metrics psnr,ssim,lpips,fid` imports before its first frame: our modules import torch, lpips,
# pytorch-fid and scikit-image lazily (inside build_metrics and the first SSIM call), so they are named here
OURS_IMPORTS = ("import moee_bench.bench.cli.app, moee_bench.metrics.visual.fid, moee_bench.metrics.visual.lpips, "
                "moee_bench.metrics.visual.ssim, moee_bench.metrics.visual.psnr, moee_bench.bench.cli.commands.score, "
                "torch, lpips, pytorch_fid.inception, skimage.metrics; moee_bench.bench.cli.app.build_parser()")
CHAIN_IMPORTS = "import pytorch_fid.fid_score"


def _start_seconds(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


def _common(lines: Lines) -> None:
    import torch.nn.functional as F


    lines.wrap(media.FrameReader, "__iter__", "decode (H.264 -> RGB)")
    lines.wrap(F, "interpolate", "resize to 299 (Inception input)")


def profile_ours(clips: list[ClipInput], wdir: Path, precision: str) -> dict[str, float]:
    """Seconds per line of ``build_metrics`` + ``evaluate`` on ``clips`` (psnr, ssim, lpips, fid)."""
    from moee_bench.metrics.core.evaluate import evaluate
    opts = MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True), precision=precision)
    with Lines() as lines:
        _common(lines)
        lines.wrap(fid, "inception_features", "Inception network")
        lines.wrap(fid, "frechet_distance", FRECHET)
        lines.wrap(lpips_metric._Extractor, "add", "LPIPS")
        lines.wrap(ssim, "frame_ssim", "SSIM")
        lines.wrap(psnr, "frame_mse", "PSNR")
        t = time.perf_counter()
        metrics, _ = lines.timed("model load", lambda: build_metrics(["psnr", "ssim", "lpips", "fid"], opts))
        evaluate(clips, metrics, progress=False)
        total = time.perf_counter() - t
        secs = dict(lines.seconds)
    secs["other (Python, copies, threads)"] = total - sum(secs.values())
    secs["process start + imports"] = _start_seconds(OURS_IMPORTS)
    return secs


def profile_chain(clips: list[ClipInput], work: Path, wdir: Path) -> dict[str, float]:
    """Seconds per line of the researcher's chain (:func:`moee_bench.bench.perf.visual.researcher_chain`)."""
    import lpips
    import pytorch_fid.fid_score as fs
    import pytorch_fid.inception as pfi
    from skimage import metrics as skm

    from moee_bench.bench.perf import visual

    pred_dir, gt_dir = work / "png_pred", work / "png_gt"
    th = visual.torch_home(work, wdir)
    old_home = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(th)
    try:
        with Lines() as lines:
            _common(lines)
            lines.wrap(media, "write_image", "PNG write")
            lines.wrap(fs.ImagePathDataset, "__getitem__", "PNG read")
            lines.wrap(visual, "read_png", "PNG read")
            lines.wrap(pfi.InceptionV3, "__init__", "model load")
            lines.wrap(lpips.pretrained_networks.alexnet, "__init__", "model load")  # not LPIPS.__init__: it
            # finds its linear layers' files next to inspect.getfile(self.__init__)
            lines.wrap(pfi.InceptionV3, "forward", "Inception network")
            lines.wrap(fs, "calculate_frechet_distance", FRECHET)
            lines.wrap(lpips.LPIPS, "forward", "LPIPS")
            lines.wrap(skm, "structural_similarity", "SSIM")
            lines.wrap(skm, "peak_signal_noise_ratio", "PSNR")
            t = time.perf_counter()
            visual.dump_png(clips, "pred", pred_dir)
            visual.dump_png(clips, "gt", gt_dir)
            fs.calculate_fid_given_paths([str(pred_dir), str(gt_dir)], 50, "cpu", 2048, 0)
            visual.loop_metrics(pred_dir, gt_dir, wdir)
            total = time.perf_counter() - t
            secs = dict(lines.seconds)
    finally:
        if old_home is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old_home
    secs["other (Python, copies, threads)"] = total - sum(secs.values())
    secs["process start + imports"] = _start_seconds(CHAIN_IMPORTS)
    return secs


def profile_table(clips: list[ClipInput], d: Path, wdir: Path, precisions: list[str]) -> dict[str, Any]:
    """Rows ``line -> seconds per 100 frame pairs`` for the chain and ours at each of ``precisions``, with
    chain/ours ratios, and the raw seconds."""
    pairs = sum(len(media.read_frames(c.gt)) for c in clips)
    sides = {"chain": profile_chain(clips, d / "profile_chain", wdir)}
    sides.update({f"ours {p}": profile_ours(clips, wdir, p) for p in precisions})
    per = 100.0 / pairs
    ours = [k for k in sides if k != "chain"]
    head = "".join(f"{k:>11}" for k in sides) + "".join(f"{'chain/' + k[5:]:>12}" for k in ours)
    rows: dict[str, Any] = {f"profile: s per 100 frame pairs ({pairs} pairs)": head}
    for line in ORDER + ("total",):
        v = {k: sum(s.values()) if line == "total" else s.get(line, 0.0) for k, s in sides.items()}
        cells = "".join(f"{v[k] * per:11.3f}" for k in sides)
        cells += "".join(f"{v['chain'] / v[k]:12.2f}" if v[k] > 1e-9 and v["chain"] > 1e-9 else f"{'-':>12}"
                         for k in ours)
        rows[f"  {line}"] = cells
    bound = {k: sum(sides[k].get(line, 0.0) for line in BOUND) for k in ours}
    rows["  bound: Inception + LPIPS + one Frechet"] = ("".join(f"{'-':>11}" if k == "chain" else f"{bound[k] * per:11.3f}"
                                                             for k in sides))
    rows["  ours total / bound"] = "".join(f"{'-':>11}" if k == "chain" else
                                          f"{sum(sides[k].values()) / bound[k]:11.2f}" if bound[k] > 0 else f"{'-':>11}"
                                          for k in sides)
    rows["profile raw seconds"] = {**sides, "pairs": pairs}
    return rows
