"""External baseline adapters without the external repos: the exact command and config each would run,
output discovery and normalisation on a fake run's files, install errors, and the seeding launcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import moee_bench.baselines.external as ext
from moee_bench.baselines.base import GenerationRequest
from moee_bench.baselines.registry import build_method
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.errors import BenchError, ClipError
from test_upstream_contracts import eat_driving, fake_hub      # fake EAT driving clips and hub cache, shared

PY = sys.executable


def _fake_repo(root: Path, cls, extra: dict[str, str] | None = None, config: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel in (cls.script, *cls({"repo": str(root), **(config or {})}).requirements()):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".yaml", ".yml")):
            p.write_text(yaml.safe_dump({"weight_dtype": "fp16", "test_cases": {"x.png": ["x.wav"]}, "save_path": "o"}))
        elif "." in Path(rel).name:
            p.write_text("")
        else:
            p.mkdir(exist_ok=True)
    for rel, text in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def request_(tmp_path: Path) -> GenerationRequest:
    rng = np.random.default_rng(0)
    ref = media.write_image(tmp_path / "in" / "ref.png", rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    wav = media.write_wav(tmp_path / "in" / "drive.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32))
    return GenerationRequest("clip 01", ref, wav, tmp_path / "out" / "clip 01.mp4", emotion=parse_emotion("happily_surprised"),
                             seed=7, fps=25.0, size=(128, 128))


def _write_fake_video(path: Path, fps: float, size: int = 200, n: int = 30, grid: bool = False) -> None:
    frames = np.random.default_rng(1).integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    if grid:                                        # make_grid(nrow=3, padding=2): ref | pose | generated
        canvas = np.zeros((n, size + 4, 3 * size + 8, 3), np.uint8)
        canvas[:, 2:2 + size, 2:2 + size] = 255
        canvas[:, 2:2 + size, 4 + size:4 + 2 * size] = 0
        canvas[:, 2:2 + size, 6 + 2 * size:6 + 3 * size] = frames
        frames = canvas
    media.write_video(path, [frames], fps)          # no audio track: the adapter must mux the driving audio


class FakeRun:
    """Stands in for ``run_process``: records the call and writes what the real method would write."""

    def __init__(self, writer) -> None:
        self.writer, self.calls = writer, []

    def __call__(self, argv, *, cwd, log_path, timeout, env=None):
        self.calls.append((list(argv), Path(cwd)))
        log_path.write_text("fake run\n")
        self.writer(list(argv), Path(cwd))
        return 0


def _script_args(argv: list[str]) -> tuple[str, list[str], str, str]:
    """(script, args, seed, flags) from a launcher argv."""
    assert argv[0] == PY and argv[1] == "-c" and argv[2] == ext.LAUNCHER
    return argv[5], argv[6:], argv[3], argv[4]


def _check_normalised(res, request_, native_fps: float) -> None:
    info = media.probe(request_.out_path)          # stored as the method made it; the evaluator converts once
    assert info.fps == pytest.approx(native_fps, abs=1e-3) and info.has_audio
    assert res.normalisation["source_fps"] == pytest.approx(native_fps)
    assert ("fps_conversion" in res.normalisation) == (abs(native_fps - 25.0) > 1e-3)
    assert "resize" in res.normalisation and "driving audio" in res.normalisation["audio"]


def test_hallo_command_and_output(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.hallo import Hallo

    repo = _fake_repo(tmp_path / "hallo", Hallo)
    fake = FakeRun(lambda argv, cwd: _write_fake_video(Path(argv[argv.index("--output") + 1]), 25.0))
    monkeypatch.setattr(ext, "run_process", fake)
    m = build_method("hallo", {"repo": str(repo), "python": PY, "face_weight": 1.5})
    res = m.generate(request_)
    script, args, seed, flags = _script_args(fake.calls[0][0])
    work = request_.out_path.parent / ".work" / "hallo-clip=2001"
    assert fake.calls[0][1] == repo.resolve() and script == "scripts/inference.py" and seed == "7" and flags == "-"
    assert args == ["--config", str(work / "default.yaml"), "--source_image", str(work / "mb_clip=2001_s7.png"),
                    "--driving_audio", str(work / "mb_clip=2001_s7.wav"), "--output", str(work / "hallo.mp4"),
                    "--face_weight", "1.5"]
    _check_normalised(res, request_, 25.0)
    assert "42" in res.normalisation["seed"] and "ignored" in res.normalisation["emotion"]
    assert not work.exists()                                   # work folder cleaned after success


def test_hallo2_writes_its_yaml(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.hallo import Hallo2

    repo = _fake_repo(tmp_path / "hallo2", Hallo2)

    def writer(argv, cwd):
        cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
        _write_fake_video(Path(cfg["save_path"]) / Path(cfg["source_image"]).stem / "merge_video.mp4", 25.0)

    fake = FakeRun(writer)
    monkeypatch.setattr(ext, "run_process", fake)
    m = build_method("hallo2", {"repo": str(repo), "python": PY, "keep_work": True})
    res = m.generate(request_)
    _, args, _, _ = _script_args(fake.calls[0][0])
    cfg = yaml.safe_load(Path(args[1]).read_text())
    work = request_.out_path.parent / ".work" / "hallo2-clip=2001"
    assert cfg["source_image"] == str(work / "mb_clip=2001_s7.png") and cfg["save_path"] == str(work / "out")
    assert cfg["weight_dtype"] == "fp16"                       # the method's own keys are kept
    _check_normalised(res, request_, 25.0)


def test_aniportrait_command_output_and_unseeded_pose(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.aniportrait import AniPortrait

    repo = _fake_repo(tmp_path / "ani", AniPortrait)

    def writer(argv, cwd):
        cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
        (ref, auds), = cfg["test_cases"].items()
        d = cwd / "output" / "20261125" / "0312--seed_7-512x512"
        _write_fake_video(d / f"{Path(ref).stem}_{Path(auds[0]).stem}_512x512_3_0312.mp4", 30.0, grid=True)
        _write_fake_video(d / f"{Path(ref).stem}_{Path(auds[0]).stem}_512x512_3_0312_noaudio.mp4", 30.0, grid=True)

    fake = FakeRun(writer)
    monkeypatch.setattr(ext, "run_process", fake)
    res = build_method("aniportrait", {"repo": str(repo), "python": PY, "steps": 25}).generate(request_)
    script, args, seed, _ = _script_args(fake.calls[0][0])
    assert script == "scripts/audio2vid.py" and seed == "7"
    assert args[2:] == ["-W", "512", "-H", "512", "--seed", "7", "--fps", "30", "--steps", "25"]
    _check_normalised(res, request_, 30.0)
    assert not list((repo / "output").glob("*/*/*.mp4"))       # moved out of the user's checkout
    assert "random.seed" in res.normalisation["seed"]
    assert res.normalisation["crop_region"] == "rows 2:202, cols 406:606 of 204x608"
    assert res.normalisation["resize"] == "200x200 -> 128x128 (cv2.INTER_AREA), once, at scoring"
    assert (media.probe(request_.out_path).height, media.probe(request_.out_path).width) == (200, 200)
    # the kept panel is the generated one: not the white reference, not the black pose panel
    assert 60 < media.read_frames(request_.out_path).mean() < 200


def test_echomimic_command_and_output(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.echomimic import EchoMimic

    repo = _fake_repo(tmp_path / "echo", EchoMimic)

    def writer(argv, cwd):
        cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
        (ref, auds), = cfg["test_cases"].items()
        d = cwd / "output" / "20261125" / "0312--seed_7-512x512"
        _write_fake_video(d / f"{Path(ref).stem}_{Path(auds[0]).stem}_512x512_2_0312_withaudio.mp4", 24.0)

    fake = FakeRun(writer)
    monkeypatch.setattr(ext, "run_process", fake)
    res = build_method("echomimic", {"repo": str(repo), "python": PY, "device": "cpu"}).generate(request_)
    _, args, _, _ = _script_args(fake.calls[0][0])
    assert args[2:] == ["-W", "512", "-H", "512", "-L", "24", "--seed", "7", "--fps", "24", "--device", "cpu"]
    _check_normalised(res, request_, 24.0)
    assert "re-cropped" in res.normalisation["crop"]


def test_sadtalker_command_and_output(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.sadtalker import SadTalker

    repo = _fake_repo(tmp_path / "sad", SadTalker, config={"enhancer": "gfpgan"})
    fake = FakeRun(lambda argv, cwd: _write_fake_video(
        Path(argv[argv.index("--result_dir") + 1]) / "2026_11_25_03.12.00.mp4", 25.0))
    monkeypatch.setattr(ext, "run_process", fake)
    res = build_method("sadtalker", {"repo": str(repo), "python": PY, "device": "cpu", "enhancer": "gfpgan"}).generate(request_)
    _, args, _, _ = _script_args(fake.calls[0][0])
    work = request_.out_path.parent / ".work" / "sadtalker-clip=2001"
    assert args == ["--driven_audio", str(work / "mb_clip=2001_s7.wav"), "--source_image", str(work / "mb_clip=2001_s7.png"),
                    "--result_dir", str(work / "results"), "--size", "256", "--preprocess", "full", "--pose_style", "0",
                    "--expression_scale", "1.0", "--still", "--enhancer", "gfpgan", "--cpu"]
    _check_normalised(res, request_, 25.0)


def test_dreamtalk_style_clip_watermark_and_spaces(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.dreamtalk import DreamTalk

    repo = _fake_repo(tmp_path / "dt", DreamTalk, {"data/style_clip/3DMM/M030_front_happy_level3_001.mat": "",
                                                    "data/style_clip/3DMM/W009_front_neutral_level1_001.mat": ""})

    def writer(argv, cwd):
        name = argv[argv.index("--output_name") + 1]
        _write_fake_video(cwd / "output_video" / f"{name}.mp4-no_watermark.mp4", 25.0)

    fake = FakeRun(writer)
    monkeypatch.setattr(ext, "run_process", fake)
    hub = str(fake_hub(tmp_path / "hub"))
    spaced = GenerationRequest("c0", request_.ref_image, request_.audio, tmp_path / "my out" / "c0.mp4", size=(128, 128))
    with pytest.raises(ClipError, match="splits paths on spaces"):
        build_method("dreamtalk", {"repo": str(repo), "python": PY, "hf_cache": hub}).generate(spaced)
    req = GenerationRequest("c1", request_.ref_image, request_.audio, tmp_path / "o2" / "c1.mp4",
                            emotion=parse_emotion("happily_surprised"), seed=3, size=(128, 128))
    res = build_method("dreamtalk", {"repo": str(repo), "python": PY, "hf_cache": hub}).generate(req)
    _, args, seed, flags = _script_args(fake.calls[-1][0])
    assert flags == "no_watermark" and seed == "3"
    assert args[args.index("--style_clip_path") + 1] == "data/style_clip/3DMM/M030_front_happy_level3_001.mat"
    assert "strongest component happiness" in res.normalisation["emotion"]
    assert res.normalisation["watermark"] == "skipped"
    neutral = GenerationRequest("c2", request_.ref_image, request_.audio, tmp_path / "o2" / "c2.mp4",
                                emotion=parse_emotion("neutral"), size=(128, 128))
    build_method("dreamtalk", {"repo": str(repo), "python": PY, "style_speaker": "W009", "hf_cache": hub}).generate(neutral)
    _, args, _, _ = _script_args(fake.calls[-1][0])
    assert args[args.index("--style_clip_path") + 1].endswith("W009_front_neutral_level1_001.mat")


def test_eat_shadow_checkout_and_emotion_code(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.eat import EAT

    repo = _fake_repo(tmp_path / "eat", EAT, {"demo/shape_predictor_68_face_landmarks.dat": "x",
                                              "demo/imgs/theirs.jpg": "y", "modules/model.py": ""})
    proc = tmp_path / "processed"
    with pytest.raises(ClipError, match="no preprocessed driving clip") as e:
        build_method("eat", {"repo": str(repo), "python": PY, "processed_root": str(proc)}).generate(request_)
    assert e.value.status == "missing"
    drive = eat_driving(proc, "clip 01")

    def writer(argv, cwd):
        imgs = list((cwd / "demo" / "imgs").glob("*.jpg"))
        assert [p.name for p in imgs] == ["mb_clip=2001_s7.jpg"]   # only our image: their demo/imgs is not visible
        emo = argv[argv.index("--emo") + 1]
        _write_fake_video(cwd / "demo" / "output" / "deepprompt_eam3d_all_final_313" /
                          f"{imgs[0].stem}_{emo}_clip 01.mp4", 25.0, size=256)

    fake = FakeRun(writer)
    monkeypatch.setattr(ext, "run_process", fake)
    req = GenerationRequest("clip 01", request_.ref_image, request_.audio, request_.out_path,
                            emotion=parse_emotion("disgust"), seed=7, size=(128, 128))
    res = build_method("eat", {"repo": str(repo), "python": PY, "processed_root": str(proc), "keep_work": True}).generate(req)
    _, args, _, _ = _script_args(fake.calls[0][0])
    assert args == ["--root_wav", str(drive), "--emo", "dis", "--name", "deepprompt_eam3d_all_final_313"]
    shadow = fake.calls[0][1]
    assert (shadow / "modules").is_symlink() and (shadow / "demo" / "shape_predictor_68_face_landmarks.dat").is_symlink()
    assert not (repo / "demo" / "output").exists()             # the user's checkout is not written
    _check_normalised(res, req, 25.0)


def test_install_errors_name_what_to_get(tmp_path, request_):
    with pytest.raises(BenchError, match="github.com/OpenTalker/SadTalker"):
        build_method("sadtalker", {}).generate(request_)
    with pytest.raises(BenchError, match="does not exist: git clone"):
        build_method("sadtalker", {"repo": str(tmp_path / "nope"), "python": PY}).generate(request_)
    from moee_bench.baselines.sadtalker import SadTalker

    repo = _fake_repo(tmp_path / "sad", SadTalker)
    (repo / "checkpoints" / "mapping_00109-model.pth.tar").unlink()
    with pytest.raises(BenchError, match="mapping_00109-model.pth.tar.*download_models.sh"):
        build_method("sadtalker", {"repo": str(repo), "python": PY}).generate(request_)
    with pytest.raises(BenchError, match="no Python environment"):
        build_method("hallo", {"repo": str(_fake_repo(tmp_path / "h", __import__("moee_bench.baselines.hallo").baselines.hallo.Hallo))}).generate(request_)


def test_failed_run_names_the_clip_with_the_log_tail(tmp_path, request_, monkeypatch):
    from moee_bench.baselines.hallo import Hallo

    repo = _fake_repo(tmp_path / "hallo", Hallo)

    def failing(argv, *, cwd, log_path, timeout, env=None):
        log_path.write_text("loading...\nRuntimeError: CUDA out of memory\n")
        return 1

    monkeypatch.setattr(ext, "run_process", failing)
    with pytest.raises(ClipError, match="(?s)hallo exited with code 1.*CUDA out of memory") as e:
        build_method("hallo", {"repo": str(repo), "python": PY}).generate(request_)
    assert e.value.clip_id == "clip 01"
    monkeypatch.setattr(ext, "run_process", lambda argv, **k: (k["log_path"].write_text("ok"), 0)[1])
    with pytest.raises(ClipError, match="wrote no video"):
        build_method("hallo", {"repo": str(repo), "python": PY}).generate(request_)


def test_launcher_seeds_and_skips_the_watermark(tmp_path: Path):
    script = tmp_path / "m.py"
    script.write_text("import os, random, sys\n"
                      "open('rand.txt', 'w').write(repr(random.random()) + ' ' + ' '.join(sys.argv[1:]))\n"
                      "open('x-no_watermark.mp4', 'w').write('clean')\n"
                      "rc = os.system('ffmpeg -i x -vf movie=media/watermark.png out.mp4')\n"
                      "os.remove('x-no_watermark.mp4')\n"
                      "open('rc.txt', 'w').write(str(rc))\n")

    def run(seed: int, flags: str) -> tuple[str, bool, str]:
        subprocess.run([PY, "-c", ext.LAUNCHER, str(seed), flags, str(script), "--a", "b c"], cwd=tmp_path, check=True,
                       capture_output=True)
        return ((tmp_path / "rand.txt").read_text(), (tmp_path / "x-no_watermark.mp4").exists(),
                (tmp_path / "rc.txt").read_text())

    a, kept, rc = run(5, "no_watermark")
    assert kept and rc == "0"                      # overlay skipped, clean render kept
    b, _, _ = run(5, "no_watermark")
    c, kept_c, rc_c = run(6, "-")
    assert a == b and a != c and a.endswith("--a b c")
    assert not kept_c and rc_c != "0"              # without the flag the method's own steps run


def test_real_run_process_uses_an_argument_list(tmp_path: Path):
    log = tmp_path / "log.txt"
    rc = ext.run_process([PY, "-c", "import sys; print('hello; rm -rf /'); sys.exit(3)"], cwd=tmp_path, log_path=log,
                         timeout=60)
    assert rc == 3 and "hello; rm -rf /" in log.read_text()
