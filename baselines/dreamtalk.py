"""DreamTalk (MIT): diffusion over 3DMM expression driven by audio and a *style clip*; emotion by style clip.

``inference_for_demo_video.py --wav_path WAV --style_clip_path data/style_clip/3DMM/<SPK>_front_<label>_level3_001.mat
--pose_path data/pose/RichardShelby_front_neutral_level1_001.mat --image_path IMG --cfg_scale 1.0
--max_gen_len 1000 --output_name NAME --device D``; the result is ``output_video/NAME.mp4`` at 256x256, 25 fps.
Emotion: the request's label picks the style clip of the configured MEAD speaker (``style_speaker``,
default M030; the checkout ships M030, W009 and W011 for angry, contempt, disgusted, fear, happy, sad,
surprised at level 3 and neutral at level 1, so MEAD's contempt clips are generated too); compounds use
their strongest component (recorded).
Watermark: the script overlays a logo after rendering and says to remove that block for evaluation;
the launcher's ``no_watermark`` flag skips the overlay and keeps the clean render
(``output_video/NAME.mp4-no_watermark.mp4``), without editing the checkout. ``watermark = true``
keeps the method's default. The script splits its ffmpeg command on spaces, so input paths must
not contain whitespace (checked). It writes ``tmp/<name>/`` and ``output_video/`` relative to its
working directory: it runs in a shadow checkout where both are private, so the user's checkout is
not written. At run time it loads the wav2vec2 model ``jonatasgrosman/wav2vec2-large-xlsr-53-english``
from the Hugging Face hub (``from_pretrained``): the adapter checks that it is in the hub cache
(``hf_cache`` config key: a hub cache folder, passed to the script as ``HF_HUB_CACHE``; default the
standard one) and says
how to get it; ``allow_hub_download = true`` skips the check and lets the script download it.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, InstallError, Job, dominant_label
from moee_bench.bench.core.errors import ClipError
# imported inside the functions that use them (seconds to import, or optional): huggingface_hub

STYLE_LABELS = {"happiness": "happy", "sadness": "sad", "anger": "angry", "disgust": "disgusted", "fear": "fear",
                "surprise": "surprised", "neutral": "neutral", "contempt": "contempt"}
HUB_WAV2VEC = "jonatasgrosman/wav2vec2-large-xlsr-53-english"
HUB_FILES = ("config.json", "preprocessor_config.json", "vocab.json")


class DreamTalk(ExternalMethod):
    name = "dreamtalk"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"label"}), native_fps=25.0, native_size=(256, 256),
                                seedable=True, recrops_face=True,
                                emotion_vocabulary=tuple(STYLE_LABELS))
    repo_url = "https://github.com/ali-vilab/dreamtalk"
    weights_help = "Put denoising_network.pth and renderer.pt (from the authors' release, see the README) in checkpoints/"
    script = "inference_for_demo_video.py"
    required = ("checkpoints/denoising_network.pth", "checkpoints/renderer.pt", "data/style_clip/3DMM",
                "data/pose/RichardShelby_front_neutral_level1_001.mat")
    private_dirs = ("tmp", "output_video")
    seed_note = "request seed set by the launcher (the diffusion sampler uses torch's global RNG)"

    def check_runtime(self) -> None:
        if self.config.get("allow_hub_download"):
            return
        from huggingface_hub import try_to_load_from_cache

        cache = self.config.get("hf_cache")
        missing = [f for f in HUB_FILES if not isinstance(try_to_load_from_cache(HUB_WAV2VEC, f, cache_dir=cache), str)]
        weights = [f for f in ("model.safetensors", "pytorch_model.bin")
                   if isinstance(try_to_load_from_cache(HUB_WAV2VEC, f, cache_dir=cache), str)]
        if missing or not weights:
            raise InstallError(f"dreamtalk: inference_for_demo_video.py loads {HUB_WAV2VEC} from the Hugging Face hub at "
                               f"run time and it is not in the hub cache{f' {cache}' if cache else ''} (missing "
                               f"{', '.join(missing + ([] if weights else ['model weights']))}): run `huggingface-cli "
                               f"download {HUB_WAV2VEC}` in the method's environment, set `hf_cache` to that "
                               "environment's hub cache, or set `allow_hub_download = true` to let the script download it")

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        c = self.config
        for p in (inputs["audio"], inputs["image"]):
            if any(ch.isspace() for ch in str(p)):
                raise ClipError(request.clip_id, f"dreamtalk cannot read {p}: its script splits paths on spaces; "
                                                 "use an output folder without whitespace")
        label, note = dominant_label(request, STYLE_LABELS, self.name)
        level = 1 if label == "neutral" else 3
        style = f"data/style_clip/3DMM/{c.get('style_speaker', 'M030')}_front_{label}_level{level}_001.mat"
        if not (self.repo / style).exists():
            raise ClipError(request.clip_id, f"dreamtalk style clip {self.repo / style} does not exist")
        args = ["--wav_path", str(inputs["audio"]), "--style_clip_path", style,
                "--pose_path", str(c.get("pose", "data/pose/RichardShelby_front_neutral_level1_001.mat")),
                "--image_path", str(inputs["image"]), "--cfg_scale", str(float(c.get("cfg_scale", 1.0))),
                "--max_gen_len", str(int(c.get("max_gen_len", 1000))), "--output_name", self.uid(request),
                "--device", str(c.get("device", "cuda"))]
        if not c.get("img_crop", True):
            args.append("--disable_img_crop")
        flags = [] if c.get("watermark") else ["no_watermark"]
        env = {"HF_HUB_CACHE": str(c["hf_cache"])} if c.get("hf_cache") else {}
        return Job(self.script, args, self.checkout(work), flags=flags, env=env,
                   notes={**note, "style_clip": style, "watermark": "kept" if c.get("watermark") else "skipped"})

    def find_output(self, request, work, inputs, job) -> Path | None:
        base = job.cwd / "output_video" / f"{self.uid(request)}.mp4"
        return base.with_name(base.name + "-no_watermark.mp4") if "no_watermark" in job.flags else base
