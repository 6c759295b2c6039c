"""``moee-bench bench drift --real DIR``: how far the declared fast mode (``--precision bf16``) moves each
network metric from its fp32 value, on real face clips.

Pairs from every ``DIR/*.mp4`` (a talking face with its audio track, e.g. 224x224 face crops): GT = frames
``[0, n-k)``, generated = frames ``[k, n)`` of the same clip (k = 12, so the pairs differ as a method's
output differs from its GT: same identity, different mouth and pose), at most ``--frames`` frames each;
the clip's own audio drives Sync. The same pairs are scored twice through ``evaluate`` (the path ``score``
runs), once per precision: FID, FVD (VideoGPT/TATS variant: the PyTorch I3D, first 16 frames), LPIPS
(AlexNet), CSIM (ArcFace on MTCNN-aligned faces) and Sync-C/D (face-cropped). Weights: ``--weights-dir``
where it holds a network's file, otherwise random-initialised networks (saved in the reference formats;
the output names which). Printed per key: fp32, bf16, |difference| and |difference| / |fp32|, and for
per-clip keys the largest per-clip |difference|.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moee_bench.bench.core import media
from moee_bench.metrics.core.base import ClipInput
from moee_bench.bench.perf.common import report
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.bench.perf.visual import random_fid_inception_net, random_weights
from moee_bench.metrics.core.registry import build_metrics, MetricOptions
from moee_bench.metrics.visual.fvd import preprocess
from moee_bench.metrics.visual.i3d import InceptionI3d
from unittest import mock
# imported inside the functions that use them (seconds to import, or optional): facexlib, pytorch_fid, syncnet_python; our modules that import such packages: evaluate

SHIFT = 12
METRICS = ("fid", "fvd", "lpips", "csim", "sync")
PARAMS = {"fvd_variant": "videogpt", "fvd_clips": "first", "face_cropped": True, "sync_pixels": "exact"}
KEYS = ("fid", "fvd", "lpips", "csim", "sync_c", "sync_d")
FILES = {"fid": "pt_inception-2015-12-05-6726825d.pth", "lpips": "alexnet-owt-7be5be79.pth",
         "fvd": "i3d_pretrained_400.pt", "csim": "recognition_arcface_ir_se50.pth", "sync": "syncnet_v2.model"}


def calibrate_bn(net: torch.nn.Module, x: torch.Tensor, call: Any = None) -> torch.nn.Module:
    """Set every BatchNorm's running statistics to those of ``x``'s activations (one train-mode pass,
    cumulative average), so a random network's features carry the input's variation instead of collapsing."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        (call or net)(x)
    return net.eval()


def random_networks(d: Path, frames: np.ndarray, have: Path | None = None) -> dict[str, str]:
    """Random-initialised weights in ``d`` for every network whose file ``have`` lacks; metric -> source.
    Inception, I3D and ArcFace get BatchNorm statistics from ``frames`` (real GT frames, uint8 RGB)."""
    import pytorch_fid.inception as pfi
    from facexlib.recognition.arcface_arch import Backbone
    from syncnet_python.SyncNetModel import S

    random_weights(d)
    torch.manual_seed(0)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)
    net = random_fid_inception_net()
    with mock.patch.object(pfi, "fid_inception_v3", lambda: net):
        calibrate_bn(pfi.InceptionV3([3]), x)          # its blocks are ``net``'s modules
    torch.save(net.state_dict(), d / FILES["fid"])
    i3d = calibrate_bn(InceptionI3d(), preprocess(frames[:16])[None])
    torch.save(i3d.state_dict(), d / FILES["fvd"])
    faces = torch.nn.functional.interpolate(x, size=(112, 112)).mul(2).sub(1).contiguous()
    arc = calibrate_bn(Backbone(50, 0.6, "ir_se"), faces)
    torch.save(arc.state_dict(), d / FILES["csim"])
    torch.save(S().state_dict(), d / FILES["sync"])
    source = {}
    for metric, name in FILES.items():
        if have is not None and (have / name).is_file():
            (d / name).unlink()
            (d / name).symlink_to((have / name).resolve())
            source[metric] = f"{have / name}"
        else:
            source[metric] = "random init" + (", BN from the clips" if metric in ("fid", "fvd", "csim") else "")
    return source


def shifted_pairs(real: Path, out: Path, n_clips: int, frames: int) -> list[ClipInput]:
    """GT = frames [0, n-k), generated = frames [k, n) of each real clip (at most ``frames``); audio = the clip."""
    clips = []
    for src in sorted(real.glob("*.mp4"))[:n_clips]:
        f = media.read_frames(src)
        n = min(len(f) - SHIFT, frames)
        if n < 16:
            continue
        gt = media.write_video(out / "gt" / src.name, [f[:n]], 25)
        pred = media.write_video(out / "pred" / src.name, [f[SHIFT:SHIFT + n]], 25)
        clips.append(ClipInput(src.stem, pred, gt, audio=src))
    if len(clips) < 2:
        raise SystemExit(f"bench drift: need at least 2 clips of >= {16 + SHIFT} frames in {real}")
    return clips


def score(clips: list[ClipInput], wdir: Path, precision: str) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Aggregates and per-clip values of :data:`METRICS` at ``precision`` (``evaluate``, as ``score`` runs it)."""
    from moee_bench.metrics.core.evaluate import evaluate
    opts = MetricOptions(weights=WeightsOptions(str(wdir), allow_unverified=True), params=dict(PARAMS),
                         precision=precision)
    metrics, unavailable = build_metrics(list(METRICS), opts)
    if unavailable:
        raise SystemExit(f"bench drift: metrics not available: {unavailable}")
    res = evaluate(clips, metrics, progress=False)
    for m in metrics:
        assert res.protocol["metrics"][m.name]["precision"] == precision
    per_clip = {c.clip_id: {k: c.values[k] for k in KEYS if c.values.get(k) is not None} for c in res.clips}
    return res.metrics, per_clip


def drift_rows(agg: dict[str, dict[str, Any]], clips: dict[str, dict[str, dict[str, float]]]) -> dict[str, str]:
    """``key -> "fp32  bf16  |diff|  rel  max per-clip |diff|"``."""
    rows = {"drift (key)": f"{'fp32':>11} {'bf16':>11} {'|diff|':>9} {'rel':>9} {'clip max':>9}"}
    for k in KEYS:
        a, b = agg["fp32"].get(k), agg["bf16"].get(k)
        if a is None or b is None:
            rows[f"  {k}"] = f"not computed: {agg['fp32'].get(f'{k}_reason') or agg['bf16'].get(f'{k}_reason')}"
            continue
        per = [abs(clips["bf16"][c][k] - v[k]) for c, v in clips["fp32"].items()
               if k in v and k in clips["bf16"].get(c, {})]
        rel = abs(b - a) / abs(a) if a else float("nan")
        rows[f"  {k}"] = (f"{a:11.5g} {b:11.5g} {abs(b - a):9.3g} {rel:9.2e} "
                          f"{(f'{max(per):9.3g}' if per else '-'.rjust(9))}")
    return rows


def run(args) -> int:
    warnings.simplefilter("ignore")
    if not getattr(args, "real", None):
        raise SystemExit("bench drift needs --real DIR: a folder of real talking-face clips (*.mp4 with audio)")
    have = Path(args.weights_dir) if getattr(args, "weights_dir", None) else None
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        d = Path(tmp)
        (d / "w").mkdir()
        clips = shifted_pairs(Path(args.real), d / "pairs", args.clips, args.frames)
        sample = np.concatenate([media.read_frames(c.gt)[::4] for c in clips])[:48]
        source = random_networks(d / "w", sample, have)
        agg, per = {}, {}
        for p in ("fp32", "bf16"):
            agg[p], per[p] = score(clips, d / "w", p)
    rows: dict[str, Any] = {
        "clips": f"{len(clips)} real clips from {args.real}, <= {args.frames} frames, GT/generated {SHIFT} frames apart",
        "weights": ", ".join(f"{k}: {v}" for k, v in source.items()),
        "fvd": f"{PARAMS['fvd_variant']} variant, {PARAMS['fvd_clips']} 16 frames; sync face-cropped, exact pixels",
        **drift_rows(agg, per),
        "bf16 autocast available": str(torch.backends.mkldnn.is_available()) + " (oneDNN)"}
    report("drift", rows, args.json)
    return 0
