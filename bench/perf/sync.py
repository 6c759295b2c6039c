"""``moee-bench bench sync``: our Sync metric vs syncnet-python on the same H.264 clips, face-cropped and tracked.

Clips: :func:`pan_zoom_clip` (scikit-image's astronaut photograph panned and zoomed, libx264 yuv420p +
AAC), 224x224 face crops for the face-cropped mode and 320x320 frames for the tracked mode. Both sides get
the same random-initialised weights in the official formats (speed does not depend on the values).

* face-cropped: the reference is syncnet-python 0.2.3's step 8 (ffmpeg-python JPEG dump and aresample'd
  wav, ``SyncNetInstance.evaluate``); ours is the ``Sync`` metric with ``face_cropped=true`` through
  ``moee_bench.metrics.core.evaluate`` (what ``score --face-cropped`` runs).
* tracked: the reference is ``SyncNetPipeline.inference``; ours is the ``Sync`` metric's tracked path
  through ``moee_bench.metrics.core.evaluate``. Random S3FD weights find no face, so on both sides the S3FD network runs
  on every frame (its face head biased to background, so post-processing sees as few candidates as with
  the real weights) and the boxes then come from the same stand-in, :func:`centroid_box`.

Prints per-clip times, the ratios (median and range over ``--repeats``) and the largest Sync-C/D
difference from the reference; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from moee_bench.bench.core.paths import write_text_atomic
from moee_bench.bench.core.media import write_video
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.base import ClipInput
from moee_bench.metrics.core.registry import MetricOptions
# imported inside the functions that use them (seconds to import, or optional): cv2, ffmpeg, skimage, syncnet_python, torch; our modules that import such packages: evaluate, metric, sync_io

TRACK_BOX = 170.0


def pan_zoom_clip(path: str | Path, *, n: int = 50, size: int = 224, span: float = 230.0, phase: float = 0.0,
                  seed: int = 0) -> Path:
    """An H.264 yuv420p + AAC clip of ``size``x``size`` frames panning/zooming over the astronaut's face.

    ``span`` is the side of the source square shown (230: a face crop; ~460: head and shoulders). The audio
    is a 180 Hz tone with a 3 Hz syllable envelope plus noise (speech-like MFCC dynamics)."""
    import cv2
    from skimage import data


    img = data.astronaut()                  # RGB 512x512, the face around rows 20-220, columns 150-330
    frames = []
    for i in range(n):
        t = i + phase
        s = span * (1 + 0.05 * np.sin(t / 5.0))
        cx, cy = 240 + 10 * np.sin(t / 3.0), 120 + 6 * np.cos(t / 4.0)
        m = np.float32([[size / s, 0, -(cx - s / 2) * size / s], [0, size / s, -(cy - s / 2) * size / s]])
        frames.append(cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    rng = np.random.default_rng(seed)
    tt = np.arange(int(16000 * n / 25)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * tt) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * tt + phase))
             + 0.05 * rng.standard_normal(len(tt))).astype(np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, [np.stack(frames)], 25.0, audio=audio, crf=23)


def centroid_box(img: np.ndarray, side: float = TRACK_BOX) -> np.ndarray:
    """A stand-in face detector: one ``side``-pixel box centred on the intensity centroid (channel order free).

    A function of the pixels, so two pipelines agree only if they hand it the same frames."""
    g = img.astype(np.float64).mean(axis=2)
    ys, xs = np.indices(g.shape)
    cy, cx = (g * ys).sum() / g.sum(), (g * xs).sum() / g.sum()
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 0.99]])


def random_weights(folder: Path, seed: int = 0, *, s3fd: bool = True) -> Path:
    """``syncnet_v2.model`` and ``sfd_face.pth`` as plain random state dicts (the official formats); S3FD's
    face head is biased to background (no candidate boxes), SyncNet's BN statistics are non-trivial."""
    import torch
    from syncnet_python.detectors.s3fd.nets import S3FDNet
    from syncnet_python.SyncNetModel import S

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = S()
    for mod in net.modules():
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), folder / "syncnet_v2.model")
    if not s3fd:
        return folder
    sfd = S3FDNet(device="cpu")
    with torch.no_grad():
        for c in sfd.conf:          # the last channel is the face logit (the first head has 3 background ones)
            c.weight.zero_()
            c.bias.fill_(10.0)
            c.bias[-1] = -10.0
    torch.save(sfd.state_dict(), folder / "sfd_face.pth")
    return folder


def _reference_face_cropped(clip: Path, inst, work: Path) -> tuple[int, float, float]:
    import ffmpeg

    from moee_bench.metrics.sync.sync_io import ffmpeg_exe

    work.mkdir(parents=True)
    exe = ffmpeg_exe()
    ffmpeg.input(str(clip)).output(str(work / "%06d.jpg"), f="image2", threads=1).overwrite_output().run(cmd=exe, quiet=True)
    ffmpeg.input(str(clip)).output(str(work / "audio.wav"), ac=1, vn=None, acodec="pcm_s16le", ar=16000,
                                   af="aresample=async=1").overwrite_output().run(cmd=exe, quiet=True)
    with contextlib.redirect_stdout(io.StringIO()):
        return inst.evaluate(types.SimpleNamespace(tmp_dir=str(work), batch_size=20, vshift=15))


@contextlib.contextmanager
def _ffmpeg_on_path():
    """syncnet-python's pipeline runs ``ffmpeg`` from PATH: imageio-ffmpeg's binary, for this benchmark only."""
    from moee_bench.metrics.sync.sync_io import ffmpeg_exe

    with tempfile.TemporaryDirectory(prefix="moee_ffbin_") as d:
        os.symlink(ffmpeg_exe(), Path(d) / "ffmpeg")
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{d}{os.pathsep}{old}"
        try:
            yield
        finally:
            os.environ["PATH"] = old


def reference_pipeline(weights: Path, min_track: int, device: str = "cpu", *, run_s3fd: bool = True):
    """``SyncNetPipeline`` with the given weight files; the boxes come from :func:`centroid_box`, after
    S3FD's network has run on the frame (``run_s3fd``; tests skip it, its batching is tested on its own)."""
    from syncnet_python.syncnet_pipeline import SyncNetPipeline

    pipe = SyncNetPipeline({"s3fd_weights": str(weights / "sfd_face.pth"),
                            "syncnet_weights": str(weights / "syncnet_v2.model"), "min_track": min_track}, device=device)
    detect = pipe.s3fd.detect_faces

    def standin(rgb, conf_th=0.9, scales=(0.25,)):
        if run_s3fd:
            detect(rgb, conf_th=conf_th, scales=list(scales))
        return centroid_box(rgb)

    pipe.s3fd.detect_faces = standin
    return pipe


def our_metric(weights: Path, *, face_cropped: bool, min_track: int, device: str = "cpu", run_s3fd: bool = True):
    """The ``Sync`` metric as ``score`` builds it; tracked: boxes from :func:`centroid_box` after S3FD ran in batches."""
    from moee_bench.metrics.sync.metric import Sync

    params = {"face_cropped": str(face_cropped).lower(), "sync_min_track": min_track, "sync_track_rule": "pypi"}
    m = Sync(MetricOptions(weights=WeightsOptions(str(weights), allow_unverified=True), device=device, params=params))
    if not face_cropped and run_s3fd:
        det = m.detector()
        detect = det.detect_batch
        det.detect_batch = lambda frames: (detect(frames), [centroid_box(f) for f in frames])[1]
    elif not face_cropped:
        m._detector = types.SimpleNamespace(batch_size=8, detect_batch=lambda frames: [centroid_box(f) for f in frames])
    return m


def _ours(m, clip: Path) -> tuple[int, float, float, list]:
    from moee_bench.metrics.core.evaluate import evaluate

    r = evaluate([ClipInput(clip.stem, clip)], [m], progress=False)
    v = r.clips[0].values
    return v.get("offset"), v.get("sync_c"), v.get("sync_d"), v.get("sync_tracks", [])


def _mode(name: str, clips: list[Path], ref_fn, our_fn, repeats: int, work: Path) -> dict:
    ratios, per = [], {"ref": [], "ours": []}
    diff = 0.0
    for rep in range(repeats + 1):              # pass 0 warms up (imports, weights, caches)
        tr = to = 0.0
        for ci, c in enumerate(clips):
            t0 = time.perf_counter()
            r = ref_fn(c, work / f"{name}_r{rep}_c{ci}")
            t1 = time.perf_counter()
            o = our_fn(c)
            t2 = time.perf_counter()
            tr, to = tr + t1 - t0, to + t2 - t1
            if o[1] is not None and r[1] is not None:
                diff = max(diff, abs(o[1] - r[1]), abs(o[2] - r[2]))
        if rep:
            per["ref"].append(tr / len(clips))
            per["ours"].append(to / len(clips))
            ratios.append(tr / to)
    return {"ref_s_per_clip": statistics.median(per["ref"]), "ours_s_per_clip": statistics.median(per["ours"]),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "max_abs_diff_sync_c_d": diff}


def run(args: argparse.Namespace) -> int:
    """Time both modes on ``args.clips`` clips of ``args.frames`` frames, ``args.repeats`` timed repeats; print ratios."""
    import torch
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    device = args.device or "cpu"
    min_track = min(25, args.frames - 10)
    res: dict = {"clips": args.clips, "frames": args.frames, "repeats": args.repeats, "device": device,
                 "torch_threads": torch.get_num_threads(), "min_track": min_track}
    with tempfile.TemporaryDirectory(dir=args.workdir) as work_s, _ffmpeg_on_path():
        work = Path(work_s)
        w = random_weights(work / "weights")
        net = S()
        net.load_state_dict(torch.load(w / "syncnet_v2.model", weights_only=True))
        inst = SyncNetInstance(net.eval(), device=device)
        fc = [pan_zoom_clip(work / "fc" / f"c{i}.mp4", n=args.frames, phase=7.0 * i, seed=i) for i in range(args.clips)]
        tr = [pan_zoom_clip(work / "tr" / f"c{i}.mp4", n=args.frames, size=320, span=460.0, phase=7.0 * i, seed=i)
              for i in range(args.clips)]
        m_fc = our_metric(w, face_cropped=True, min_track=min_track, device=device)
        res["face_cropped"] = _mode("fc", fc, lambda c, d: _reference_face_cropped(c, inst, d),
                                    lambda c: _ours(m_fc, c), args.repeats, work)
        pipe = reference_pipeline(w, min_track, device)
        m_tr = our_metric(w, face_cropped=False, min_track=min_track, device=device)

        def ref_tracked(c: Path, d: Path) -> tuple:
            with contextlib.redirect_stdout(io.StringIO()):
                offs, confs, dists, best_c, min_d, _, _ = pipe.inference(str(c), None, cache_dir=str(d))
            return (offs[0] if offs else None, best_c if offs else None, min_d if offs else None)

        res["tracked"] = _mode("tr", tr, ref_tracked, lambda c: _ours(m_tr, c), args.repeats, work)
    print(f"sync bench: {args.clips} clips x {args.frames} frames (H.264 yuv420p), {args.repeats} timed repeat(s) "
          f"after a warm-up, {res['torch_threads']} torch threads, {device}")
    for mode, label in (("face_cropped", "face-cropped: step 8 + SyncNetInstance.evaluate"),
                        ("tracked", "tracked: SyncNetPipeline.inference")):
        r = res[mode]
        print(f"  {label:50s} ref {r['ref_s_per_clip'] * 1e3:8.0f} ms/clip  ours {r['ours_s_per_clip'] * 1e3:8.0f} ms/clip"
              f"  ratio {r['ratio_median']:.2f}x (min {r['ratio_min']:.2f}, max {r['ratio_max']:.2f});"
              f"  max |dSync-C|,|dSync-D| {r['max_abs_diff_sync_c_d']:.1e}")
    if args.json:
        write_text_atomic(args.json, json.dumps(res, indent=2), "--json")
    return 0
