"""The ``moee-ref`` method: a trained MoEE checkpoint behind the benchmark's method protocol.

Config keys: ``checkpoint`` (a ``ckpt-*`` folder, or a training output folder whose newest checkpoint
is used, or ``builtin:tiny``: the trained tiny model shipped in the package, :mod:`moee_ref.shipped`;
required unless ``random_init``), ``device`` (default cpu), ``steps`` (DDIM steps; default the
config's), ``guidance_ref`` / ``guidance_audio`` / ``guidance_emotion``, ``emotion_input`` (``auto``:
the request's audio, else its label, else its text; ``text``: the clip's text; ``audio``: the driving
audio itself), ``routing`` (``model``, default: the experts are mixed by the network's own global gate;
``palette``: a label / compound / mixture condition's weights overwrite it, for hand-mixed compounds),
``precision`` (``auto`` | ``fp32`` | ``bf16`` | ``fp16``; auto = bf16 autocast on a GPU), ``random_init``
(``true``: no checkpoint, every network random, built from ``config`` = ``tiny`` | ``paper`` | a TOML
file; for smoke tests and throughput only, every result is marked ``random_init``), ``batch`` (clips denoised
together, default 32; each clip keeps its own seed, so its frames match a batch of one to within one grey level in
a few pixels per 100,000, the floating-point order of batched kernels).

Emotion: a label, compound or mixture spec becomes the label's emotion latent; ``emotion_text`` uses
the text encoder; ``emotion_audio`` (a wav or video) the audio emotion encoder; neutral is residual
only. One method per variant (:mod:`moee_ref.variants`): ``moee-ref`` is the paper's model,
``moee-ref:<variant>`` (e.g. ``moee-ref:no-moe``) the ablations and options; each refuses a checkpoint
trained as another variant.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from moee_bench.baselines.base import Capabilities, GenerationRequest, GenerationResult, Method
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError, ClipError, outcome
from moee_bench.moee_ref.data import resize_image
from moee_bench.moee_ref.variants import VARIANTS
from moee_bench.moee_ref.config import load_config, with_random_init, with_variant
# imported inside the functions that use them (seconds to import, or optional): our modules that import such packages: checkpoint, model, pipeline


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise BenchError(f"moee-ref: expected true or false, got {value!r}")
    return text in ("true", "1", "yes")


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The checkpoint folder: ``checkpoint`` itself, or the newest checkpoint of a training output folder."""
    from moee_bench.moee_ref.checkpoint import latest_checkpoint

    p = Path(checkpoint)
    if not (p / "trainer.json").is_file():
        newest = latest_checkpoint(p)
        if newest is None:
            raise BenchError(f"moee-ref: no MoEE checkpoint at {p}. Train one with `moee-bench train --config tiny "
                             f"--stage 1 --out RUN1` (then --stage 2 --init RUN1/ckpt-NNNNNNN --out RUN2) and pass "
                             f"--checkpoint RUN2")
        p = newest
    return p


def load_trained(checkpoint: str | Path, device: str = "cpu"):
    """(model, checkpoint folder) from a checkpoint folder or a training output folder."""
    from moee_bench.moee_ref.checkpoint import checkpoint_config, load_model_weights
    from moee_bench.moee_ref.model import MoEEModel

    p = resolve_checkpoint(checkpoint)
    model = MoEEModel(checkpoint_config(p))
    load_model_weights(model, p)
    return model.eval().to(device), p


class MoEERef(Method):
    """MoEE reference implementation (``moee_ref``), the paper's model (variant ``full``)."""

    name = "moee-ref"
    variant = "full"
    version = "2"
    capabilities = Capabilities(emotion_inputs=frozenset({"label", "compound", "mixture", "text", "audio"}),
                                native_fps=25.0, native_size=(512, 512), seedable=True,
                                emotion_vocabulary=("happiness", "sadness", "anger", "disgust", "fear", "surprise",
                                                    "neutral"))

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.random_init = _flag(self.config.get("random_init", False))
        if not self.config.get("checkpoint") and not self.random_init:
            raise BenchError(f"{self.name} needs a checkpoint: pass --checkpoint PATH (or `checkpoint = \"PATH\"` in the "
                             f"suite's method config); train one with `moee-bench train --config tiny --stage 1` (then "
                             f"--stage 2{'' if self.variant == 'full' else ' --variant ' + self.variant})")
        if str(self.config.get("routing", "model")) not in ("model", "palette"):
            raise BenchError(f"{self.name}: routing must be 'model' or 'palette', got {self.config['routing']!r}")
        self._pipe = None
        self._training: list[dict[str, Any]] | str | None = None
        self.checkpoint_path: Path | None = None
        self.weights_provenance: dict[str, Any] | None = None

    def training_data(self) -> list[dict[str, Any]] | str:
        """The checkpoint's recorded training data (every stage back to stage 0; see ``moee_ref.train``)."""
        if self.random_init:
            return "none (random initialisation, never trained)"
        if self._training is None:
            from moee_bench.moee_ref.checkpoint import read_trainer_state
            from moee_bench.moee_ref.shipped import is_builtin, variant_record

            if is_builtin(self.config["checkpoint"]):
                rec = variant_record(str(self.config["checkpoint"]), self.variant)["training_data"]
            else:
                rec = read_trainer_state(resolve_checkpoint(self.config["checkpoint"])).get("training_data")
            self._training = rec if rec else "unknown (the checkpoint predates training-data provenance)"
        return self._training

    def _model(self, device: str):
        if self.random_init:
            from moee_bench.moee_ref.model import MoEEModel

            cfg = with_variant(with_random_init(load_config(str(self.config.get("config", "tiny")))), self.variant)
            torch.manual_seed(int(self.config.get("init_seed", 0)))
            return MoEEModel(cfg).eval().to(device)
        from moee_bench.moee_ref.shipped import is_builtin, load_builtin

        if is_builtin(self.config["checkpoint"]):
            model, prov = load_builtin(str(self.config["checkpoint"]), self.variant, device)
            self.checkpoint_path = Path(prov["files"][1]["file"])
            self.weights_provenance = prov
            return model
        model, self.checkpoint_path = load_trained(self.config["checkpoint"], device)
        if model.cfg.variant != self.variant:
            raise BenchError(f"{self.name} needs a checkpoint trained as variant {self.variant!r}, but "
                             f"{self.checkpoint_path} is variant {model.cfg.variant!r}; use the method "
                             f"{VARIANTS[model.cfg.variant].method} for it, or train stage 2 with --variant {self.variant}")
        return model

    def pipeline(self):
        if self._pipe is None:
            from moee_bench.moee_ref.pipeline import MoEEPipeline

            device = str(self.config.get("device", "cpu"))
            self._pipe = MoEEPipeline(self._model(device), device=device,
                                      palette=str(self.config.get("routing", "model")) == "palette",
                                      precision=str(self.config.get("precision", "auto")))
        return self._pipe

    def load(self) -> bool:
        """Load the checkpoint and build the pipeline now (timed apart by the runner and throughput)."""
        self.pipeline()
        return True

    def _condition(self, request: GenerationRequest):
        from moee_bench.moee_ref.pipeline import EmotionCondition

        mode = str(self.config.get("emotion_input", "auto"))
        if mode == "text" and request.emotion_text:
            return EmotionCondition("text", text=request.emotion_text)
        if mode == "audio" and request.emotion_audio is None:
            wave = media.read_audio(request.audio, clip_id=request.clip_id)
            return EmotionCondition("audio", wave=wave)
        if request.emotion_audio is not None:
            wave = media.read_audio(request.emotion_audio, clip_id=request.clip_id)
            return EmotionCondition("audio", wave=wave)
        if request.emotion is not None:
            return EmotionCondition("label", weights=tuple(request.emotion.weights))
        if request.emotion_text:
            return EmotionCondition("text", text=request.emotion_text)
        return EmotionCondition("label")

    def batch_size(self) -> int:
        """Clips denoised together (config ``batch``, default 32): on a CPU the tiny model's network calls cost
        little more for a batch than for one clip."""
        return max(1, int(self.config.get("batch", 32)))

    def generate(self, request: GenerationRequest) -> GenerationResult:
        res = self.generate_batch([request])[0]
        if isinstance(res, Exception):
            raise res
        return res

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Read every request's inputs (a clip whose inputs fail gets its exception), denoise the rest together
        (:meth:`MoEEPipeline.generate_batch`), write each video."""
        from moee_bench.moee_ref.pipeline import Guidance

        t0 = time.perf_counter()
        pipe = self.pipeline()
        cfg = pipe.cfg
        g = Guidance(float(self.config.get("guidance_ref", cfg.infer.guidance_ref)),
                     float(self.config.get("guidance_audio", cfg.infer.guidance_audio)),
                     float(self.config.get("guidance_emotion", cfg.infer.guidance_emotion)))
        # each request's inputs read (or the exception), then replaced by its result (or the exception)
        out: list[Any] = [outcome(lambda: self._sample(r, cfg.video.fps)) for r in requests]
        todo = [(i, s) for i, s in enumerate(out) if not isinstance(s, Exception)]
        steps = int(self.config["steps"]) if self.config.get("steps") else None
        frames_list = pipe.generate_batch([s for _, s in todo], steps=steps, guidance=g) if todo else []
        share = (time.perf_counter() - t0) / max(1, len(todo))
        for (i, sample), frames in zip(todo, frames_list):
            t = time.perf_counter()
            out[i] = res = outcome(lambda: self._write(requests[i], sample, frames, pipe, g, len(todo)))
            if not isinstance(res, Exception):
                res.seconds = share + time.perf_counter() - t
        return out

    def _sample(self, request: GenerationRequest, fps: float):
        """The request's inputs read for the pipeline (:class:`moee_ref.pipeline.Sample`)."""
        from moee_bench.moee_ref.pipeline import Sample

        ref = media.read_image(request.ref_image, clip_id=request.clip_id)
        wave = media.read_audio(request.audio, clip_id=request.clip_id)
        n = request.num_frames or max(1, int(round(len(wave) / 16000 * fps)))
        return Sample(ref, wave, self._condition(request), n, request.seed)

    def _write(self, request: GenerationRequest, sample, frames: np.ndarray, pipe, g, batch: int) -> GenerationResult:
        cfg = pipe.cfg
        if not np.isfinite(frames).all():
            raise ClipError(request.clip_id, "moee-ref produced non-finite frames")
        native = (cfg.video.height, cfg.video.width)
        size = request.size or native
        if size != native:
            frames = np.stack([resize_image(f, size) for f in frames])
        media.write_video(request.out_path, [frames], cfg.video.fps,
                          audio=sample.wave[: int(len(frames) / cfg.video.fps * 16000)], clip_id=request.clip_id)
        rec = {"native_fps": cfg.video.fps, "native_size": list(native), "size": list(size), "resized": size != native,
               "audio": "driving audio muxed", "checkpoint": str(self.checkpoint_path), "seed": request.seed,
               "guidance": [g.ref, g.audio, g.emotion], "variant": cfg.variant,
               "routing": "palette" if pipe.palette or cfg.moe.global_gate == "forced" else f"{cfg.moe.global_gate} gate",
               "precision": pipe.precision, "batch": batch}
        if self.weights_provenance is not None:
            rec["weights"] = self.weights_provenance
        if cfg.random_init:
            rec["random_init"] = True
            rec["weights"] = "random initialisation (smoke test / throughput; not a trained model)"
        return GenerationResult(request.clip_id, request.out_path, 0.0, len(frames), rec)


def _variant_method(variant: str) -> type[MoEERef]:
    v = VARIANTS[variant]
    return type(f"MoEERef[{variant}]", (MoEERef,), {
        "name": v.method, "variant": variant, "__module__": __name__,
        "__doc__": f"MoEE reference, variant {variant!r} ({v.label}): {v.doc}."})


# one class per variant (the registry names classes by string); names are moee-ref:<variant>
MoEERefNoMoE = _variant_method("no-moe")
MoEERefNoGlobalGate = _variant_method("no-global-gate")
MoEERefNoMaskedNoisy = _variant_method("no-masked-noisy")
MoEERefNoDHFEV = _variant_method("no-dhfev")
MoEERefPalette = _variant_method("palette")
MoEERefDoubleGate = _variant_method("double-gate")
