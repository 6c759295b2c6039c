"""``moee-bench bench sync``: our Sync scorer vs syncnet-python's ``SyncNetInstance.evaluate`` on the same clips.

Both sides get the same random-initialised ``S()`` weights (speed does not depend on the values) and the
same 224x224 crop clips with 16 kHz audio. Reference chain per clip: ``ffmpeg`` image2 JPEG dump + s16
``audio.wav`` + ``evaluate`` (which reads them back). Ours: the in-memory JPEG round trip (default
``sync_pixels=jpeg``) + :class:`metrics.syncnet_core.SyncNetScorer`. Also reported: the core alone on
identical decoded frames (``evaluate`` vs ``score``). Prints per-clip times and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from moee_bench.bench.core.paths import write_text_atomic


def _clip(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    base = cv2.resize(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8), (224, 224))
    frames = np.stack([np.roll(base, 2 * i, axis=0) for i in range(n)])
    audio = np.clip(rng.standard_normal(n * 640) * 3000, -32768, 32767).astype(np.int16)
    return frames, audio


def _dump(frames: np.ndarray, audio: np.ndarray, d: Path) -> None:
    from scipy.io import wavfile

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "224x224", "-r", "25",
                    "-i", "-", "-f", "image2", "-threads", "1", str(d / "%06d.jpg")],
                   input=frames.tobytes(), check=True, capture_output=True)
    wavfile.write(d / "audio.wav", 16000, audio)


def run(args: argparse.Namespace) -> int:
    """Time both implementations on ``args.clips`` clips of ``args.frames`` frames; print ratios."""
    import torch
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S

    from moee_bench.bench.core.ffmpeg import ensure_ffmpeg_on_path
    from moee_bench.metrics.sync import jpeg_roundtrip
    from moee_bench.metrics.syncnet_core import SyncNetScorer

    ensure_ffmpeg_on_path()
    torch.manual_seed(0)
    state = S().state_dict()
    ref_net = S()
    ref_net.load_state_dict(state)
    ref = SyncNetInstance(ref_net, device="cpu")
    ours = SyncNetScorer.from_state_dict(state)
    rng = np.random.default_rng(0)
    clips = [_clip(rng, args.frames) for _ in range(args.clips)]
    t = {"ref_chain": 0.0, "ours_chain": 0.0, "ref_core": 0.0, "ours_core": 0.0}
    max_dconf = 0.0
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for rep in range(args.repeats + 1):  # first pass is the warm-up
            for ci, (frames, audio) in enumerate(clips):
                d = Path(work) / f"r{rep}_c{ci}"
                d.mkdir()
                opt = types.SimpleNamespace(tmp_dir=str(d), batch_size=20, vshift=15)
                t0 = time.perf_counter()
                _dump(frames, audio, d)
                t1 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    r = ref.evaluate(opt)
                t2 = time.perf_counter()
                rt = jpeg_roundtrip(frames)
                t3 = time.perf_counter()
                o = ours.score(rt, audio)
                t4 = time.perf_counter()
                max_dconf = max(max_dconf, abs(o.conf - r[1]), abs(o.dist - r[2]))
                if rep:
                    t["ref_chain"] += t2 - t0
                    t["ref_core"] += t2 - t1
                    t["ours_chain"] += t4 - t2
                    t["ours_core"] += t4 - t3
    n = args.clips * args.repeats
    per = {k: v / n for k, v in t.items()}
    res = {"clips": args.clips, "frames": args.frames, "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
           "per_clip_s": per, "ratio_chain": per["ref_chain"] / per["ours_chain"],
           "ratio_core": per["ref_core"] / per["ours_core"], "max_abs_diff_conf_dist": max_dconf}
    print(f"sync bench: {args.clips} clips x {args.frames} frames, {args.repeats} repeat(s), "
          f"{res['torch_threads']} torch threads")
    print(f"  reference chain (ffmpeg JPEG dump + SyncNetInstance.evaluate): {per['ref_chain'] * 1e3:9.1f} ms/clip")
    print(f"  ours (JPEG round trip + vectorised scorer):                    {per['ours_chain'] * 1e3:9.1f} ms/clip"
          f"   ratio {res['ratio_chain']:.2f}x")
    print(f"  core only: evaluate {per['ref_core'] * 1e3:.1f} ms vs score {per['ours_core'] * 1e3:.1f} ms"
          f"   ratio {res['ratio_core']:.2f}x;  max |d conf|,|d dist| = {max_dconf:.2e}")
    if args.json:
        write_text_atomic(args.json, json.dumps(res, indent=2), "--json")
    return 0
