"""AniPortrait (Apache-2.0): audio -> 3D mesh and head pose -> pose-guided SD 1.5 + ReferenceNet; no emotion input.

``scripts/audio2vid.py --config CFG.yaml -W 512 -H 512 --seed S --fps 30 [--steps N] [--cfg X] [-acc]``,
where ``CFG.yaml`` is the checkout's ``configs/prompts/animation_audio.yaml`` with ``test_cases`` set to
our reference image and WAV. The script writes
``output/<date>/<HHMM>--seed_<S>-<W>x<H>/<ref>_<audio>_<H>x<W>_<cfg>_<HHMM>.mp4`` relative to its working
directory (a ``_noaudio`` twin is written and removed by the script); it runs in a shadow checkout
whose ``output/`` is private, so the user's checkout is not written. That video is a grid of three panels side
by side (reference | pose landmarks | generated; ``save_videos_grid`` -> torchvision ``make_grid`` with
its default 2-pixel padding), so the generated panel is cut out (``crop_region`` in the record). It draws the head-pose ``id_seed`` with an
unseeded ``random.randint(0, 99)``; the launcher's ``random.seed`` makes that repeatable.
Native output: 512x512 at 30 fps, resampled to the request's fps by timestamps. ``--fps`` is always
30: ``prepare_audio_feature`` and the pose chunks are computed at 30 fps whatever ``--fps`` says, so
another value would only relabel the frames and desynchronise them from the audio (refused).
Besides the config's own paths the script loads ``image_encoder_path`` and, through
``configs/inference/inference_audio.yaml``, ``wav2vec2-base-960h`` and the audio2mesh/audio2pose
checkpoints; all are checked before a run.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, InstallError, Job, newest, write_yaml_config
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError

GRID_PAD = 2          # make_grid's default padding around and between the panels
FPS = 30              # audio2vid.py computes audio features and poses at 30 fps (prepare_audio_feature's default)


class AniPortrait(ExternalMethod):
    name = "aniportrait"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}), native_fps=30.0, native_size=(512, 512),
                                seedable=True)
    repo_url = "https://github.com/Zejun-Yang/AniPortrait"
    weights_help = ("Put the weights from https://huggingface.co/ZJYang/AniPortrait (denoising_unet.pth, "
                    "reference_unet.pth, pose_guider.pth, motion_module.pth, audio2mesh.pt, audio2pose.pt) and the "
                    "stable-diffusion-v1-5, sd-vae-ft-mse, image_encoder and wav2vec2-base-960h folders in pretrained_model/")
    script = "scripts/audio2vid.py"
    required = ("configs/prompts/animation_audio.yaml", "pretrained_model/denoising_unet.pth",
                "pretrained_model/reference_unet.pth", "pretrained_model/pose_guider.pth",
                "pretrained_model/motion_module.pth", "pretrained_model/audio2mesh.pt", "pretrained_model/audio2pose.pt",
                "pretrained_model/stable-diffusion-v1-5/unet", "pretrained_model/sd-vae-ft-mse", "pretrained_model/image_encoder",
                "pretrained_model/wav2vec2-base-960h", "configs/inference/inference_audio.yaml",
                "configs/inference/inference_v2.yaml")
    private_dirs = ("output",)
    seed_note = "--seed S for the sampler; the script's unseeded pose id_seed fixed by the launcher's random.seed(S)"

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        if int(c.get("fps", FPS)) != FPS:
            raise InstallError(f"aniportrait: fps must be {FPS}: audio2vid.py computes the audio features and head poses "
                               f"at {FPS} fps whatever --fps says, so fps={c['fps']} would desynchronise video and audio; "
                               "the suite resamples the 30 fps output to the requested fps itself")
        cfg = write_yaml_config(self.repo / "configs/prompts/animation_audio.yaml",
                                {"test_cases": {str(inputs["image"]): [str(inputs["audio"])]}}, work / "animation_audio.yaml")
        args = ["--config", str(cfg), "-W", str(int(c.get("width", 512))), "-H", str(int(c.get("height", 512))),
                "--seed", str(int(request.seed)), "--fps", str(FPS)]
        for k in ("steps", "cfg"):
            if k in c:
                args += [f"--{k}", str(c[k])]
        if c.get("accelerate"):
            args.append("-acc")
        return Job(self.script, args, self.checkout(work), notes={"emotion": "ignored (AniPortrait has no emotion input)"},
                   configs=[cfg])

    def crop_box(self, request: GenerationRequest, raw: Path) -> tuple[int, int, int, int] | None:
        info = media.probe(raw, clip_id=request.clip_id)
        w, h = (info.width - 4 * GRID_PAD) // 3, info.height - 2 * GRID_PAD
        if 3 * w + 4 * GRID_PAD != info.width or h <= 0:
            raise ClipError(request.clip_id, f"aniportrait output {raw} is {info.height}x{info.width}, not the 3-panel "
                                             "grid (reference | pose | generated) that audio2vid.py writes")
        return GRID_PAD, GRID_PAD + 2 * (w + GRID_PAD), h, w

    def find_output(self, request, work, inputs, job) -> Path | None:
        stem = f"{inputs['image'].stem}_{inputs['audio'].stem}_"
        return newest([p for p in (job.cwd / "output").glob(f"*/*/{stem}*.mp4") if not p.name.endswith("_noaudio.mp4")])
