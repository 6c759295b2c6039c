"""``moee-bench bench metrics``: our single-decode pipeline (PSNR, SSIM, LPIPS, FID) vs the chain a
researcher runs today on the same clips: frames dumped to PNG, pytorch-fid on the two folders, an
lpips loop and a scikit-image loop over the PNGs. Random-initialised backbones, identical for both."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from moee_bench.bench.core import media
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.benchmarks.common import peak_rss_mb, report, timed


def random_fid_inception(path: Path, seed: int = 0) -> Path:
    """pytorch-fid's FID Inception with random weights, saved as its reference state dict file."""
    from unittest import mock

    import pytorch_fid.inception as pfi

    torch.manual_seed(seed)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
         mock.patch("torch.nn.Module.load_state_dict", lambda self, sd, *a, **k: None):
        net = pfi.fid_inception_v3()
    torch.save(net.state_dict(), path)
    return path


def random_weights(d: Path) -> None:
    """Random AlexNet (LPIPS backbone) and FID Inception under their registry file names in ``d``."""
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet-owt-7be5be79.pth")
    random_fid_inception(d / "pt_inception-2015-12-05-6726825d.pth")


def researcher_chain(clips: list, work: Path, wdir: Path, gt_png: Path | None = None) -> dict[str, float]:
    """PSNR, SSIM, LPIPS and FID of ``clips`` (:class:`metrics.base.ClipInput`) the way a researcher computes them
    today: every frame dumped to PNG (PyAV), ``pytorch_fid``'s ``calculate_fid_given_paths`` on the two
    folders (TORCH_HOME pointed at ``wdir``'s Inception), and an lpips / scikit-image loop over the PNGs.
    ``gt_png``: a folder of GT PNGs dumped by an earlier call (reused, as a researcher scoring several
    methods against one GT would); None dumps them under ``work``."""
    import os

    import lpips
    import pytorch_fid.fid_score as fs
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    dirs = {"pred": work / "png_pred", "gt": gt_png or work / "png_gt"}
    for side in ("pred", "gt"):
        if side == "gt" and gt_png is not None and any(gt_png.glob("*.png")):
            continue
        for c in clips:
            for t, img in enumerate(media.read_frames(getattr(c, side))):
                media.write_image(dirs[side] / f"{c.clip_id}_{t:04d}.png", img)
    os.environ["TORCH_HOME"] = str(work / "th")
    hub = work / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    link = hub / "pt_inception-2015-12-05-6726825d.pth"
    if not link.exists():
        link.symlink_to(wdir / "pt_inception-2015-12-05-6726825d.pth")
    fid = fs.calculate_fid_given_paths([str(dirs["pred"]), str(dirs["gt"])], 50, "cpu", 2048, 0)
    lp = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = torch.load(wdir / "alexnet-owt-7be5be79.pth", weights_only=True)
    for mod in lp.net.children():
        for idx, layer in mod.named_children():
            if hasattr(layer, "weight"):
                layer.weight.data, layer.bias.data = sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"]
    ps, ss, ls = [], [], []
    for f in sorted(dirs["pred"].glob("*.png")):
        a = np.asarray(Image.open(f).convert("RGB"))
        b = np.asarray(Image.open(dirs["gt"] / f.name).convert("RGB"))
        ps.append(peak_signal_noise_ratio(b, a, data_range=255))
        ss.append(structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1))
        with torch.no_grad():
            t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
            ls.append(float(lp(t(a), t(b))))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "lpips": float(np.mean(ls)), "fid": float(fid)}


def run(args) -> int:
    from moee_bench.metrics.evaluate import ClipInput, evaluate
    from moee_bench.metrics.registry import MetricOptions, build_metrics

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        wdir = d / "w"
        wdir.mkdir()
        random_weights(wdir)
        rng = np.random.default_rng(0)
        clips = []
        for i in range(args.clips):
            g = rng.integers(0, 255, (args.frames, 128, 128, 3), dtype=np.uint8)
            p = np.clip(g.astype(int) + rng.integers(-20, 20, g.shape), 0, 255).astype(np.uint8)
            clips.append(ClipInput(f"c{i}", media.write_video(d / "pred" / f"c{i}.mp4", [p], 25),
                                   media.write_video(d / "gt" / f"c{i}.mp4", [g], 25)))
        opts = MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True))

        def ours():
            ms, unavailable = build_metrics(["psnr", "ssim", "lpips", "fid"], opts)
            if unavailable:
                raise RuntimeError(f"benchmark metrics unavailable: {unavailable}")
            return evaluate(clips, ms, progress=False).metrics

        def reference():
            return researcher_chain(clips, d, wdir)

        rss0 = peak_rss_mb()
        t_ours, m_ours = timed(ours, args.repeats)
        rss1 = peak_rss_mb()
        t_ref, m_ref = timed(reference, args.repeats)
    report("metrics", {"clips x frames": f"{args.clips} x {args.frames} (128x128)", "reference chain (s)": t_ref,
                       "moee-bench (s)": t_ours, "speed-up": t_ref / t_ours,
                       "peak RSS growth, ours (MB)": rss1 - rss0, "peak RSS after both (MB)": peak_rss_mb(),
                       **{f"|{k} diff|": abs(float(m_ours[k]) - float(m_ref[k])) for k in ("psnr", "ssim", "lpips", "fid")},
                       "weights": "random init (same for both)"}, args.json)
    return 0
