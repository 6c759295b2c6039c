"""Two-stage MoEE training with accelerate (paper section 3), plus a stage 0 for random-init configs.

Stage 0 fits the VAE alone (L1 + LPIPS reconstruction + ``VAE_KL_WEIGHT`` * KL, as SD's VAE was
trained). It exists only for configs without pretrained weights (``tiny``): the ``paper`` config loads
the pretrained sd-vae-ft-mse, which the paper keeps frozen, and a random VAE could never decode a face.

Stage 1 trains the ReferenceNet and the denoiser (with audio and temporal layers) without the MoE
layers; stage 2 freezes them and trains only the MoE experts/gates and Emotion-to-Latents, with masked
noisy emotion sampling (:mod:`moee_ref.data`) and the gate loss ``KL(label weights || g)``. The
experts are mixed by the network's own global gate ``g`` in training as in inference (the paper's
soft assignment); only the ``palette`` variant forces ``g`` to the label's weights. Both stages
minimise ``L_latent + lambda * cos(t*pi/(2T)) * (L1 + VGG feature loss)`` (:mod:`moee_ref.losses`).

Variants (:mod:`moee_ref.variants`, ``variant=``) act in stage 2, so every variant can start from the
same stage-1 checkpoint: MoE layers that a stage-0/1 checkpoint holds were never trained, and when the
variant changes their layout they are freshly initialised instead of loaded (logged).
``random_init`` builds every network from random weights and reads nothing from the weights
registry (the T5 text encoder becomes the packaged MiniLM, the perceptual loss a random VGG): for
smoke tests and throughput on a machine without weights; the checkpoint's config says so.

Runs resume from the newest checkpoint in the output folder (model, optimizer and RNG states), so a
killed run loses at most ``train.save_every`` steps. Stage 2 starts from a stage-1 checkpoint
(``init``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from moee_bench.bench.core.manifest import Manifest, load_manifest
from moee_bench.bench.core.splits import select_split, split_record
from moee_bench.moee_ref.checkpoint import (checkpoint_config, latest_checkpoint, load_model_weights, load_optimizer,
                                 read_trainer_state, save_checkpoint)
from moee_bench.moee_ref.config import ConfigError, MoEEConfig, load_config, with_random_init, with_variant
from moee_bench.moee_ref.data import Batch, WindowSampler, load_clips
from moee_bench.moee_ref.emotion_latents import build_text_encoder
from moee_bench.moee_ref.losses import build_perceptual, latent_mask, masked_mean, spatial_weight, x0_estimate
from moee_bench.moee_ref.model import Conditions, MoEEModel, build_train_scheduler
from moee_bench.moee_ref.moe import gate_kl, label_weights
from moee_bench.moee_ref.diagnostics import gate_routing, routing_summary
# imported inside the functions that use them (seconds to import, or optional): accelerate


VAE_KL_WEIGHT = 1e-6


@dataclass
class TrainResult:
    """What a training run did."""

    out_dir: Path
    checkpoint: Path
    stage: int
    start_step: int
    steps: int
    losses: list[float] = field(default_factory=list)
    fixed_batch_before: float = float("nan")
    fixed_batch_after: float = float("nan")
    seconds: float = 0.0


def mixed_precision_for(cfg: MoEEConfig, device: str) -> str:
    mp = cfg.train.mixed_precision
    if mp != "auto":
        return mp
    if not device.startswith("cuda"):
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Trainer:
    """Holds the model, the frozen encoders, the loss networks and one stage's optimisation state."""

    def __init__(self, cfg: MoEEConfig, stage: int, *, device: str = "cpu", weights=None, seed: int = 0) -> None:
        from accelerate import Accelerator

        torch.manual_seed(seed)
        self.cfg, self.stage, self.seed = cfg, stage, seed
        self.accelerator = Accelerator(mixed_precision=mixed_precision_for(cfg, device),
                                       cpu=not device.startswith("cuda"))
        self.device = self.accelerator.device
        self.model = MoEEModel(cfg, weights)
        self.scheduler = build_train_scheduler()
        self.perceptual = build_perceptual(cfg, weights).to(self.device)
        self._weights = weights
        self._text_encoder = None
        self.optimizer: torch.optim.Optimizer | None = None

    @property
    def text_encoder(self):
        """The frozen text encoder, loaded on the first text-conditioned batch (label- and audio-only
        training never loads it)."""
        if self._text_encoder is None:
            self._text_encoder = build_text_encoder(self.cfg.emotion.text_encoder, self._weights)
        return self._text_encoder

    def setup_optimizer(self) -> None:
        params = self.model.set_stage(self.stage)
        if self.cfg.train.gradient_checkpointing:
            self.model.denoiser.enable_gradient_checkpointing()
            self.model.reference_net.enable_gradient_checkpointing()
        lr = self.cfg.train.lr_stage2 if self.stage == 2 else self.cfg.train.lr_stage1
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=self.cfg.train.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(self.model, opt)

    @property
    def core(self) -> MoEEModel:
        return self.accelerator.unwrap_model(self.model)

    # ----------------------------------------------------------------- one step
    def conditions(self, batch: Batch, gen: torch.Generator, *, drop: bool = True) -> tuple[Conditions, torch.Tensor | None]:
        """Encode the batch's conditions (with training dropout when ``drop``); returns conditions and
        reference latents for the ReferenceNet (None when the reference is dropped)."""
        m, cfg, b = self.core, self.cfg, batch.frames.shape[0]
        with torch.no_grad():
            ref_lat = m.encode_images(batch.ref)
            group = [ref_lat[:, None]]
            if batch.motion.shape[1]:
                group.append(m.encode_images(batch.motion.flatten(0, 1)).reshape(b, batch.motion.shape[1], *ref_lat.shape[1:]))
            ref_group = torch.cat(group, 1)

        def rand(n: int) -> torch.Tensor:
            return torch.rand(n, generator=gen).to(self.device)

        drop_ref = drop and float(rand(1)) < cfg.train.p_drop_ref
        audio = m.project_audio(batch.audio)
        if drop:
            keep = (rand(b) >= cfg.train.p_drop_audio).float()
            audio = audio * keep[:, None, None, None]
        emotion = routing = active = None
        if self.stage == 2:
            emotion = self.emotion_condition(batch)
            routing = m.routing(batch.weights, batch.modality)          # None except for the palette variant
            active = label_weights(batch.weights)[1]
        ref_tokens = None if drop_ref else m.reference_tokens(ref_lat)
        return Conditions(ref_tokens, audio, emotion, routing, active), (None if drop_ref else ref_group)

    def emotion_condition(self, batch: Batch) -> torch.Tensor:
        m = self.core
        if batch.modality == "label":
            return m.emotion_latents("label", batch.weights, torch.ones(len(batch.weights), 1, dtype=torch.bool))
        if batch.modality == "text":
            feats, mask = self.text_encoder(batch.texts)
            return m.emotion_latents("text", feats.to(self.device), mask.to(self.device))
        mask = torch.ones(batch.emotion_audio.shape[:2], dtype=torch.bool, device=self.device)
        return m.emotion_latents("audio", batch.emotion_audio, mask)

    def vae_loss(self, batch: Batch, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 0: reconstruction of the batch's frames through the VAE."""
        m = self.core
        x = batch.frames.flatten(0, 1)
        post = m.vae.encode(x).latent_dist
        noise = torch.randn(post.mean.shape, generator=gen).to(self.device)
        rec = m.vae.decode(post.mean + post.std * noise).sample
        l1 = (rec - x).abs().mean()
        lp = self.perceptual(rec.clamp(-1, 1), x).mean()
        kl = post.kl().mean()
        total = l1 + lp + VAE_KL_WEIGHT * kl
        return total, {"l1": l1.item(), "perceptual": lp.item(), "kl": kl.item(), "total": total.item()}

    def loss(self, batch: Batch, gen: torch.Generator, *, drop: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of one batch; ``gen`` draws timesteps, noise and dropout."""
        cfg, m = self.cfg, self.core
        batch = batch.to(self.device)
        if self.stage == 0:
            return self.vae_loss(batch, gen)
        b, f = batch.frames.shape[:2]
        with torch.no_grad():
            z0 = m.encode_images(batch.frames.flatten(0, 1)).reshape(b, f, -1, *m.cfg.latent_size)
        cond, ref_group = self.conditions(batch, gen, drop=drop)
        T = self.scheduler.config.num_train_timesteps
        t = torch.randint(0, T, (b,), generator=gen).to(self.device)
        noise = torch.randn(z0.shape, generator=gen).to(self.device)
        zt = self.scheduler.add_noise(z0.flatten(0, 1), noise.flatten(0, 1), t.repeat_interleave(f)).reshape(z0.shape)
        with self.accelerator.autocast():
            m.set_reference(ref_group, cond.ref_tokens)
            eps = m.denoise(zt, t, cond, moe=self.stage == 2)
            gates = m.gate_outputs()
        # the ReferenceNet tokens and block conditions stay set until after backward: gradient
        # checkpointing re-runs the blocks (and our hooks) then; step() / eval_loss() clear them
        lmask = latent_mask(batch.loss_mask.flatten(0, 1), tuple(z0.shape[-2:])).reshape(b, f, 1, *z0.shape[-2:])
        l_latent = masked_mean((eps.float() - noise) ** 2, lmask).mean()
        k = min(cfg.train.spatial_loss_frames, f)
        x0 = x0_estimate(zt[:, :k], eps[:, :k].float(), self.scheduler.alphas_cumprod, t)
        pred = m.decode_latents(x0.flatten(0, 1).to(m.vae.dtype)).float().clamp(-1, 1)
        gt = batch.frames[:, :k].flatten(0, 1)
        pmask = batch.loss_mask[:, :k].flatten(0, 1)
        l1 = masked_mean((pred - gt).abs(), pmask)
        lp = self.perceptual(pred * pmask, gt * pmask).reshape(-1)
        w = spatial_weight(t, T).repeat_interleave(k)
        l_spatial = (w * (l1 + lp)).mean()
        total = l_latent + cfg.train.lambda_spatial * l_spatial
        logs = {"latent": l_latent.item(), "spatial": l_spatial.item()}
        if self.stage == 2 and gates:
            target, active = label_weights(batch.weights)
            tgt = target.repeat_interleave(f, 0)
            act = active.repeat_interleave(f, 0)
            l_gate = torch.stack([gate_kl(g.float(), tgt, act) for g in gates]).mean()
            total = total + cfg.moe.gate_loss_weight * l_gate
            logs["gate"] = l_gate.item()
        logs["total"] = total.item()
        return total, logs

    def step(self, batch: Batch, gen: torch.Generator) -> dict[str, float]:
        self.model.train()
        loss, logs = self.loss(batch, gen)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.core.set_reference(None, None)
        if self.cfg.train.grad_clip:
            self.accelerator.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                             self.cfg.train.grad_clip)
        self.optimizer.step()
        return logs

    @torch.no_grad()
    def eval_loss(self, batch: Batch, seed: int = 1234) -> float:
        """The loss of a fixed batch with fixed timesteps and noise, without dropout (for progress)."""
        self.model.eval()
        g = torch.Generator().manual_seed(seed)
        loss, _ = self.loss(batch, g, drop=False)
        self.core.set_reference(None, None)
        return float(loss)


def train(config: str | Path | MoEEConfig, *, stage: int, manifest: str | Path, out_dir: str | Path,
          split: str = "train", init: str | Path | None = None, steps: int | None = None, seed: int = 0,
          device: str = "cpu", weights=None, resume: bool = True, max_clips: int | None = None,
          clip_cache: str | Path | None = None, variant: str | None = None, random_init: bool = False,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train one stage; resumes from ``out_dir``'s newest checkpoint when there is one.

    Prepared clips are cached in ``clip_cache`` (default ``out_dir/clip_cache``; share one folder
    between stages to decode a dataset once). ``variant`` switches the config to a named variant (the
    init checkpoint's, or the config's, when None); ``random_init``: see the module docstring.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = latest_checkpoint(out) if resume else None
    if previous is not None:
        state = read_trainer_state(previous)
        if state["stage"] != stage:
            raise ConfigError(f"{out} holds a stage-{state['stage']} run; use another --out for stage {stage}")
        cfg = checkpoint_config(previous)
    elif init is not None:
        cfg = checkpoint_config(init)
    else:
        cfg = config if isinstance(config, MoEEConfig) else load_config(config)
    if random_init and previous is None and init is None:
        cfg = with_random_init(cfg)
    init_state = read_trainer_state(init) if init is not None and previous is None else None
    if variant is not None and variant != cfg.variant:
        if previous is not None:
            raise ConfigError(f"{out} holds a run of variant {cfg.variant!r}; use another --out for {variant!r}")
        if init_state is not None and int(init_state["stage"]) >= 2:
            raise ConfigError(f"{init} is a stage-2 checkpoint of variant {cfg.variant!r}; a variant starts from a "
                              "stage-1 checkpoint")
        cfg = with_variant(cfg, variant)
    if stage == 2 and init is None and previous is None:
        raise ConfigError("stage 2 starts from a stage-1 checkpoint: pass --init RUN_DIR/ckpt-NNNNNNN")
    if stage == 1 and init is None and previous is None and not cfg.pretrained:
        log(f"warning: config {cfg.name!r} has no pretrained VAE and no --init: the VAE stays random, so generated "
            "frames cannot look like faces; run --stage 0 first and pass its checkpoint as --init")
    total_steps = steps if steps is not None else cfg.train.steps
    m = load_manifest(manifest)
    ids, training = training_clips(m, split, max_clips, stage, log)
    training = _inherited_training(previous, init, training)

    trainer = Trainer(cfg, stage, device=device, weights=weights, seed=seed)
    if init_state is not None:
        fresh_moe = int(init_state["stage"]) < 2 and init_state["config"].get("moe") != cfg.to_dict()["moe"]
        if fresh_moe:
            log(f"variant {cfg.variant!r}: the MoE layers of {Path(init).name} (stage {init_state['stage']}, never trained) "
                "have another layout and are freshly initialised")
        load_model_weights(trainer.model, init, skip=(lambda k: ".moe." in k) if fresh_moe else None)
    if previous is not None:
        load_model_weights(trainer.model, previous)
    trainer.setup_optimizer()
    start = 0
    np_state = None
    if previous is not None:
        extra = load_optimizer(trainer.optimizer, previous)
        start = int(state["step"])
        np_state = state.get("numpy_rng")
        log(f"resuming stage {stage} from {previous.name} (step {start})")

    clips = load_clips(m, ids, cfg, trainer.core.audio_encoder, emotion_encoder=trainer.core.emotion_audio_encoder,
                       mouth=stage == 2 and cfg.train.masked_noisy, cache_dir=clip_cache or out / "clip_cache", log=log)
    sampler = WindowSampler(clips, cfg, seed=seed)
    fixed = WindowSampler(clips, cfg, seed=seed + 7).sample(cfg.train.batch_size, stage,
                                                              modality=None if stage == 2 else "label")
    if np_state is not None:
        sampler.rng.bit_generator.state = np_state
    gen = torch.Generator().manual_seed(seed)
    if previous is not None and "step_generator" in extra:
        gen.set_state(extra["step_generator"])
    before = trainer.eval_loss(fixed)
    if stage == 2 and cfg.train.masked_noisy and cfg.train.p_noisy > 0:
        sampler.noisy_pools()
    for note in dict.fromkeys(sampler.notes):
        log(note)
    log(f"stage {stage} ({cfg.name}, variant {cfg.variant}{', random init' if cfg.random_init else ''}): {len(clips)} clips, {sum(p.numel() for p in trainer.core.stage_parameters(stage)):,} "
        f"trainable parameters, fixed-batch loss {before:.4f}")
    losses: list[float] = []
    log_path = out / "train_log.jsonl"
    ckpt = previous
    for step in range(start + 1, total_steps + 1):
        logs = trainer.step(sampler.sample(cfg.train.batch_size, stage), gen)
        losses.append(logs["total"])
        if step % cfg.train.log_every == 0 or step == total_steps:
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"step": step, "stage": stage, **logs}) + "\n")
            log(f"step {step}/{total_steps} " + " ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        if step % cfg.train.save_every == 0 or step == total_steps:
            ckpt = save_checkpoint(out, step, trainer.core, trainer.optimizer, _state(cfg, stage, seed, sampler, training),
                                   {"step_generator": gen.get_state()})
    after = trainer.eval_loss(fixed)
    if ckpt is None:
        ckpt = save_checkpoint(out, start, trainer.core, trainer.optimizer, _state(cfg, stage, seed, sampler, training),
                               {"step_generator": gen.get_state()})
    log(f"stage {stage} done: fixed-batch loss {before:.4f} -> {after:.4f}; checkpoint {ckpt}")
    if stage == 2:
        trainer.model.eval()
        log(routing_summary(gate_routing(trainer.core)))
    return TrainResult(out, ckpt, stage, start, total_steps, losses, before, after, time.perf_counter() - t_start)


def _state(cfg: MoEEConfig, stage: int, seed: int, sampler: WindowSampler, training: list[dict[str, Any]]) -> dict[str, Any]:
    return {"stage": stage, "seed": seed, "config": cfg.to_dict(), "numpy_rng": sampler.rng.bit_generator.state,
            "torch_version": torch.__version__, "numpy_version": np.__version__, "training_data": training}


def training_clips(m: Manifest, split: str, max_clips: int | None, stage: int,
                   log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    """The clip ids a stage trains on and the record of them kept in every checkpoint.

    The split must exist (no fallback to other clips); clips labelled outside the MoEE taxonomy
    (contempt, calm) are skipped with a counted reason, since the six experts cannot represent them.
    """
    chosen = select_split(m, split)
    outside = Counter(c.emotion.label for c in chosen if not c.emotion.in_taxonomy)
    usable = [c for c in chosen if c.emotion.in_taxonomy]
    if outside:
        log(f"skipping {sum(outside.values())} clips of split {split!r} outside the MoEE taxonomy: {dict(outside)}")
    if not usable:
        raise ConfigError(f"split {split!r} of manifest {m.path} has no clip inside the MoEE taxonomy to train on")
    usable = usable[:max_clips] if max_clips else usable
    record = split_record(m, split, usable)
    record.update(stage=stage, clip_ids_hash=hashlib.sha256("\n".join(c.clip_id for c in usable).encode()).hexdigest(),
                  skipped_outside_taxonomy=dict(outside), max_clips=max_clips)
    return [c.clip_id for c in usable], record


def _inherited_training(previous: Path | None, init: str | Path | None, this: dict[str, Any]) -> list[dict[str, Any]]:
    """Training-data records of every stage so far: the resumed run's, or the init checkpoint's plus this stage's."""
    if previous is not None:
        before = read_trainer_state(previous).get("training_data") or []
        mine = [t for t in before if t.get("stage") == this["stage"]]
        if mine and (mine[-1].get("hash"), mine[-1].get("clip_ids_hash")) != (this["hash"], this["clip_ids_hash"]):
            raise ConfigError(f"{previous} was trained on other clips (split {mine[-1].get('name')!r}, hash "
                              f"{str(mine[-1].get('hash'))[:12]}); resume it with the same manifest and split, or use "
                              "another --out")
        return list(before) if mine else [*before, this]
    inherited: list[dict[str, Any]] = []
    if init is not None:
        inherited = read_trainer_state(init).get("training_data") or [
            {"stage": None, "dataset": None, "identities": [], "unknown": f"{init} records no training data"}]
    return [*inherited, this]
