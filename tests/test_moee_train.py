"""MoEE tiny training on the sample dataset: both stages lower the loss, stage 2 trains only what it should,
a killed run resumes to the same weights, and the trained model generates a clip the metrics can score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from moee_bench.bench.cli.app import main
from moee_bench.moee_ref.train import train

STEPS = 40


@pytest.fixture(scope="module")
def stages(sample_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("moee")
    logs: list[str] = []
    cache = root / "clip_cache"
    r0 = train("tiny", stage=0, manifest=sample_manifest, out_dir=root / "s0", steps=STEPS, log=logs.append,
               clip_cache=cache)
    assert r0.fixed_batch_after < 0.8 * r0.fixed_batch_before, (r0.fixed_batch_before, r0.fixed_batch_after)
    r1 = train("tiny", stage=1, manifest=sample_manifest, out_dir=root / "s1", init=r0.checkpoint, steps=STEPS,
               log=logs.append, clip_cache=cache)
    r2 = train("tiny", stage=2, manifest=sample_manifest, out_dir=root / "s2", init=r1.checkpoint, steps=STEPS,
               log=logs.append, clip_cache=cache)
    return root, r1, r2, logs, r0


def test_stage1_lowers_loss_on_a_fixed_batch(stages):
    _, r1, _, logs, r0 = stages
    assert len(r1.losses) == STEPS and all(np.isfinite(r1.losses))
    assert r1.fixed_batch_after < 0.7 * r1.fixed_batch_before, (r1.fixed_batch_before, r1.fixed_batch_after)
    assert any("fixed-batch loss" in line for line in logs)
    rows = [json.loads(x) for x in (r1.out_dir / "train_log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == STEPS and {"latent", "spatial", "total"} <= rows[-1].keys()
    a = load_file(str(r0.checkpoint / "model.safetensors"))
    b = load_file(str(r1.checkpoint / "model.safetensors"))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and not any(k.startswith(("vae.", "audio_encoder.", "emotion.")) or ".moe." in k for k in changed)


def test_stage2_trains_only_experts_and_emotion_module(stages):
    _, r1, r2, _, _ = stages
    assert r2.fixed_batch_after < r2.fixed_batch_before, (r2.fixed_batch_before, r2.fixed_batch_after)
    a = load_file(str(r1.checkpoint / "model.safetensors"))
    b = load_file(str(r2.checkpoint / "model.safetensors"))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed, "stage 2 changed nothing"
    assert all(".moe." in k or k.startswith("emotion.") for k in changed), sorted(changed)[:5]
    assert any(".moe." in k for k in changed) and any(k.startswith("emotion.") for k in changed)
    rows = [json.loads(x) for x in (r2.out_dir / "train_log.jsonl").read_text().splitlines()]
    assert "gate" in rows[-1]


def test_killed_run_resumes_to_the_same_weights(sample_manifest: Path, tmp_path: Path):
    """A run stopped after its step-6 checkpoint and restarted ends where an uninterrupted run ends."""
    straight = train("tiny", stage=1, manifest=sample_manifest, out_dir=tmp_path / "a", steps=10, max_clips=3,
                     log=lambda s: None)
    train("tiny", stage=1, manifest=sample_manifest, out_dir=tmp_path / "b", steps=6, max_clips=3, log=lambda s: None)
    resumed = train("tiny", stage=1, manifest=sample_manifest, out_dir=tmp_path / "b", steps=10, max_clips=3,
                    log=lambda s: None)
    assert resumed.start_step == 6 and len(resumed.losses) == 4
    assert resumed.losses == pytest.approx(straight.losses[6:], rel=1e-5)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-5


def test_trained_model_generates_a_scorable_clip(stages, sample_manifest: Path, tmp_path: Path):
    from moee_bench.baselines.base import GenerationRequest
    from moee_bench.baselines.registry import build_method
    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import load_manifest

    _, _, r2, _, _ = stages
    m = load_manifest(sample_manifest)
    clip = m.by_id()["astronaut_happiness"]
    method = build_method("moee-ref", {"checkpoint": str(r2.out_dir), "steps": 3})
    pred = tmp_path / "pred"

    def gen(out: Path, seed: int, emotion: str) -> np.ndarray:
        req = GenerationRequest(clip.clip_id, m.media_path(clip, "ref_image"), m.media_path(clip, "audio"), out,
                                emotion=parse_emotion(emotion), seed=seed, size=(256, 256), num_frames=24)
        res = method.generate(req)
        assert res.n_frames == 24 and res.normalisation["resized"]
        return media.read_frames(out)

    a = gen(pred / f"{clip.clip_id}.mp4", 1, "happiness")
    again = gen(tmp_path / "again.mp4", 1, "happiness")
    other_seed = gen(tmp_path / "seed2.mp4", 2, "happiness")
    compound = gen(tmp_path / "compound.mp4", 1, "happily_surprised")
    assert np.array_equal(a, again)                                   # seeded: bit-identical
    assert not np.array_equal(a, other_seed)
    assert not np.array_equal(a, compound)                            # the emotion spec reaches the experts
    info = media.probe(pred / f"{clip.clip_id}.mp4")
    assert (info.fps, info.width, info.has_audio) == (25.0, 256, True)
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / f"{clip.clip_id}.mp4").symlink_to(m.media_path(clip, "video"))
    out = tmp_path / "score.json"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr,ssim", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert np.isfinite(res["metrics"]["psnr"]) and 0 < res["metrics"]["psnr"] < 60
    assert np.isfinite(res["metrics"]["ssim"])


def test_train_cli_refuses_stage2_without_init(tmp_path: Path, sample_manifest: Path, capsys):
    assert main(["train", "--stage", "2", "--manifest", str(sample_manifest), "--out", str(tmp_path)]) == 2
    assert "--init" in capsys.readouterr().err


def test_bench_moee_reports_speed_and_ratio(tmp_path: Path):
    out = tmp_path / "moee.json"
    assert main(["bench", "moee", "--clips", "1", "--frames", "5", "--steps", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["config"] == "tiny" and r["frames_per_clip"] == 5
    assert r["frames_per_s"] > 0 and r["peak_memory_gib"] > 0
    # the ratio is printed, never asserted: a timing on a shared machine is not a test
    assert r["moee_over_plain_unet"] > 0


@pytest.mark.slow
def test_paper_config_builds_with_random_weights_and_denoises():
    """SD 1.5-sized MoEE (random init, pretrained off): parameter count and one small denoiser call."""
    from moee_bench.moee_ref.config import load_config
    from moee_bench.moee_ref.model import Conditions, MoEEModel

    cfg = load_config("paper")
    cfg.pretrained = False
    cfg.emotion.text_encoder = "minilm"
    model = MoEEModel(cfg).eval()
    unet = sum(p.numel() for p in model.denoiser.parameters())
    assert 8.0e8 < unet < 9.0e8                                     # SD 1.5's U-Net has ~860 M parameters
    with torch.no_grad():
        lat = torch.randn(1, 2, 4, 16, 16)
        ref = torch.randn(1, 1, 4, 16, 16)
        tokens = model.reference_tokens(ref[:, 0])
        cond = Conditions(tokens, torch.randn(1, 2, 10, 768), torch.randn(1, 16, 768),
                          torch.tensor([[0, 0, 0.5, 0.5, 0, 0]]), torch.ones(1))
        model.set_reference(ref, tokens)
        eps = model.denoise(lat, torch.tensor([10]), cond)
    assert eps.shape == lat.shape and torch.isfinite(eps).all()


def test_every_emotion_input_drives_generation(stages, sample_manifest: Path):
    """Label, compound, text (MiniLM) and audio-only emotion conditions all reach the experts."""
    from moee_bench.bench.core import media
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.moee_ref.method import load_trained
    from moee_bench.moee_ref.pipeline import EmotionCondition, Guidance, MoEEPipeline

    _, _, r2, _, _ = stages
    model, _ = load_trained(r2.out_dir)
    pipe = MoEEPipeline(model)
    m = load_manifest(sample_manifest)
    clip = m.by_id()["hopper_anger"]
    ref = media.read_image(m.media_path(clip, "ref_image"))
    wave = media.read_audio(m.media_path(clip, "audio"))
    conds = {"label": EmotionCondition("label", weights=(0, 0, 1.0, 0, 0, 0)),
             "compound": EmotionCondition("label", weights=(0, 0, 0.5, 0.5, 0, 0)),
             "neutral": EmotionCondition("label"),
             "text": EmotionCondition("text", text="a person talking with an angry face"),
             "audio": EmotionCondition("audio", wave=wave)}
    outs = {k: pipe(ref, wave, c, num_frames=6, steps=2, seed=0, guidance=Guidance(emotion=2.0))
            for k, c in conds.items()}
    assert all(o.shape == (6, 64, 64, 3) for o in outs.values())
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.array_equal(outs[a], outs[b]), (a, b)


def test_clip_cache_is_reused_and_memory_mapped(sample_manifest: Path, tmp_path: Path):
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.moee_ref.audio import build_wav2vec2
    from moee_bench.moee_ref.config import load_config
    from moee_bench.moee_ref.data import load_clips

    cfg = load_config("tiny")
    torch.manual_seed(0)
    enc = build_wav2vec2(cfg).eval()
    m = load_manifest(sample_manifest)
    ids = ["hopper_anger", "hopper_neutral"]
    first = load_clips(m, ids, cfg, enc, cache_dir=tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")}
    assert len(stamps) == 8                                   # frames, audio, ref, emotion audio per clip
    again = load_clips(m, ids, cfg, enc, cache_dir=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")} == stamps     # nothing re-prepared
    assert isinstance(again[0].frames, np.memmap)
    assert np.array_equal(np.asarray(again[0].frames), first[0].frames)
    assert torch.equal(again[1].audio_feats, first[1].audio_feats) and again[0].mouth == first[0].mouth
    nocache = load_clips(m, ids[:1], cfg, enc)
    assert np.array_equal(nocache[0].frames, first[0].frames)
    # a different audio encoder is a different cache entry
    enc2 = build_wav2vec2(cfg).eval()
    load_clips(m, ids[:1], cfg, enc2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("hopper_anger-*"))) == 2


def test_generate_cli_with_moee_ref_checkpoint(stages, sample_manifest: Path, tmp_path: Path):
    _, _, r2, _, _ = stages
    out = tmp_path / "videos"
    assert main(["generate", "--method", "moee-ref", "--checkpoint", str(r2.out_dir), "--manifest", str(sample_manifest),
                 "--split", "test", "--out", str(out), "--limit", "1", "--config", "steps=2"]) == 0
    (video,) = out.glob("*.mp4")
    rec = json.loads(video.with_suffix(".json").read_text())
    assert rec["method"]["name"] == "moee-ref" and rec["normalisation"]["checkpoint"].endswith("ckpt-0000040")
    # the checkpoint records what every stage trained on; the test split's identity is not among them
    training = rec["method"]["training_data"]
    assert [t["stage"] for t in training] == [0, 1, 2]
    assert all(t["name"] == "train" and t["identities"] == ["hopper"] and t["dataset"] == "moee-bench-sample" for t in training)
    assert rec["method"]["identity_check"]["overlap"] == [] and rec["split"]["name"] == "test"
    from moee_bench.bench.core import media

    assert media.probe(video).has_audio


def test_a_checkpoint_is_not_evaluated_on_its_training_identities(stages, sample_manifest: Path, tmp_path: Path, capsys):
    _, _, r2, _, _ = stages
    args = ["generate", "--method", "moee-ref", "--checkpoint", str(r2.out_dir), "--manifest", str(sample_manifest),
            "--split", "train", "--out", str(tmp_path / "v"), "--limit", "1", "--config", "steps=2"]
    assert main(args) == 2
    assert "trained on 1 identities of moee-bench-sample" in capsys.readouterr().err and not list((tmp_path / "v").glob("*.mp4"))
    assert main(args + ["--allow-identity-overlap"]) == 0
    (video,) = (tmp_path / "v").glob("*.mp4")
    assert json.loads(video.with_suffix(".json").read_text())["method"]["identity_check"]["overlap"] == ["hopper"]


def test_sample_moee_suite_file_names_the_checkpoint():
    from moee_bench.bench.suite.spec import load_suite

    s = load_suite(Path(__file__).resolve().parents[1] / "bench" / "suite" / "suites" / "sample_moee.toml")
    (spec,) = [m for m in s.methods if m.name == "moee-ref"]
    assert spec.label == "moee-ref-tiny" and spec.config["checkpoint"] == "moee_bench_runs/moee/s2"
    assert s.dataset == "sample" and s.size == (256, 256)


@pytest.mark.slow
def test_each_ablation_variant_trains_from_one_stage1_checkpoint_and_runs_in_a_suite(stages, sample_manifest: Path,
                                                                                   tmp_path: Path):
    """Table 5's model rows: stage 2 of each variant from the shared stage-1 checkpoint, then one suite
    run with every variant as a method (one clip, one DDIM step: the path, not the quality)."""
    from moee_bench.baselines.registry import build_method
    from moee_bench.bench.core.errors import BenchError
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.moee_ref.checkpoint import checkpoint_config

    root, r1, r2, _, _ = stages
    m = load_manifest(sample_manifest)
    one = m.with_clips([m.by_id()["astronaut_happiness"]]).save(tmp_path / "one.json")
    methods = [("moee-ref", r2.out_dir)]
    for v in ("no-moe", "no-global-gate", "no-masked-noisy", "no-dhfev"):
        r = train("tiny", stage=2, manifest=sample_manifest, out_dir=tmp_path / v, init=r1.checkpoint, steps=2,
                  variant=v, clip_cache=root / "clip_cache", log=lambda s: None)
        assert checkpoint_config(r.checkpoint).variant == v
        methods.append((f"moee-ref:{v}", r.out_dir))
    suite = tmp_path / "ablation.toml"
    suite.write_text(f'name = "ablation"\ndataset = "{one}"\nsplit = "test"\nmetrics = ["psnr"]\nseed = 0\n'
                     f'size = [64, 64]\n' + "".join(f'[[methods]]\nname = "{n}"\ncheckpoint = "{d}"\nsteps = 1\n'
                                                    for n, d in methods))
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    with ResultStore(tmp_path / "out" / "store") as st:
        (run,) = st.runs()
        psnr = st.aggregates(run["run_id"]).set_index(["method", "key"])["value"]
    assert all(np.isfinite(psnr[(n, "psnr")]) for n, _ in methods)
    with pytest.raises(BenchError, match="variant 'no-moe'"):
        build_method("moee-ref:no-moe", {"checkpoint": str(r2.out_dir)}).pipeline()


def test_bench_moee_times_training_steps_of_both_stages(tmp_path: Path):
    out = tmp_path / "moee.json"
    assert main(["bench", "moee", "--clips", "1", "--frames", "4", "--steps", "1", "--train-steps", "1",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["random_init"] is True and r["train_mixed_precision"] == "no"       # CPU: full precision
    for k in ("stage1_s_per_step", "stage2_s_per_step", "plain_sd_unet_s_per_step"):
        assert r[k] > 0
    # stage 2 trains only the experts, gates and Emotion-to-Latents: far fewer parameters than stage 1
    assert 0 < r["stage2_trainable_millions"] < r["stage1_trainable_millions"]
    assert all(np.isfinite(float(v)) for v in r["stage1_losses"].split() + r["stage2_losses"].split())
