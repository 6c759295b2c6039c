"""EchoMimic (Ant Group, Apache-2.0): audio-driven portrait animation with face landmarks; no emotion input.

``infer_audio2vid.py --config CFG.yaml -W 512 -H 512 --seed S --fps 24 --device D [--steps N] [--cfg X]``,
where ``CFG.yaml`` is the checkout's ``configs/prompts/animation.yaml`` with ``test_cases`` set to our
image and WAV. The script writes
``output/<date>/<HHMM>--seed_<S>-<W>x<H>/<ref>_<audio>_<H>x<W>_<cfg>_<HHMM>_withaudio.mp4`` and a silent
twin without the suffix, relative to its working directory; it runs in a shadow checkout whose
``output/`` is private, so neither lands in the user's checkout. The method re-crops the face
(``facecrop_dilation_ratio`` 0.5), so its framing differs from the reference image (recorded).
Native output: 512x512 at 24 fps, resampled to 25 fps by timestamps.
"""

from __future__ import annotations

import math
from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, Job, newest, write_yaml_config
from moee_bench.bench.core import media


class EchoMimic(ExternalMethod):
    name = "echomimic"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=24.0, native_size=(512, 512),
                                seedable=True, recrops_face=True)
    repo_url = "https://github.com/antgroup/echomimic"
    weights_help = ("Clone https://huggingface.co/BadToBest/EchoMimic into pretrained_weights/ (denoising_unet.pth, "
                    "reference_unet.pth, face_locator.pth, motion_module.pth, sd-image-variations-diffusers, "
                    "sd-vae-ft-mse, audio_processor/whisper_tiny.pt)")
    script = "infer_audio2vid.py"
    required = ("configs/prompts/animation.yaml", "pretrained_weights/denoising_unet.pth",
                "pretrained_weights/reference_unet.pth", "pretrained_weights/face_locator.pth",
                "pretrained_weights/motion_module.pth", "pretrained_weights/audio_processor/whisper_tiny.pt",
                "pretrained_weights/sd-image-variations-diffusers/unet", "pretrained_weights/sd-vae-ft-mse",
                "configs/inference/inference_v2.yaml")
    private_dirs = ("output",)
    seed_note = "--seed S passed to the sampler"

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        cfg = write_yaml_config(self.repo / "configs/prompts/animation.yaml",
                                {"test_cases": {str(inputs["image"]): [str(inputs["audio"])]}}, work / "animation.yaml")
        fps = int(c.get("fps", 24))
        args = ["--config", str(cfg), "-W", str(int(c.get("width", 512))), "-H", str(int(c.get("height", 512))),
                "-L", str(self.length(request, inputs["audio"], fps)),
                "--seed", str(int(request.seed)), "--fps", str(fps),
                "--device", str(c.get("device", "cuda"))]
        for k in ("steps", "cfg"):
            if k in c:
                args += [f"--{k}", str(c[k])]
        return Job(self.script, args, self.checkout(work),
                   notes={"emotion": "ignored (EchoMimic has no emotion input)",
                          "crop": "face re-cropped by the method (facecrop_dilation_ratio 0.5)"}, configs=[cfg])

    def length(self, request: GenerationRequest, wav: Path, fps: int) -> int:
        """``-L`` frames: the config's ``length``, else the audio's length at ``fps`` (upstream's default of 1200
        frames would cut clips longer than 50 s)."""
        if "length" in self.config:
            return int(self.config["length"])
        seconds = len(media.read_audio(wav, clip_id=request.clip_id)) / media.AUDIO_RATE
        return max(1, math.ceil(seconds * fps - 1e-6))

    def find_output(self, request, work, inputs, job) -> Path | None:
        stem = f"{inputs['image'].stem}_{inputs['audio'].stem}_"
        return newest(list((job.cwd / "output").glob(f"*/*/{stem}*_withaudio.mp4")))
