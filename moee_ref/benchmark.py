"""``moee-bench bench moee``: MoEE generation speed and memory, with the plain SD U-Net as the same-run reference.

Builds the configured model with random weights (:func:`moee_ref.config.with_random_init`, so the
``paper`` config runs without downloads), generates ``--clips`` clips of ``--frames`` frames with ``--steps`` DDIM steps,
and prints frames/s, seconds per clip and peak memory (CUDA allocator peak on GPU, peak RSS on CPU).
The ratio line times one denoiser call of MoEE (reference, audio, MoE and temporal layers) against
one call of a diffusers ``UNet2DConditionModel`` of the same layout on the same latents.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

from moee_bench.bench.core.paths import write_text_atomic


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / repeats


def run(args: argparse.Namespace) -> int:
    from moee_bench.moee_ref.config import load_config, with_random_init
    from moee_bench.moee_ref.model import MoEEModel
    from moee_bench.moee_ref.pipeline import EmotionCondition, Guidance, MoEEPipeline
    from moee_bench.moee_ref.unet import build_unet

    cfg = with_random_init(load_config(getattr(args, "config", None) or "tiny"))
    device = torch.device(getattr(args, "device", None) or "cpu")
    steps = getattr(args, "steps", None) or cfg.infer.steps
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32     # autocast dtype; weights stay fp32
    torch.manual_seed(0)
    model = MoEEModel(cfg).eval().to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pipe = MoEEPipeline(model, device=str(device))
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (cfg.video.height, cfg.video.width, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(int(args.frames / cfg.video.fps * 16000))).astype(np.float32)
    emo = EmotionCondition("label", weights=(1.0, 0, 0, 0, 0, 0))
    guidance = Guidance(cfg.infer.guidance_ref, cfg.infer.guidance_audio, cfg.infer.guidance_emotion)
    with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
        pipe(ref, wave, emo, num_frames=min(args.frames, cfg.video.frames), steps=1, guidance=guidance)   # warm-up
        _sync(device)
        t = time.perf_counter()
        for i in range(args.clips):
            pipe(ref, wave, emo, num_frames=args.frames, steps=steps, seed=i, guidance=guidance)
        _sync(device)
    gen_s = time.perf_counter() - t

    f = cfg.video.frames
    h, w = cfg.latent_size
    lat = torch.randn(1, f, cfg.vae.latent_channels, h, w, device=device)
    tt = torch.tensor([500], device=device)
    from moee_bench.moee_ref.model import Conditions

    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
        ref_lat = model.encode_images(torch.zeros(1, 3, cfg.video.height, cfg.video.width, device=device))
        tokens = model.reference_tokens(ref_lat)
        audio = torch.zeros(1, f, 2 * (2 * cfg.audio.window + 1), cfg.audio.dim, device=device)
        z = torch.zeros(1, cfg.emotion.num_queries, cfg.emotion.latent_dim, device=device)
        cond = Conditions(tokens, audio, z, None, torch.ones(1, device=device))        # experts mixed by the model's g
        group = ref_lat[:, None].repeat(1, 1 + cfg.video.motion_frames, 1, 1, 1)

        def moee_call():
            model.set_reference(group, tokens)
            model.denoise(lat, tt, cond)
            model.set_reference(None, None)

        plain = build_unet(cfg).eval().to(device)
        flat = lat.flatten(0, 1)
        plain_tokens = tokens.repeat_interleave(f, 0)

        def plain_call():
            plain(flat, tt.repeat(f), encoder_hidden_states=plain_tokens)

        t_moee = _timed(moee_call, device, args.repeats)
        t_plain = _timed(plain_call, device, args.repeats)
    peak = (torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    n_params = sum(p.numel() for p in model.parameters())
    res = {"config": cfg.name, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "autocast": str(dtype).removeprefix("torch.") if device.type == "cuda" else "off", "size": [cfg.video.height, cfg.video.width],
           "params_millions": n_params / 1e6, "clips": args.clips, "frames_per_clip": args.frames, "ddim_steps": steps,
           "guidance": [guidance.ref, guidance.audio, guidance.emotion],
           "frames_per_s": args.clips * args.frames / gen_s, "s_per_clip": gen_s / args.clips,
           "peak_memory_gib": peak, "peak_memory_kind": "cuda allocator" if device.type == "cuda" else "process RSS",
           "denoiser_call_s": t_moee, "plain_sd_unet_call_s": t_plain, "moee_over_plain_unet": t_moee / t_plain,
           "command": " ".join(sys.argv)}
    for k, v in res.items():
        print(f"{k:<24}{v:.4g}" if isinstance(v, float) else f"{k:<24}{v}")
    if args.json:
        write_text_atomic(args.json, json.dumps(res, indent=1), "--json")
    return 0
