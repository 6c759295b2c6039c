"""``moee-bench bench moee``: MoEE generation speed and memory, with the plain SD U-Net as the same-run reference.

Builds the configured model with random weights (:func:`moee_ref.config.with_random_init`, so the
``paper`` config runs without downloads), generates ``--clips`` clips of ``--frames`` frames with ``--steps`` DDIM steps,
and prints frames/s, seconds per clip and peak memory (CUDA allocator peak on GPU, peak RSS on CPU).
The ratio line times one denoiser call of MoEE (reference, audio, MoE and temporal layers) against
one call of a diffusers ``UNet2DConditionModel`` of the same layout on the same latents.

With ``--train-steps N`` it also times N optimisation steps of stage 1 and of stage 2 through
:class:`moee_ref.train.Trainer` (the code ``moee-bench train`` runs: accelerate, the config's mixed
precision and gradient checkpointing, the full loss with its VAE decode and VGG term) on one synthetic
batch of the config's shape (random frames, audio features and emotion-audio features; the data loader
is not timed), and a plain SD U-Net training step (noise-prediction MSE, AdamW, same autocast) as the
same-run reference. Every result is marked ``random_init``: a smoke test and a throughput figure.
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
import gc
from moee_bench.moee_ref.config import load_config, with_random_init
from moee_bench.moee_ref.data import Batch
# imported inside the functions that use them (seconds to import, or optional): our modules that import such packages: model, pipeline, train


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


def synthetic_batch(cfg, trainer, *, modality: str = "label", seed: int = 0):
    """One :class:`moee_ref.data.Batch` of the config's shape with random content (batch_size samples)."""
    g = torch.Generator().manual_seed(seed)
    b, f, m = cfg.train.batch_size, cfg.video.frames, cfg.video.motion_frames
    h, w = cfg.video.height, cfg.video.width
    core = trainer.core
    hidden = core.audio_encoder.config.hidden_size
    emo_dim = core.emotion_audio_encoder.dim if core.emotion_audio_encoder is not None else hidden
    weights = torch.zeros(b, 6)
    weights[:, 0] = 1.0
    rand = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1     # noqa: E731  (frames in [-1, 1])
    return Batch(frames=rand(b, f, 3, h, w), ref=rand(b, 3, h, w), motion=rand(b, m, 3, h, w),
                 audio=torch.randn(b, f, 2 * (2 * cfg.audio.window + 1), hidden, generator=g),
                 weights=weights, texts=["a happy face"] * b,
                 emotion_audio=torch.randn(b, 2 * f, emo_dim, generator=g),
                 loss_mask=torch.ones(b, f, 1, h, w), noisy=torch.zeros(b, dtype=torch.bool), modality=modality)


def _fresh_peak(device: torch.device) -> None:
    """Free cached CUDA blocks and restart the allocator's peak (no-op on CPU, whose RSS peak cannot restart)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    """CUDA allocator peak on a GPU, process peak RSS on CPU, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def train_steps(cfg, device: torch.device, steps: int) -> dict[str, float | str]:
    """Seconds per training step and peak memory of stages 1 and 2 (Trainer.step on a synthetic batch),
    and of a plain SD U-Net step of the same size under the same mixed precision."""
    from moee_bench.moee_ref.train import Trainer, mixed_precision_for
    from moee_bench.moee_ref.unet import build_unet

    out: dict[str, float | str] = {"train_mixed_precision": mixed_precision_for(cfg, str(device)),
                                   "train_batch": f"{cfg.train.batch_size} x {cfg.video.frames} frames "
                                                  f"+ {cfg.video.motion_frames} motion at {cfg.video.height}x{cfg.video.width}"}
    for stage in (1, 2):
        _fresh_peak(device)
        tr = Trainer(cfg, stage, device=str(device), seed=0)
        tr.setup_optimizer()
        batch = synthetic_batch(cfg, tr)
        gen = torch.Generator().manual_seed(0)
        losses = [tr.step(batch, gen)["total"]]                  # warm-up (allocations, autotuning)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            losses.append(tr.step(batch, gen)["total"])
        _sync(device)
        out[f"stage{stage}_s_per_step"] = (time.perf_counter() - t) / steps
        out[f"stage{stage}_peak_memory_gib"] = _peak_gib(device)
        out[f"stage{stage}_trainable_millions"] = sum(p.numel() for p in tr.core.stage_parameters(stage)) / 1e6
        out[f"stage{stage}_losses"] = " ".join(f"{v:.4g}" for v in losses)
        if not all(np.isfinite(losses)):
            raise RuntimeError(f"stage {stage}: non-finite training loss {losses}")
        del tr, batch
        gc.collect()

    _fresh_peak(device)
    torch.manual_seed(0)
    unet = build_unet(cfg).to(device).train()
    if cfg.train.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    n = cfg.train.batch_size * cfg.video.frames
    h, w = cfg.latent_size
    lat = torch.randn(n, cfg.vae.latent_channels, h, w, device=device)
    ctx = torch.randn(n, 1, cfg.unet.cross_attention_dim, device=device)
    tt = torch.randint(0, 1000, (n,), device=device)
    mp = out["train_mixed_precision"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(mp))

    def plain_step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.mse_loss(unet(lat, tt, encoder_hidden_states=ctx).sample.float(), lat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out["plain_sd_unet_s_per_step"] = _timed(plain_step, device, steps)
    out["plain_sd_unet_peak_memory_gib"] = _peak_gib(device)
    out["stage1_over_plain_unet"] = float(out["stage1_s_per_step"]) / float(out["plain_sd_unet_s_per_step"])
    return out


def run(args: argparse.Namespace) -> int:
    from moee_bench.moee_ref.model import MoEEModel
    from moee_bench.moee_ref.pipeline import EmotionCondition, Guidance, MoEEPipeline
    from moee_bench.moee_ref.unet import build_unet

    cfg = with_random_init(load_config(getattr(args, "config", None) or "tiny"))
    device = torch.device(getattr(args, "device", None) or "cpu")
    steps = getattr(args, "steps", None) or cfg.infer.steps
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32     # autocast dtype; weights stay fp32
    torch.manual_seed(0)
    model = MoEEModel(cfg).eval().to(device)
    _fresh_peak(device)
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
    peak = _peak_gib(device)
    n_params = sum(p.numel() for p in model.parameters())
    res = {"config": cfg.name, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "autocast": str(dtype).removeprefix("torch.") if device.type == "cuda" else "off", "size": [cfg.video.height, cfg.video.width],
           "params_millions": n_params / 1e6, "clips": args.clips, "frames_per_clip": args.frames, "ddim_steps": steps,
           "guidance": [guidance.ref, guidance.audio, guidance.emotion],
           "frames_per_s": args.clips * args.frames / gen_s, "s_per_clip": gen_s / args.clips,
           "peak_memory_gib": peak, "peak_memory_kind": "cuda allocator" if device.type == "cuda" else "process RSS",
           "denoiser_call_s": t_moee, "plain_sd_unet_call_s": t_plain, "moee_over_plain_unet": t_moee / t_plain,
           "random_init": True, "command": " ".join(sys.argv)}
    if getattr(args, "train_steps", None):
        del model, plain, pipe
        res.update(train_steps(cfg, device, args.train_steps))
    for k, v in res.items():
        print(f"{k:<31}{v:.4g}" if isinstance(v, float) else f"{k:<31}{v}")
    if args.json:
        write_text_atomic(args.json, json.dumps(res, indent=1), "--json")
    return 0
