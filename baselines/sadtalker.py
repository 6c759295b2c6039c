"""SadTalker (CVPR 2023, Apache-2.0): 3DMM coefficients from audio, face render; no emotion input.

``inference.py --driven_audio WAV --source_image IMG --result_dir DIR --size 256 --preprocess full
--still [--enhancer gfpgan] [--cpu]``; the result is ``DIR/<timestamp>.mp4`` at 25 fps. Defaults
chosen for evaluation against the dataset's frames: ``preprocess = "full"`` with ``still`` pastes
the animated face back into the whole reference image, so the output framing is the input's (the
method's own default, ``crop``, returns a 256x256 face crop). Config keys: ``size`` (256 | 512),
``preprocess``, ``still``, ``enhancer``, ``pose_style``, ``expression_scale``, ``device``.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, Job, newest


class SadTalker(ExternalMethod):
    name = "sadtalker"
    version = "0.0.2"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=25.0, native_size=(256, 256),
                                seedable=True)
    repo_url = "https://github.com/OpenTalker/SadTalker"
    weights_help = "Download the checkpoints with the checkout's `bash scripts/download_models.sh`"
    script = "inference.py"
    required = ("checkpoints/SadTalker_V0.0.2_256.safetensors", "checkpoints/mapping_00229-model.pth.tar")
    seed_note = "request seed set by the launcher (SadTalker's pose VAE samples with torch's global RNG)"

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        preprocess = str(c.get("preprocess", "full"))
        args = ["--driven_audio", str(inputs["audio"]), "--source_image", str(inputs["image"]),
                "--result_dir", str(work / "results"), "--size", str(int(c.get("size", 256))),
                "--preprocess", preprocess, "--pose_style", str(int(c.get("pose_style", 0))),
                "--expression_scale", str(float(c.get("expression_scale", 1.0)))]
        if c.get("still", True):
            args.append("--still")
        if c.get("enhancer"):
            args += ["--enhancer", str(c["enhancer"])]
        if str(c.get("device", "cuda")) == "cpu":
            args.append("--cpu")
        return Job(self.script, args, self.repo,
                   notes={"emotion": "ignored (SadTalker has no emotion input)", "preprocess": preprocess,
                          "still": bool(c.get("still", True))})

    def find_output(self, request, work, inputs, job) -> Path | None:
        return newest(list((work / "results").glob("*.mp4")))
