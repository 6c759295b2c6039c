"""``moee-bench bench sync``: our Sync-C/D scorer vs syncnet-python's ``SyncNetInstance.evaluate`` on the
same crop clips (random-initialised SyncNet weights, identical for both; numbers are compared too)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from metrics.benchmarks.common import report, timed
from metrics.sync import jpeg_roundtrip
from metrics.syncnet_core import load_syncnet, score


def run(args) -> int:
    from scipy.io import wavfile
    from syncnet_python.SyncNetInstance import SyncNetInstance

    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = load_syncnet()
    rng = np.random.default_rng(0)
    n = args.frames
    frames = rng.integers(0, 255, (n, 224, 224, 3), dtype=np.uint8)
    audio = (rng.standard_normal(n * 640) * 3000).astype(np.int16)
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        for i, f in enumerate(frames):
            cv2.imwrite(str(Path(d) / f"{i + 1:06d}.jpg"), f)
        wavfile.write(Path(d) / "audio.wav", 16000, audio)
        decoded = np.stack([cv2.imread(str(Path(d) / f"{i + 1:06d}.jpg")) for i in range(n)])
        inst = SyncNetInstance(net, device="cpu")
        opt = SimpleNamespace(tmp_dir=d, batch_size=20, vshift=15)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            t_ref, ref = timed(lambda: inst.evaluate(opt), args.repeats)
        t_ours, ours = timed(lambda: score(net, decoded, audio), args.repeats)
        t_rt, _ = timed(lambda: score(net, jpeg_roundtrip(frames), audio), args.repeats)
        t_big, _ = timed(lambda: score(net, decoded, audio, batch=64), args.repeats)
    report("sync", {"frames per clip": n, "syncnet-python evaluate (s/clip)": t_ref,
                    "moee-bench score, batch 20 (s/clip)": t_ours, "moee-bench score, batch 64 (s/clip)": t_big,
                    "moee-bench incl. ffmpeg JPEG round trip (s/clip)": t_rt,
                    "speed-up (batch 20)": t_ref / t_ours, "speed-up (batch 64)": t_ref / t_big,
                    "offset equal": ours.offset == ref[0], "|conf diff|": abs(ours.conf - ref[1]),
                    "|dist diff|": abs(ours.dist - ref[2]), "weights": "random init (same for both)"}, args.json)
    return 0
