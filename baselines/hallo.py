"""Hallo and Hallo2 (Fudan, MIT): SD 1.5 + ReferenceNet + AnimateDiff, wav2vec2 audio; no emotion input.

Hallo: ``scripts/inference.py --config CFG.yaml --source_image IMG --driving_audio WAV --output OUT.mp4``
(optional ``pose_weight``, ``face_weight``, ``lip_weight``, ``face_expand_ratio`` config keys are
passed through), where ``CFG.yaml`` is the checkout's ``configs/inference/default.yaml`` (or the
``config`` key) with ``save_path`` (face masks, separated vocals; ``./.cache`` upstream) moved into
the work folder, so the checkout gets no ``.cache``. Hallo2: ``scripts/inference_long.py --config
long.yaml`` where ``long.yaml`` is the checkout's ``configs/inference/long.yaml`` with our
``source_image``, ``driving_audio`` and ``save_path``; the result is ``SAVE/<image stem>/merge_video.mp4``.
Both write 512x512 at 25 fps and fix the seed at 42 inside the script (``torch.manual_seed(42)``),
so the request's seed cannot change their output (recorded). The source image should be square
with the face filling 50-70 % of it (the method's own requirement).
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, Job, write_yaml_config

_WEIGHTS = ("pretrained_models/stable-diffusion-v1-5/unet", "pretrained_models/sd-vae-ft-mse",
            "pretrained_models/motion_module/mm_sd_v15_v2.ckpt", "pretrained_models/wav2vec/wav2vec2-base-960h",
            "pretrained_models/face_analysis/models",
            # hallo/utils/util.py opens this path relative to the working directory, whatever the config says
            "pretrained_models/face_analysis/models/face_landmarker_v2_with_blendshapes.task",
            "pretrained_models/audio_separator/Kim_Vocal_2.onnx")


class Hallo(ExternalMethod):
    name = "hallo"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=25.0, native_size=(512, 512),
                                seedable=False)
    repo_url = "https://github.com/fudan-generative-vision/hallo"
    weights_help = "Download the weights with `huggingface-cli download fudan-generative-ai/hallo --local-dir pretrained_models`"
    script = "scripts/inference.py"
    required = ("pretrained_models/hallo/net.pth", "configs/inference/default.yaml", *_WEIGHTS)
    seed_note = "fixed at 42 inside scripts/inference.py; the request seed does not reach the sampler"
    passthrough = ("pose_weight", "face_weight", "lip_weight", "face_expand_ratio")

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        cfg = write_yaml_config(self.repo / str(self.config.get("config", "configs/inference/default.yaml")),
                                {"save_path": str(work / "cache")}, work / "default.yaml")
        args = ["--config", str(cfg), "--source_image", str(inputs["image"]), "--driving_audio", str(inputs["audio"]),
                "--output", str(work / "hallo.mp4")]
        for k in self.passthrough:
            if k in self.config:
                args += [f"--{k}", str(float(self.config[k]))]
        return Job(self.script, args, self.repo, notes={"emotion": "ignored (Hallo has no emotion input)"},
                   configs=[cfg])

    def find_output(self, request, work, inputs, job) -> Path | None:
        return work / "hallo.mp4"


class Hallo2(ExternalMethod):
    name = "hallo2"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=25.0, native_size=(512, 512),
                                seedable=False)
    repo_url = "https://github.com/fudan-generative-vision/hallo2"
    weights_help = "Download the weights with `huggingface-cli download fudan-generative-ai/hallo2 --local-dir pretrained_models`"
    script = "scripts/inference_long.py"
    required = ("pretrained_models/hallo2/net.pth", "configs/inference/long.yaml", *_WEIGHTS)
    seed_note = "fixed at 42 inside scripts/inference_long.py; the request seed does not reach the sampler"

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        cfg = write_yaml_config(self.repo / str(self.config.get("config", "configs/inference/long.yaml")),
                                {"source_image": str(inputs["image"]), "driving_audio": str(inputs["audio"]),
                                 "save_path": str(work / "out")}, work / "long.yaml")
        return Job(self.script, ["--config", str(cfg)], self.repo,
                   notes={"emotion": "ignored (Hallo2 has no emotion input)", "super_resolution": "not run"},
                   configs=[cfg])

    def find_output(self, request, work, inputs, job) -> Path | None:
        return work / "out" / inputs["image"].stem / "merge_video.mp4"
