"""SadTalker (CVPR 2023, Apache-2.0): 3DMM coefficients from audio, face render; no emotion input.

``inference.py --driven_audio WAV --source_image IMG --result_dir DIR --size 256 --preprocess full
--still [--enhancer gfpgan] [--cpu]``; the result is ``DIR/<timestamp>.mp4`` at 25 fps. Defaults
chosen for evaluation against the dataset's frames: ``preprocess = "full"`` with ``still`` pastes
the animated face back into the whole reference image, so the output framing is the input's (the
method's own default, ``crop``, returns a 256x256 face crop). Config keys: ``size`` (256 | 512),
``preprocess``, ``still``, ``enhancer``, ``pose_style``, ``expression_scale``, ``device``.

What the script loads (``src/utils/init_path.py`` and the face models), checked before a run so a
partial download fails with one line instead of deep inside the method: the
``SadTalker_V0.0.2_<size>.safetensors`` of the chosen size; the mapping network
``mapping_00109-model.pth.tar`` for the ``full``/``extfull`` preprocessing and
``mapping_00229-model.pth.tar`` otherwise; facexlib's alignment and detection weights in
``gfpgan/weights`` (downloaded into the checkout at run time when absent); and with an enhancer its
weights there too. All come from the checkout's ``scripts/download_models.sh``.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, InstallError, Job, newest

PREPROCESS = ("crop", "extcrop", "resize", "full", "extfull")
ENHANCER_WEIGHTS = {"gfpgan": "GFPGANv1.4.pth", "RestoreFormer": "RestoreFormer.pth"}


class SadTalker(ExternalMethod):
    name = "sadtalker"
    version = "0.0.2"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=25.0, native_size=(256, 256),
                                seedable=True)
    repo_url = "https://github.com/OpenTalker/SadTalker"
    weights_help = "Download the checkpoints with the checkout's `bash scripts/download_models.sh`"
    script = "inference.py"
    required = ("checkpoints/SadTalker_V0.0.2_256.safetensors", "checkpoints/mapping_00109-model.pth.tar",
                "gfpgan/weights/alignment_WFLW_4HG.pth", "gfpgan/weights/detection_Resnet50_Final.pth")
    seed_note = "request seed set by the launcher (SadTalker's pose VAE samples with torch's global RNG)"

    def settings(self) -> tuple[int, str, str | None]:
        """(size, preprocess, enhancer) from the config, validated against what inference.py accepts."""
        c = self.config
        size, preprocess, enhancer = int(c.get("size", 256)), str(c.get("preprocess", "full")), c.get("enhancer")
        if size not in (256, 512):
            raise InstallError(f"sadtalker: size must be 256 or 512 (the released checkpoints), got {size}")
        if preprocess not in PREPROCESS:
            raise InstallError(f"sadtalker: preprocess must be one of {PREPROCESS}, got {preprocess!r}")
        if enhancer is not None and str(enhancer) not in ENHANCER_WEIGHTS:
            raise InstallError(f"sadtalker: enhancer must be one of {sorted(ENHANCER_WEIGHTS)}, got {enhancer!r}")
        return size, preprocess, None if enhancer is None else str(enhancer)

    def requirements(self) -> tuple[str, ...]:
        size, preprocess, enhancer = self.settings()
        mapping = "mapping_00109-model.pth.tar" if "full" in preprocess else "mapping_00229-model.pth.tar"
        req = [f"checkpoints/SadTalker_V0.0.2_{size}.safetensors", f"checkpoints/{mapping}",
               "gfpgan/weights/alignment_WFLW_4HG.pth", "gfpgan/weights/detection_Resnet50_Final.pth"]
        if enhancer:      # face_enhancer.py looks in gfpgan/weights, then checkpoints/, then downloads
            w = ENHANCER_WEIGHTS[enhancer]
            req += [f"checkpoints/{w}" if (self.repo / "checkpoints" / w).is_file() else f"gfpgan/weights/{w}",
                    "gfpgan/weights/parsing_parsenet.pth"]
        return tuple(req)

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        size, preprocess, enhancer = self.settings()
        args = ["--driven_audio", str(inputs["audio"]), "--source_image", str(inputs["image"]),
                "--result_dir", str(work / "results"), "--size", str(size),
                "--preprocess", preprocess, "--pose_style", str(int(c.get("pose_style", 0))),
                "--expression_scale", str(float(c.get("expression_scale", 1.0)))]
        if c.get("still", True):
            args.append("--still")
        if enhancer:
            args += ["--enhancer", enhancer]
        if str(c.get("device", "cuda")) == "cpu":
            args.append("--cpu")
        return Job(self.script, args, self.repo,
                   notes={"emotion": "ignored (SadTalker has no emotion input)", "preprocess": preprocess,
                          "still": bool(c.get("still", True))})

    def find_output(self, request, work, inputs, job) -> Path | None:
        return newest(list((work / "results").glob("*.mp4")))
