"""AniPortrait (Apache-2.0): audio -> 3D mesh and head pose -> pose-guided SD 1.5 + ReferenceNet; no emotion input.

``scripts/audio2vid.py --config CFG.yaml -W 512 -H 512 --seed S --fps 30 [--steps N] [--cfg X] [-acc]``,
where ``CFG.yaml`` is the checkout's ``configs/prompts/animation_audio.yaml`` with ``test_cases`` set to
our reference image and WAV. The script writes
``output/<date>/<HHMM>--seed_<S>-<W>x<H>/<ref>_<audio>_<H>x<W>_<cfg>_<HHMM>.mp4`` (plus ``_noaudio``)
inside the checkout; we move both into the work folder. That video is a grid of three panels side
by side (reference | pose landmarks | generated; ``save_videos_grid`` -> torchvision ``make_grid`` with
its default 2-pixel padding), so the generated panel is cut out (``crop_region`` in the record). It draws the head-pose ``id_seed`` with an
unseeded ``random.randint(0, 99)``; the launcher's ``random.seed`` makes that repeatable.
Native output: 512x512 at 30 fps (``fps`` config key), resampled to 25 fps by timestamps.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, Job, collect, newest, write_yaml_config
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError

GRID_PAD = 2          # make_grid's default padding around and between the panels


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
                "pretrained_model/stable-diffusion-v1-5", "pretrained_model/sd-vae-ft-mse")
    seed_note = "--seed S for the sampler; the script's unseeded pose id_seed fixed by the launcher's random.seed(S)"

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        cfg = write_yaml_config(self.repo / "configs/prompts/animation_audio.yaml",
                                {"test_cases": {str(inputs["image"]): [str(inputs["audio"])]}}, work / "animation_audio.yaml")
        args = ["--config", str(cfg), "-W", str(int(c.get("width", 512))), "-H", str(int(c.get("height", 512))),
                "--seed", str(int(request.seed)), "--fps", str(int(c.get("fps", 30)))]
        for k in ("steps", "cfg"):
            if k in c:
                args += [f"--{k}", str(c[k])]
        if c.get("accelerate"):
            args.append("-acc")
        return Job(self.script, args, self.repo, notes={"emotion": "ignored (AniPortrait has no emotion input)"})

    def crop_box(self, request: GenerationRequest, raw: Path) -> tuple[int, int, int, int] | None:
        info = media.probe(raw, clip_id=request.clip_id)
        w, h = (info.width - 4 * GRID_PAD) // 3, info.height - 2 * GRID_PAD
        if 3 * w + 4 * GRID_PAD != info.width or h <= 0:
            raise ClipError(request.clip_id, f"aniportrait output {raw} is {info.height}x{info.width}, not the 3-panel "
                                             "grid (reference | pose | generated) that audio2vid.py writes")
        return GRID_PAD, GRID_PAD + 2 * (w + GRID_PAD), h, w

    def find_output(self, request, work, inputs, job) -> Path | None:
        stem = f"{inputs['image'].stem}_{inputs['audio'].stem}_"
        found = [p for p in (self.repo / "output").glob(f"*/*/{stem}*.mp4") if not p.name.endswith("_noaudio.mp4")]
        best = newest(found)
        if best is not None:
            collect(best.with_name(best.stem + "_noaudio.mp4"), work)
        return collect(best, work)
