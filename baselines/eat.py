"""EAT (ICCV 2023, CC-BY-NC-4.0): emotion-adaptive transformer over keypoints; emotion by label.

EAT's ``demo.py --root_wav DRIVING --emo CODE --name deepprompt_eam3d_all_final_313`` animates every
image in ``./demo/imgs/`` with a *preprocessed driving clip* (``DRIVING`` holds ``<name>.wav``,
``deepfeature32/`` DeepSpeech features, ``latent_evp_25/``, ``poseimg/`` and ``images_evp_25/``, made by
the checkout's ``preprocess/preprocess_video.py``, which needs TensorFlow 1.15) and writes
``./demo/output/<name>/<img>_<emo>_<driving>.mp4`` (256x256, 25 fps; length = the shorter of audio
and pose). Because its paths are relative to the working directory, the adapter runs it in a
*shadow checkout* inside the work folder: links to every entry of the user's checkout except
``demo/``, and a ``demo/`` holding only links to the user's demo files plus our reference image in
``imgs/``; the user's checkout is never written.
Config: ``processed_root`` (required): folder with one preprocessed driving folder per clip id.
Emotion codes: ang, con, dis, fea, hap, neu, sad, sur; compounds use their strongest component
(recorded). EAT crops and aligns the source face itself and runs on CUDA only.
"""

from __future__ import annotations

import os
from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, InstallError, Job, dominant_label, newest
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError

EMO_CODES = {"anger": "ang", "disgust": "dis", "fear": "fea", "happiness": "hap", "neutral": "neu",
             "sadness": "sad", "surprise": "sur"}
OWN_DEMO_DIRS = ("imgs", "imgs_cropped", "imgs_latent", "output")


class EAT(ExternalMethod):
    name = "eat"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"label"}), native_fps=25.0, native_size=(256, 256),
                                seedable=True, recrops_face=True, emotion_vocabulary=tuple(EMO_CODES))
    repo_url = "https://github.com/yuangan/EAT_code"
    weights_help = "Unzip the authors' ckpt.zip into ckpt/ and demo.zip into demo/ (Google Drive links in the README)"
    script = "demo.py"
    required = ("ckpt/deepprompt_eam3d_all_final_313.pth.tar", "ckpt/pretrain_new_274.pth.tar",
                "config/deepprompt_eam3d_st_tanh_304_3090_all.yaml", "demo")
    seed_note = "deterministic given its inputs; launcher seeds set anyway"

    def processed(self, request: GenerationRequest) -> Path:
        root = self.config.get("processed_root")
        if not root:
            raise InstallError("eat: set `processed_root` in the method config to a folder of driving clips "
                               "preprocessed by EAT's preprocess/preprocess_video.py, one folder per clip id")
        d = Path(str(root)).expanduser() / request.clip_id
        if not (d / f"{request.clip_id}.wav").is_file() or not (d / "deepfeature32").is_dir():
            raise ClipError(request.clip_id, f"eat: no preprocessed driving clip at {d} (expected {request.clip_id}.wav, "
                                             "deepfeature32/, latent_evp_25/, poseimg/, images_evp_25/ from EAT's "
                                             "preprocess/preprocess_video.py)", status="missing")
        return d

    def shadow(self, work: Path) -> Path:
        """A working copy of the checkout made of links, with a private ``demo/``."""
        root = work / "eat_root"
        (root / "demo").mkdir(parents=True, exist_ok=True)
        for entry in self.repo.iterdir():
            if entry.name != "demo":
                os.symlink(entry, root / entry.name)
        for entry in (self.repo / "demo").iterdir():
            if entry.name not in OWN_DEMO_DIRS:
                os.symlink(entry, root / "demo" / entry.name)
        (root / "demo" / "imgs").mkdir()
        return root

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        driving = self.processed(request)
        root = self.shadow(work)
        img = media.write_image(root / "demo" / "imgs" / f"{self.uid(request)}.jpg", media.read_image(inputs["image"]))
        code, note = dominant_label(request, EMO_CODES, self.name)
        name = str(self.config.get("ckpt_name", "deepprompt_eam3d_all_final_313"))
        return Job("demo.py", ["--root_wav", str(driving), "--emo", code, "--name", name], root,
                   notes={**note, "driving": f"{driving} (EAT-preprocessed; its wav replaces the request audio inside "
                                             "EAT, the request audio is muxed into the output)", "image": str(img)})

    def find_output(self, request, work, inputs, job) -> Path | None:
        name = job.args[job.args.index("--name") + 1]
        code = job.args[job.args.index("--emo") + 1]
        return newest(list((job.cwd / "demo" / "output" / name).glob(f"{self.uid(request)}_{code}_*.mp4")))
