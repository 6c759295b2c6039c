"""Each external adapter against its upstream script's contract, without the upstream code.

What the real scripts do was read from the upstream repositories at the commits listed in
``/work/shared/reference/anchors.md`` (SadTalker cd4c046, AniPortrait 7f6593f, hallo 8fd7c57, hallo2 58a9aa6,
EAT_code 95beccb, echomimic a53e970, dreamtalk ba798b0) and is encoded here as data: each script's command
line (the options its own argparse defines), the config keys it reads, the files it loads relative to its
working directory, and where it writes. A stand-in for the method's interpreter parses the adapter's
argv with a parser built from that table, checks the config and the files, and writes a video where the
real script would. Each adapter must then produce the normalised video and leave the checkout unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

import moee_bench.baselines.external as ext
from moee_bench.baselines.base import GenerationRequest
from moee_bench.baselines.registry import build_method, method_class
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.errors import BenchError

PY = sys.executable
S, I, F, T = {}, {"type": int}, {"type": float}, {"action": "store_true"}

# The options each upstream script's argparse defines (name(s), add_argument keywords).
ARGS: dict[str, list[tuple[tuple[str, ...], dict]]] = {
    "sadtalker": [(("--driven_audio",), S), (("--source_image",), S), (("--ref_eyeblink",), S), (("--ref_pose",), S),
                  (("--checkpoint_dir",), {"default": "./checkpoints"}), (("--result_dir",), {"default": "./results"}),
                  (("--pose_style",), I), (("--batch_size",), I), (("--size",), {"type": int, "default": 256}),
                  (("--expression_scale",), F), (("--input_yaw",), {"nargs": "+", "type": int}),
                  (("--input_pitch",), {"nargs": "+", "type": int}), (("--input_roll",), {"nargs": "+", "type": int}),
                  (("--enhancer",), S), (("--background_enhancer",), S), (("--cpu",), T), (("--face3dvis",), T),
                  (("--still",), T), (("--preprocess",), {"default": "crop", "choices": ["crop", "extcrop", "resize", "full", "extfull"]}),
                  (("--verbose",), T), (("--old_version",), T), (("--net_recon",), {"choices": ["resnet18", "resnet34", "resnet50"]}),
                  (("--init_path",), S), (("--use_last_fc",), S), (("--bfm_folder",), S), (("--bfm_model",), S),
                  (("--focal",), F), (("--center",), F), (("--camera_d",), F), (("--z_near",), F), (("--z_far",), F)],
    "aniportrait": [(("--config",), S), (("-W",), {"type": int, "default": 512}), (("-H",), {"type": int, "default": 512}),
                    (("-L",), I), (("--seed",), {"type": int, "default": 42}), (("--cfg",), {"type": float, "default": 3.5}),
                    (("--steps",), I), (("--fps",), {"type": int, "default": 30}), (("-acc", "--accelerate"), T),
                    (("--fi_step",), I)],
    "echomimic": [(("--config",), S), (("-W",), {"type": int, "default": 512}), (("-H",), {"type": int, "default": 512}),
                  (("-L",), {"type": int, "default": 1200}), (("--seed",), {"type": int, "default": 420}),
                  (("--facemusk_dilation_ratio",), F), (("--facecrop_dilation_ratio",), F), (("--context_frames",), I),
                  (("--context_overlap",), I), (("--cfg",), {"type": float, "default": 2.5}), (("--steps",), I),
                  (("--sample_rate",), I), (("--fps",), {"type": int, "default": 24}), (("--device",), S)],
    "hallo": [(("-c", "--config"), {"default": "configs/inference/default.yaml"}), (("--source_image",), S),
              (("--driving_audio",), S), (("--output",), {"default": ".cache/output.mp4"}), (("--pose_weight",), F),
              (("--face_weight",), F), (("--lip_weight",), F), (("--face_expand_ratio",), F),
              (("--audio_ckpt_dir", "--checkpoint"), S)],
    "hallo2": [(("-c", "--config"), {"default": "configs/inference/long.yaml"}), (("--source_image",), S),
               (("--driving_audio",), S), (("--pose_weight",), F), (("--face_weight",), F), (("--lip_weight",), F),
               (("--face_expand_ratio",), F), (("--audio_ckpt_dir", "--checkpoint"), S)],
    "eat": [(("--save_dir",), S), (("--name",), {"default": "deepprompt_eam3d_all_final_313"}), (("--emo",), {"default": "hap"}),
            (("--root_wav",), S)],
    "dreamtalk": [(("--wav_path",), S), (("--image_path",), S), (("--disable_img_crop",), {"dest": "img_crop", "action": "store_false"}),
                  (("--style_clip_path",), S), (("--pose_path",), S), (("--max_gen_len",), {"type": int, "default": 1000}),
                  (("--cfg_scale",), {"type": float, "default": 1.0}), (("--output_name",), {"default": "test"}),
                  (("--device",), {"default": "cuda"})],
}

# The method's own config files in a checkout (keys and default values as upstream ships them).
HALLO_CFG = {"source_image": "examples/reference_images/1.jpg", "driving_audio": "examples/driving_audios/1.wav",
             "weight_dtype": "fp16", "data": {"n_motion_frames": 2, "n_sample_frames": 16,
                                              "source_image": {"width": 512, "height": 512},
                                              "driving_audio": {"sample_rate": 16000}, "export_video": {"fps": 25}},
             "inference_steps": 40, "cfg_scale": 3.5, "audio_ckpt_dir": "./pretrained_models/hallo",
             "base_model_path": "./pretrained_models/stable-diffusion-v1-5",
             "motion_module_path": "./pretrained_models/motion_module/mm_sd_v15_v2.ckpt",
             "face_analysis": {"model_path": "./pretrained_models/face_analysis"},
             "wav2vec": {"model_path": "./pretrained_models/wav2vec/wav2vec2-base-960h", "features": "all"},
             "audio_separator": {"model_path": "./pretrained_models/audio_separator/Kim_Vocal_2.onnx"},
             "vae": {"model_path": "./pretrained_models/sd-vae-ft-mse"}, "save_path": "./.cache", "face_expand_ratio": 1.2,
             "pose_weight": 1.0, "face_weight": 1.0, "lip_weight": 1.0, "unet_additional_kwargs": {"use_motion_module": True},
             "enable_zero_snr": True, "noise_scheduler_kwargs": {"beta_start": 0.00085}}
TEMPLATES: dict[str, dict[str, Any]] = {
    "aniportrait": {
        "configs/prompts/animation_audio.yaml": {
            "pretrained_base_model_path": "./pretrained_model/stable-diffusion-v1-5",
            "pretrained_vae_path": "./pretrained_model/sd-vae-ft-mse", "image_encoder_path": "./pretrained_model/image_encoder",
            "denoising_unet_path": "./pretrained_model/denoising_unet.pth",
            "reference_unet_path": "./pretrained_model/reference_unet.pth",
            "pose_guider_path": "./pretrained_model/pose_guider.pth", "motion_module_path": "./pretrained_model/motion_module.pth",
            "audio_inference_config": "./configs/inference/inference_audio.yaml",
            "inference_config": "./configs/inference/inference_v2.yaml", "weight_dtype": "fp16",
            "test_cases": {"./configs/inference/ref_images/lyl.png": ["./configs/inference/audio/lyl.wav"]}},
        "configs/inference/inference_audio.yaml": {
            "a2m_model": {"out_dim": 1404, "model_path": "./pretrained_model/wav2vec2-base-960h"},
            "a2p_model": {"out_dim": 6, "model_path": "./pretrained_model/wav2vec2-base-960h"},
            "pretrained_model": {"a2m_ckpt": "./pretrained_model/audio2mesh.pt", "a2p_ckpt": "./pretrained_model/audio2pose.pt"}},
        "configs/inference/inference_v2.yaml": {"unet_additional_kwargs": {}}},
    "echomimic": {
        "configs/prompts/animation.yaml": {
            "pretrained_base_model_path": "./pretrained_weights/sd-image-variations-diffusers/",
            "pretrained_vae_path": "./pretrained_weights/sd-vae-ft-mse/",
            "audio_model_path": "./pretrained_weights/audio_processor/whisper_tiny.pt",
            "denoising_unet_path": "./pretrained_weights/denoising_unet.pth",
            "reference_unet_path": "./pretrained_weights/reference_unet.pth",
            "face_locator_path": "./pretrained_weights/face_locator.pth",
            "motion_module_path": "./pretrained_weights/motion_module.pth",
            "inference_config": "./configs/inference/inference_v2.yaml", "weight_dtype": "fp16",
            "test_cases": {"./assets/test_imgs/a.png": ["./assets/test_audios/echomimic_en.wav"]}},
        "configs/inference/inference_v2.yaml": {"unet_additional_kwargs": {}}},
    "hallo": {"configs/inference/default.yaml": HALLO_CFG},
    "hallo2": {"configs/inference/long.yaml": {**HALLO_CFG, "audio_ckpt_dir": "pretrained_models/hallo2", "use_mask": True,
                                               "mask_rate": 0.25, "use_cut": True, "save_path": "./output_long/debug/",
                                               "cache_path": "./.cache"}},
    "eat": {"config/deepprompt_eam3d_st_tanh_304_3090_all.yaml": {"model_params": {}},
            "config/vox-256-spade.yaml": {"model_params": {}}},
}
# Entries of a checkout that are part of the repository (not weights): scripts' folders, shipped outputs.
SHIPPED = {"dreamtalk": ["output_video/sample.mp4", "tmp/.keep", "media/watermark.png",
                         "data/pose/RichardShelby_front_neutral_level1_001.mat",
                         "data/style_clip/3DMM/M030_front_happy_level3_001.mat",
                         "data/style_clip/3DMM/M030_front_contempt_level3_001.mat"],
           "eat": ["demo/imgs/theirs.jpg", "modules/model.py"], "aniportrait": ["output/old/run/theirs.mp4"],
           "echomimic": ["output/old/run/theirs_withaudio.mp4"], "sadtalker": ["src/config/auido2pose.yaml"],
           "hallo": ["hallo/__init__.py"], "hallo2": ["hallo/__init__.py"]}


class ScriptFailed(AssertionError):
    """The real script would have crashed (or argparse would have exited) here."""


def need(cwd: Path, rel: str, what: str) -> Path:
    p = cwd / rel
    if not p.exists():
        raise ScriptFailed(f"{what}: {rel} does not exist under {cwd}")
    return p


def cfg_get(cfg: dict, dotted: str):
    cur = cfg
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ScriptFailed(f"config lacks {dotted}")
        cur = cur[part]
    return cur


def video(path: Path, n: int, h: int, w: int, fps: float, grid: bool = False) -> None:
    """A stand-in output; frames are written at most 96 pixels high/wide (the geometry, not the size, is the contract)."""
    h, w = min(h, 96), min(w, 96)
    if not path.parent.is_dir():
        raise ScriptFailed(f"writer: folder {path.parent} does not exist")
    frames = np.random.default_rng(1).integers(40, 200, (n, h, w, 3), dtype=np.uint8)
    if grid:                                            # make_grid(nrow=3, padding=2): ref | pose | generated
        canvas = np.zeros((n, h + 4, 3 * w + 8, 3), np.uint8)
        canvas[:, 2:2 + h, 6 + 2 * w:6 + 3 * w] = frames
        frames = canvas
    media.write_video(path, [frames], fps)


def seconds(wav: Path) -> float:
    return len(media.read_audio(wav)) / 16000


# ------------------------------------------------------------------- what each script reads and writes
def sadtalker(a, cwd, env, flags):
    ck = a.checkpoint_dir
    need(cwd, f"{ck}/SadTalker_V0.0.2_{a.size}.safetensors", "init_path safetensors of this size")
    need(cwd, f"{ck}/mapping_00109-model.pth.tar" if "full" in a.preprocess else f"{ck}/mapping_00229-model.pth.tar",
         "init_path mapping network")
    for f in ("alignment_WFLW_4HG.pth", "detection_Resnet50_Final.pth"):
        need(cwd, f"gfpgan/weights/{f}", "facexlib (downloaded into the checkout when absent)")
    if a.enhancer:
        need(cwd, "gfpgan/weights/GFPGANv1.4.pth", "enhancer")
    img = media.read_image(a.source_image)
    save = Path(a.result_dir) / time.strftime("%Y_%m_%d_%H.%M.%S")
    save.mkdir(parents=True)
    h, w = img.shape[:2] if "full" in a.preprocess else (a.size, a.size)
    video(save / "x.mp4", int(seconds(Path(a.driven_audio)) * 25), h, w, 25)
    shutil.move(save / "x.mp4", f"{save}.mp4")
    shutil.rmtree(save)


def _audio2vid_paths(cfg, cwd, keys):
    for k in keys:
        need(cwd, cfg_get(cfg, k), k)
    need(cwd, str(Path(cfg["pretrained_base_model_path"]) / "unet"), "base model (subfolder unet)")


def _grid_outputs(a, cwd, cfg, fps_inside, grid, suffix):
    stamp = time.strftime("%H%M")
    save = cwd / "output" / time.strftime("%Y%m%d") / f"{stamp}--seed_{a.seed}-{a.W}x{a.H}"
    save.mkdir(parents=True, exist_ok=True)
    for ref, auds in cfg["test_cases"].items():
        for au in auds:
            n = int(np.ceil(seconds(Path(au)) * fps_inside)) if fps_inside else a.L
            base = save / f"{Path(ref).stem}_{Path(au).stem}_{a.H}x{a.W}_{int(a.cfg)}_{stamp}"
            video(Path(f"{base}{suffix[0]}.mp4"), n, a.H, a.W, a.fps, grid)
            shutil.copy(f"{base}{suffix[0]}.mp4", f"{base}{suffix[1]}.mp4")


def aniportrait(a, cwd, env, flags):
    cfg = yaml.safe_load(open(a.config))
    _audio2vid_paths(cfg, cwd, ["pretrained_vae_path", "image_encoder_path", "denoising_unet_path", "reference_unet_path",
                                "pose_guider_path", "motion_module_path", "inference_config", "audio_inference_config"])
    cfg_get(cfg, "weight_dtype")
    aud = yaml.safe_load(open(cwd / cfg["audio_inference_config"]))
    for k in ("a2m_model.model_path", "a2p_model.model_path", "pretrained_model.a2m_ckpt", "pretrained_model.a2p_ckpt"):
        need(cwd, cfg_get(aud, k), k)
    if a.fps != 30:
        raise ScriptFailed(f"--fps {a.fps}: features and poses are made at 30 fps, the video would drift from the audio")
    _grid_outputs(a, cwd, cfg, 30, True, ("_noaudio", ""))
    for p in (cwd / "output").glob("*/*/*_noaudio.mp4"):
        p.unlink()


def echomimic(a, cwd, env, flags):
    cfg = yaml.safe_load(open(a.config))
    _audio2vid_paths(cfg, cwd, ["pretrained_vae_path", "reference_unet_path", "denoising_unet_path", "face_locator_path",
                                "audio_model_path", "inference_config", "motion_module_path"])
    cfg_get(cfg, "weight_dtype")
    _grid_outputs(a, cwd, cfg, None, False, ("", "_withaudio"))        # silent twin + _withaudio


def _hallo_cfg(a, cwd):
    cfg = yaml.safe_load(open(cwd / a.config))
    cfg.update({k: v for k, v in vars(a).items() if v is not None})     # OmegaConf.merge(config, non-None CLI args)
    for k in ("source_image", "driving_audio", "save_path", "data.export_video.fps", "face_analysis.model_path",
              "wav2vec.model_path", "audio_separator.model_path", "vae.model_path", "base_model_path",
              "motion_module_path", "audio_ckpt_dir", "face_expand_ratio", "pose_weight", "face_weight", "lip_weight"):
        cfg_get(cfg, k)
    need(cwd, str(Path(cfg["audio_ckpt_dir"]) / "net.pth"), "audio_ckpt_dir/net.pth")
    need(cwd, str(Path(cfg["base_model_path"]) / "unet"), "base model (subfolder unet)")
    for k in ("motion_module_path", "wav2vec.model_path", "audio_separator.model_path", "vae.model_path"):
        need(cwd, cfg_get(cfg, k), k)
    need(cwd, str(Path(cfg["face_analysis"]["model_path"]) / "models"), "insightface models")
    need(cwd, "pretrained_models/face_analysis/models/face_landmarker_v2_with_blendshapes.task", "hard-coded landmarker")
    return cfg


def hallo(a, cwd, env, flags):
    cfg = _hallo_cfg(a, cwd)
    (cwd / cfg["save_path"]).mkdir(parents=True, exist_ok=True)            # face masks, separated vocals
    (cwd / cfg["save_path"] / "face_mask.png").write_bytes(b"")
    video(cwd / cfg["output"], int(seconds(Path(cfg["driving_audio"])) * 25), 512, 512, 25)


def hallo2(a, cwd, env, flags):
    cfg = _hallo_cfg(a, cwd)
    for k in ("use_mask", "mask_rate", "use_cut"):
        cfg_get(cfg, k)
    save = cwd / cfg["save_path"] / Path(cfg["source_image"]).stem
    (save / "seg_video").mkdir(parents=True, exist_ok=True)
    video(save / "merge_video.mp4", int(seconds(Path(cfg["driving_audio"])) * 25), 512, 512, 25)


def eat(a, cwd, env, flags):
    for rel in ("expPCAnorm_fin/U_mead.npy", "expPCAnorm_fin/mean_mead.npy", "demo/shape_predictor_68_face_landmarks.dat",
                "config/deepprompt_eam3d_st_tanh_304_3090_all.yaml", f"ckpt/{a.name}.pth.tar", "pad.npy"):
        need(cwd, rel, "demo.py")
    if a.emo not in ("ang", "con", "dis", "fea", "hap", "neu", "sad", "sur"):
        raise ScriptFailed(f"--emo {a.emo}")
    for img in (cwd / "demo" / "imgs").glob("*.jpg"):                      # crop_image: cv2.imwrite, silent on failure
        need(cwd, "demo/M003_template.npy", "crop template")
        if (cwd / "demo" / "imgs_cropped").is_dir():
            shutil.copy(img, cwd / "demo" / "imgs_cropped" / img.name)
    cropped = sorted((cwd / "demo" / "imgs_cropped").glob("*.jpg"))
    if cropped:
        need(cwd, "config/vox-256-spade.yaml", "keypoint extractor"); need(cwd, "ckpt/pretrain_new_274.pth.tar", "extractor")
        (cwd / "demo" / "imgs_latent").mkdir(exist_ok=True)
    asp = Path(a.root_wav).name
    for rel in (f"{asp}.wav", f"latent_evp_25/{asp}.npy", f"poseimg/{asp}.npy.gz", f"deepfeature32/{asp}.npy"):
        need(Path(a.root_wav), rel, "driving clip")
    n = len(list((Path(a.root_wav) / "images_evp_25" / "cropped").glob("*.jpg")))
    out = cwd / "demo" / "output" / a.name
    for img in cropped:
        (out / "temp").mkdir(parents=True, exist_ok=True)
        video(out / f"{img.stem}_{a.emo}_{asp}.mp4", n, 256, 256, 25)


def dreamtalk(a, cwd, env, flags):
    for rel in ("checkpoints/denoising_network.pth", "checkpoints/renderer.pt", a.style_clip_path, a.pose_path):
        need(cwd, rel, "inference_for_demo_video.py")
    from huggingface_hub import try_to_load_from_cache

    cache = (env or {}).get("HF_HUB_CACHE")
    if not isinstance(try_to_load_from_cache("jonatasgrosman/wav2vec2-large-xlsr-53-english", "config.json",
                                             cache_dir=cache), str):
        raise ScriptFailed("wav2vec2 model not in the hub cache: from_pretrained would download it")
    (cwd / "tmp" / a.output_name).mkdir(parents=True, exist_ok=True)
    (cwd / "tmp" / a.output_name / "src_img.png").write_bytes(b"")
    out = cwd / "output_video" / f"{a.output_name}.mp4"
    video(out, int(seconds(Path(a.wav_path)) * 25), 256, 256, 25)
    clean = Path(f"{out}-no_watermark.mp4")
    shutil.move(out, clean)
    if "no_watermark" not in flags:                 # the launcher's flag skips the overlay and keeps the clean render
        shutil.copy(clean, out)
        clean.unlink()


SCRIPTS: dict[str, Callable] = {"sadtalker": sadtalker, "aniportrait": aniportrait, "echomimic": echomimic,
                                "hallo": hallo, "hallo2": hallo2, "eat": eat, "dreamtalk": dreamtalk}


class StandIn:
    """Replaces ``run_process``: parses the launcher argv with the upstream parser table and runs the emulation."""

    def __init__(self, method: str) -> None:
        self.method, self.calls = method, []

    def __call__(self, argv, *, cwd, log_path, timeout, env=None):
        assert argv[:3] == [PY, "-c", ext.LAUNCHER]
        flags, script, args = argv[4].split(","), argv[5], argv[6:]
        parser = argparse.ArgumentParser(prog=script, exit_on_error=False)
        for names, kw in ARGS[self.method]:
            parser.add_argument(*names, **kw)
        try:
            ns = parser.parse_args(args)
        except (argparse.ArgumentError, SystemExit) as e:
            raise ScriptFailed(f"{script} rejects {args}: {e}") from None
        assert (Path(cwd) / script).is_file(), f"{script} not in {cwd}"
        self.calls.append({"args": args, "cwd": Path(cwd), "env": dict(env or {}), "flags": flags, "ns": vars(ns)})
        log_path.write_text("stand-in\n")
        SCRIPTS[self.method](ns, Path(cwd), env, flags)
        return 0


def fake_checkout(root: Path, name: str, config: dict) -> Path:
    """A checkout as the user has it: the script, the shipped files and configs, and the weights the adapter asks for."""
    cls = method_class(name)
    for rel in (cls.script, *cls({"repo": str(root), **config}).requirements(), *SHIPPED[name]):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not Path(rel).suffix or rel.endswith(("-960h", "-v1-5")):
            p.mkdir(exist_ok=True)
        elif not p.exists():
            p.write_bytes(b"x")
    for rel, body in TEMPLATES.get(name, {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(yaml.safe_dump(body))
    return root


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = Path(dp) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def fake_hub(root: Path) -> Path:
    repo = root / "models--jonatasgrosman--wav2vec2-large-xlsr-53-english"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    for f in ("config.json", "preprocessor_config.json", "vocab.json", "pytorch_model.bin"):
        (repo / "snapshots" / ("a" * 40) / f).write_text("{}")
    return root


def eat_driving(proc: Path, cid: str, n: int = 20) -> Path:
    d = proc / cid
    for sub in ("deepfeature32", "latent_evp_25", "poseimg", "images_evp_25/cropped"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for rel in (f"{cid}.wav", f"deepfeature32/{cid}.npy", f"latent_evp_25/{cid}.npy", f"poseimg/{cid}.npy.gz"):
        (d / rel).write_bytes(b"")
    for i in range(n):
        (d / "images_evp_25" / "cropped" / f"{i:04d}.jpg").write_bytes(b"")
    return d


@pytest.fixture
def request_(tmp_path: Path) -> GenerationRequest:
    rng = np.random.default_rng(0)
    ref = media.write_image(tmp_path / "in" / "ref.png", rng.integers(0, 255, (80, 64, 3), dtype=np.uint8))
    wav = media.write_wav(tmp_path / "in" / "drive.wav", (0.1 * rng.standard_normal(int(16000 * 0.8))).astype(np.float32))
    return GenerationRequest("c1", ref, wav, tmp_path / "out" / "c1.mp4", emotion=parse_emotion("happy"), seed=5,
                             size=(64, 64))


def _config(name: str, tmp_path: Path) -> dict:
    cfg: dict = {"python": PY}
    if name == "eat":
        eat_driving(tmp_path / "processed", "c1")
        cfg["processed_root"] = str(tmp_path / "processed")
    if name == "dreamtalk":
        cfg["hf_cache"] = str(fake_hub(tmp_path / "hub"))
    if name == "sadtalker":
        cfg["size"] = 512
    return cfg


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_adapter_is_accepted_by_its_script_and_leaves_the_checkout_as_it_was(name, tmp_path, request_, monkeypatch):
    cfg = _config(name, tmp_path)
    repo = fake_checkout(tmp_path / "repo", name, cfg)
    before = tree(repo)
    stand_in = StandIn(name)
    monkeypatch.setattr(ext, "run_process", stand_in)
    if name == "eat":                                  # EAT has contempt (MEAD's eighth label)
        request_.emotion = parse_emotion("contempt", keep_outside=True)
    res = build_method(name, {"repo": str(repo), **cfg}).generate(request_)
    info = media.probe(request_.out_path)
    # stored as the method made it (stream copy, the driving audio muxed); the evaluator converts once (issue 14)
    assert info.has_audio and info.fps == pytest.approx(res.normalisation["source_fps"], abs=1e-3)
    assert abs(res.n_frames / info.fps - 20 / 25.0) <= 1.5 / 25.0 and len(stand_in.calls) == 1
    if name == "eat":
        assert stand_in.calls[0]["ns"]["emo"] == "con"
    assert tree(repo) == before, "the user's checkout was written"
    assert not (request_.out_path.parent / ".work").exists() or not any((request_.out_path.parent / ".work").iterdir())


def test_sadtalker_requirements_follow_size_preprocess_and_enhancer(tmp_path):
    from moee_bench.baselines.sadtalker import SadTalker

    def req(**c):
        return set(SadTalker({"repo": str(tmp_path), **c}).requirements())

    assert {"checkpoints/SadTalker_V0.0.2_256.safetensors", "checkpoints/mapping_00109-model.pth.tar"} <= req()
    assert {"checkpoints/SadTalker_V0.0.2_512.safetensors", "checkpoints/mapping_00229-model.pth.tar"} <= req(size=512, preprocess="crop")
    assert "gfpgan/weights/GFPGANv1.4.pth" in req(enhancer="gfpgan")
    with pytest.raises(BenchError, match="size must be 256 or 512"):
        req(size=384)


def test_aniportrait_refuses_an_fps_other_than_30(tmp_path, request_, monkeypatch):
    repo = fake_checkout(tmp_path / "repo", "aniportrait", {})
    monkeypatch.setattr(ext, "run_process", StandIn("aniportrait"))
    with pytest.raises(BenchError, match="fps must be 30"):
        build_method("aniportrait", {"repo": str(repo), "python": PY, "fps": 25}).generate(request_)


def test_dreamtalk_says_it_needs_the_hub_model(tmp_path, request_, monkeypatch):
    repo = fake_checkout(tmp_path / "repo", "dreamtalk", {})
    stand_in = StandIn("dreamtalk")
    monkeypatch.setattr(ext, "run_process", stand_in)
    with pytest.raises(BenchError, match="jonatasgrosman/wav2vec2-large-xlsr-53-english.*hub"):
        build_method("dreamtalk", {"repo": str(repo), "python": PY, "hf_cache": str(tmp_path / "empty")}).generate(request_)
    assert not stand_in.calls
    hub = fake_hub(tmp_path / "hub")
    build_method("dreamtalk", {"repo": str(repo), "python": PY, "hf_cache": str(hub)}).generate(request_)
    assert stand_in.calls[-1]["env"] == {"HF_HUB_CACHE": str(hub)}


def test_eat_generates_contempt_moee_ref_does_not():
    from moee_bench.baselines.eat import EAT

    contempt = parse_emotion("contempt", keep_outside=True)
    assert EAT({}).skip_reason(contempt) is None
    assert "not in dreamtalk's" not in str(method_class("dreamtalk")({}).skip_reason(contempt))
    assert method_class("dreamtalk")({}).skip_reason(contempt) is None
    assert method_class("sadtalker")({}).skip_reason(contempt) is None            # no emotion input: nothing to lack
    why = method_class("moee-ref")({"checkpoint": "x"}).skip_reason(contempt)
    assert "outside the MoEE taxonomy" in why and "moee-ref" in why


def test_dry_run_prints_argv_cwd_and_configs_and_runs_nothing(tmp_path, sample_manifest, monkeypatch, capsys):
    from moee_bench.bench.cli.app import main

    repo = fake_checkout(tmp_path / "repo", "aniportrait", {})
    before = tree(repo)
    stand_in = StandIn("aniportrait")
    monkeypatch.setattr(ext, "run_process", stand_in)
    out = tmp_path / "gen"
    assert main(["generate", "--method", "aniportrait", "--config", f"repo={repo}", "--config", f"python={PY}",
                 "--manifest", str(sample_manifest), "--split", "test", "--limit", "1", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not stand_in.calls and not list(out.glob("*.mp4"))
    argv = json.loads(next(line for line in text.splitlines() if line.startswith("argv: "))[6:])
    assert argv[:3] == [PY, "-c", ext.LAUNCHER] and argv[5] == "scripts/audio2vid.py" and argv[-2:] == ["--fps", "30"]
    cwd = next(line for line in text.splitlines() if line.startswith("cwd: "))[5:]
    assert cwd.endswith("checkout") and (Path(cwd) / "scripts" / "audio2vid.py").is_file()
    assert "config " in text and "test_cases:" in text and "image_encoder_path" in text
    assert tree(repo) == before
