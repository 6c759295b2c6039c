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


def _random_weights(d: Path) -> None:
    import pytorch_fid.inception as pfi
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet-owt-7be5be79.pth")
    net = pfi.fid_inception_v3.__wrapped__() if hasattr(pfi.fid_inception_v3, "__wrapped__") else None
    if net is None:
        from unittest import mock

        with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
             mock.patch("torch.nn.Module.load_state_dict", lambda self, sd, *a, **k: None):
            net = pfi.fid_inception_v3()
    torch.save(net.state_dict(), d / "pt_inception-2015-12-05-6726825d.pth")


def run(args) -> int:
    import lpips
    import pytorch_fid.fid_score as fs
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from moee_bench.metrics.evaluate import ClipInput, evaluate
    from moee_bench.metrics.registry import MetricOptions, build_metrics

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        wdir = d / "w"
        wdir.mkdir()
        _random_weights(wdir)
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
            for side in ("pred", "gt"):
                for c in clips:
                    for t, img in enumerate(media.read_frames(getattr(c, side))):
                        media.write_image(d / f"png_{side}" / f"{c.clip_id}_{t:04d}.png", img)
            import os

            os.environ["TORCH_HOME"] = str(d / "th")
            hub = d / "th" / "hub" / "checkpoints"
            hub.mkdir(parents=True, exist_ok=True)
            link = hub / "pt_inception-2015-12-05-6726825d.pth"
            if not link.exists():
                link.symlink_to(wdir / "pt_inception-2015-12-05-6726825d.pth")
            fid = fs.calculate_fid_given_paths([str(d / "png_pred"), str(d / "png_gt")], 50, "cpu", 2048, 0)
            lp = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
            sd = torch.load(wdir / "alexnet-owt-7be5be79.pth", weights_only=True)
            for mod in lp.net.children():
                for idx, layer in mod.named_children():
                    if hasattr(layer, "weight"):
                        layer.weight.data, layer.bias.data = sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"]
            from PIL import Image

            ps, ss, ls = [], [], []
            for f in sorted((d / "png_pred").glob("*.png")):
                a = np.asarray(Image.open(f).convert("RGB"))
                b = np.asarray(Image.open(d / "png_gt" / f.name).convert("RGB"))
                ps.append(peak_signal_noise_ratio(b, a, data_range=255))
                ss.append(structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                data_range=255, channel_axis=-1))
                with torch.no_grad():
                    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1
                    ls.append(float(lp(t(a), t(b))))
            return {"psnr": np.mean(ps), "ssim": np.mean(ss), "lpips": np.mean(ls), "fid": fid}

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
