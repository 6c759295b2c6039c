"""EAT (ICCV 2023, CC-BY-NC-4.0): emotion-adaptive transformer over keypoints; emotion by label.

EAT's ``demo.py --root_wav DRIVING --emo CODE --name deepprompt_eam3d_all_final_313`` animates every
image in ``./demo/imgs/`` with a *preprocessed driving clip* (``DRIVING`` holds ``<name>.wav``,
``deepfeature32/`` DeepSpeech features, ``latent_evp_25/``, ``poseimg/`` and ``images_evp_25/``, made by
the checkout's ``preprocess/preprocess_video.py``, which needs TensorFlow 1.15) and writes
``./demo/output/<name>/<img>_<emo>_<driving>.mp4`` (256x256, 25 fps; length = the shorter of audio
and pose). It first crops and aligns each ``demo/imgs/*.jpg`` into ``demo/imgs_cropped/`` (dlib; an
image without exactly one face is silently left out) and extracts keypoints into
``demo/imgs_latent/``, then animates every ``demo/imgs_cropped/*.jpg``. Because these paths are
relative to the working directory, the adapter runs it in a *shadow checkout* inside the work
folder (:func:`baselines.external.shadow_checkout`) in which ``demo/imgs``, ``demo/imgs_cropped``,
``demo/imgs_latent`` and ``demo/output`` are private, empty folders and everything else links to the
user's checkout; ``demo/imgs`` holds only our reference image, and the user's checkout is never
written. (``cv2.imwrite`` into a missing ``imgs_cropped/`` fails silently and demo.py then exits 0
without a video: the folder must exist.)
Config: ``processed_root`` (required): folder with one preprocessed driving folder per clip id.
Emotion codes: ang, con, dis, fea, hap, neu, sad, sur (EAT has contempt, so MEAD's contempt clips are
generated); compounds use their strongest component (recorded). EAT crops and aligns the source face itself and runs on CUDA only.
"""

from __future__ import annotations

from pathlib import Path

from moee_bench.baselines.base import Capabilities, GenerationRequest
from moee_bench.baselines.external import ExternalMethod, InstallError, Job, dominant_label, newest
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError

EMO_CODES = {"anger": "ang", "contempt": "con", "disgust": "dis", "fear": "fea", "happiness": "hap", "neutral": "neu",
             "sadness": "sad", "surprise": "sur"}
DRIVING_PARTS = ("{id}.wav", "deepfeature32/{id}.npy", "latent_evp_25/{id}.npy", "poseimg/{id}.npy.gz",
                 "images_evp_25/cropped")


class EAT(ExternalMethod):
    name = "eat"
    version = "1.0"
    capabilities = Capabilities(emotion_inputs=frozenset({"label"}), native_fps=25.0, native_size=(256, 256),
                                seedable=True, recrops_face=True, emotion_vocabulary=tuple(EMO_CODES))
    repo_url = "https://github.com/yuangan/EAT_code"
    weights_help = "Unzip the authors' ckpt.zip into ckpt/ and demo.zip into demo/ (Google Drive links in the README)"
    script = "demo.py"
    required = ("ckpt/deepprompt_eam3d_all_final_313.pth.tar", "ckpt/pretrain_new_274.pth.tar",
                "config/deepprompt_eam3d_st_tanh_304_3090_all.yaml", "config/vox-256-spade.yaml",
                "demo/M003_template.npy", "demo/shape_predictor_68_face_landmarks.dat",
                "expPCAnorm_fin/U_mead.npy", "expPCAnorm_fin/mean_mead.npy", "pad.npy")
    private_dirs = ("demo/imgs", "demo/imgs_cropped", "demo/imgs_latent", "demo/output")
    seed_note = "deterministic given its inputs; launcher seeds set anyway"

    def processed(self, request: GenerationRequest) -> Path:
        root = self.config.get("processed_root")
        if not root:
            raise InstallError("eat: set `processed_root` in the method config to a folder of driving clips "
                               "preprocessed by EAT's preprocess/preprocess_video.py, one folder per clip id")
        d = Path(str(root)).expanduser() / request.clip_id
        missing = [p.format(id=request.clip_id) for p in DRIVING_PARTS if not (d / p.format(id=request.clip_id)).exists()]
        if missing:
            raise ClipError(request.clip_id, f"eat: no preprocessed driving clip at {d}: missing {', '.join(missing)} "
                                             "(made by EAT's preprocess/preprocess_video.py)", status="missing")
        return d

    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        driving = self.processed(request)
        root = self.checkout(work)
        img = media.write_image(root / "demo" / "imgs" / f"{self.uid(request)}.jpg", media.read_image(inputs["image"]))
        code, note = dominant_label(request, EMO_CODES, self.name)
        name = str(self.config.get("ckpt_name", "deepprompt_eam3d_all_final_313"))
        return Job("demo.py", ["--root_wav", str(driving), "--emo", code, "--name", name], root,
                   notes={**note, "driving": f"{driving} (EAT-preprocessed; its wav replaces the request audio inside "
                                             "EAT, the request audio is muxed into the output)", "image": str(img)})

    def find_output(self, request, work, inputs, job) -> Path | None:
        name = job.args[job.args.index("--name") + 1]
        code = job.args[job.args.index("--emo") + 1]
        found = newest(list((job.cwd / "demo" / "output" / name).glob(f"{self.uid(request)}_{code}_*.mp4")))
        if found is None and not (job.cwd / "demo" / "imgs_cropped" / f"{self.uid(request)}.jpg").is_file():
            raise ClipError(request.clip_id, "eat: demo.py's dlib detector did not find exactly one face in the reference "
                                             "image, so nothing was cropped and no video was made", status="no_face")
        return found
