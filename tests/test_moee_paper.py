"""MoEE reference = the paper's model: soft global-local gating (formula, pipeline, training), masked noisy
emotion sampling with per-frame mouth masks, emotion2vec from its official checkpoint format, the
perceptual loss and its weighting, and the Table 5 ablations as named variants."""

from __future__ import annotations

import collections
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.moee_ref.config import ConfigError, from_dict, load_config, with_variant


def _tiny_model(variant: str = "full", seed: int = 0):
    from moee_bench.moee_ref.model import MoEEModel

    torch.manual_seed(seed)
    return MoEEModel(with_variant(load_config("tiny"), variant)).eval()


# ------------------------------------------------------------------------------------------- 1. soft gating
def test_paper_formula_matches_an_explicit_sum_written_from_the_formula():
    """X' = X + sum_i g_i E_i(X s_i), s = sigmoid(G_l(X)) per token, g = softmax(G_g(Pool)) per sample."""
    from moee_bench.moee_ref.moe import MoELayer

    torch.manual_seed(3)
    layer = MoELayer(16, 8, heads=2)
    b, f, n = 2, 3, 5
    x, z = torch.randn(b * f, n, 16), torch.randn(b, 4, 8).repeat_interleave(f, 0)
    out, g, s = layer(x, z, num_frames=f)
    h = torch.nn.functional.layer_norm(x, (16,), layer.norm.weight, layer.norm.bias)
    want = x.clone()
    for k in range(b):                                     # one sample = f frames of n tokens
        rows = slice(k * f, (k + 1) * f)
        hk = h[rows]
        s_k = torch.sigmoid(hk @ layer.local_gate.weight.T + layer.local_gate.bias)            # (f, n, 6)
        pool = torch.cat([hk.reshape(-1, 16).mean(0), z[k * f].mean(0)])
        g_k = torch.softmax(pool @ layer.global_gate.weight.T + layer.global_gate.bias, -1)   # (6,)
        for i in range(6):
            e = layer.experts[i](hk * s_k[..., i:i + 1], encoder_hidden_states=z[rows])
            want[rows] = want[rows] + g_k[i] * e
        assert torch.allclose(g[rows], g_k.expand(f, 6), atol=1e-6)                          # per sample, not per frame
    assert torch.allclose(out, want, atol=1e-5)


def test_default_configs_are_the_paper_model():
    for name in ("tiny", "paper"):
        cfg = load_config(name)
        assert (cfg.variant, cfg.moe.experts, cfg.moe.global_gate, cfg.moe.local_gate) == ("full", 6, "soft", "input")
        assert cfg.train.masked_noisy and cfg.train.p_noisy > 0
    assert load_config("paper").emotion.audio_encoder == "emotion2vec"
    with pytest.raises(ConfigError, match="no longer exist"):
        from_dict({"moe": {"train_routing": "forced"}})


@torch.no_grad()
def test_pipeline_mixes_experts_with_the_networks_own_gate():
    """For a label (and a compound) the generated frames depend on the network's global gate: moving its
    bias changes them. With the palette (forced routing) they do not: the label's weights replace g."""
    from moee_bench.moee_ref.pipeline import EmotionCondition, Guidance, MoEEPipeline

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(16000 // 5)).astype(np.float32)
    for variant, palette, must_change in (("full", False, True), ("palette", False, False)):
        model = _tiny_model(variant)
        for ex in model.extras.values():                   # make the experts matter (random init is small)
            for e in ex.moe.experts:
                e.to_out[0].weight.mul_(50.0)
        pipe = MoEEPipeline(model, palette=palette)
        calls = []
        real = model.denoise
        model.denoise = lambda *a, **k: (calls.append(a[2].routing), real(*a, **k))[1]
        for weights in ((1.0, 0, 0, 0, 0, 0), (0.5, 0, 0, 0, 0.5, 0))[: 1 if variant == "palette" else 2]:
            cond = EmotionCondition("label", weights=weights)
            a = pipe(ref, wave, cond, num_frames=2, steps=1, seed=1, guidance=Guidance())
            for ex in model.extras.values():
                ex.moe.global_gate.bias[3] += 20.0         # the gate now prefers "disgust"
            b = pipe(ref, wave, cond, num_frames=2, steps=1, seed=1, guidance=Guidance())
            for ex in model.extras.values():
                ex.moe.global_gate.bias[3] -= 20.0
            assert (not np.array_equal(a, b)) == must_change, (variant, palette, weights)
        forced = [r for r in calls if r is not None]
        assert (len(forced) == 0) == must_change            # the network's own g: nothing overwrites it
    assert _tiny_model().routing(torch.tensor([[1.0, 0, 0, 0, 0, 0]]), "label", palette=True) is not None


def test_training_mixes_experts_by_predicted_g_and_trains_g_by_kl():
    from moee_bench.moee_ref.data import Batch
    from moee_bench.moee_ref.train import Trainer

    for variant, forced in (("full", False),):
        cfg = with_variant(load_config("tiny"), variant)
        tr = Trainer(cfg, 2)
        tr.setup_optimizer()
        b, f, h = 2, cfg.video.frames, cfg.video.height
        hidden = tr.core.audio_encoder.config.hidden_size
        batch = Batch(frames=torch.rand(b, f, 3, h, h) * 2 - 1, ref=torch.rand(b, 3, h, h) * 2 - 1,
                      motion=torch.rand(b, 1, 3, h, h) * 2 - 1, audio=torch.randn(b, f, 10, hidden),
                      weights=torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0, 0]]), texts=["a", "b"],
                      emotion_audio=torch.randn(b, 20, tr.core.emotion_audio_encoder.dim),
                      loss_mask=torch.ones(b, f, 1, h, h), noisy=torch.zeros(b, dtype=torch.bool), modality="label")
        cond, _ = tr.conditions(batch, torch.Generator().manual_seed(0), drop=False)
        assert (cond.routing is not None) == forced
        loss, logs = tr.loss(batch, torch.Generator().manual_seed(0), drop=False)
        tr.core.set_reference(None, None)
        assert logs["gate"] > 0                              # KL(label weights || g)
        want = logs["latent"] + cfg.train.lambda_spatial * logs["spatial"] + cfg.moe.gate_loss_weight * logs["gate"]
        assert logs["total"] == pytest.approx(want, rel=1e-5)
    palette = _tiny_model("palette")
    assert torch.equal(palette.routing(batch.weights, "label")[1], torch.tensor([0, 0, 0.5, 0.5, 0, 0]))
    assert palette.routing(batch.weights, "text") is None     # text and audio carry no weights: predicted g


# ------------------------------------------------------------------------------------------- 2. masked noisy sampling
def _face_frames(shift_px: int, n: int = 4, size: int = 256) -> np.ndarray:
    """A real face (scikit-image's astronaut) that moves right by ``shift_px`` each frame."""
    from PIL import Image
    from skimage import data

    img = data.astronaut()
    crop = img[0:300, 80:380]                                          # the face, about 90 px wide at 512
    base = np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))
    pad = np.pad(base, ((0, 0), (n * shift_px, n * shift_px), (0, 0)), mode="edge")
    return np.stack([pad[:, n * shift_px - i * shift_px:n * shift_px - i * shift_px + size] for i in range(n)])


def test_mouth_mask_follows_a_moving_mouth():
    from moee_bench.bench.core.faces import FaceDetector
    from moee_bench.moee_ref.data import mouth_mask, mouth_tracks

    frames = _face_frames(8)
    lips, filled = mouth_tracks(frames)
    assert lips.shape == (4, 12, 2) and filled == 0
    cx = []
    for k in range(4):
        hole = (mouth_mask(lips[k], 256, 256)[0] == 0).nonzero().float()
        cx.append(float(hole[:, 1].mean()))
        cy = float(hole[:, 0].mean())
        face = FaceDetector().detect(frames[k])[0]
        mouth = face.landmarks5[3:].mean(0)                         # MTCNN's mouth corners agree on where it is
        assert abs(cx[-1] - mouth[0]) < 6 and abs(cy - mouth[1]) < 8
    assert np.allclose(np.diff(cx), 8.0, atol=2.0), cx              # the mask moves with the mouth, frame by frame


def _clip(cid: str, ident: str, weights, pixel: int, n: int = 8, mouth_x: float = 0.5):
    from moee_bench.moee_ref.data import ClipTensors

    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lips = np.stack([np.stack([mouth_x + 0.01 * t + 0.1 * np.cos(ang), 0.7 + 0.04 * np.sin(ang)], 1)
                     for t in range(n)]).astype(np.float32)
    frames = np.full((n, 64, 64, 3), pixel, np.uint8)
    return ClipTensors(cid, ident, frames, frames[0], torch.zeros(2 * n, 32), torch.tensor(weights, dtype=torch.float32),
                       cid, torch.zeros(10, 32), lips)


def test_noisy_samples_keep_the_condition_and_take_another_identitys_neutral_video():
    from moee_bench.moee_ref.data import WindowSampler

    happy, sad, neutral = (1.0, 0, 0, 0, 0, 0), (0, 1.0, 0, 0, 0, 0), (0.0,) * 6
    clips = [_clip("a_happy", "a", happy, 10), _clip("a_neutral", "a", neutral, 60), _clip("b_sad", "b", sad, 110),
             _clip("b_neutral", "b", neutral, 160)]
    by_pixel = {int(c.frames[0, 0, 0, 0]): c for c in clips}
    cfg = load_config("tiny")
    cfg.train.p_noisy = 0.9
    for source in ("neutral", "other"):
        cfg.train.noisy_source = source
        sampler = WindowSampler(clips, cfg, seed=0)
        seen = 0
        for _ in range(40):
            batch = sampler.sample(2, 2, modality="label")
            for k in range(2):
                frames_from = by_pixel[int(round((float(batch.frames[k, 0, 0, 0, 0]) + 1) * 127.5))]
                target = [c for c in clips if torch.equal(c.weights, batch.weights[k])]
                if bool(batch.noisy[k]):
                    seen += 1
                    assert float(batch.weights[k].sum()) > 0                # neutral targets are never noisy
                    assert all(t.identity != frames_from.identity for t in target)
                    assert not torch.equal(frames_from.weights, batch.weights[k])
                    if source == "neutral":
                        assert float(frames_from.weights.sum()) == 0   # never another emotion's face
                assert float(batch.loss_mask[k].min()) == 0               # mouth masked in every stage-2 sample
                m = batch.loss_mask[k, :, 0]
                assert not torch.equal(m[0], m[-1])                       # per frame: the mouth moved
        assert seen > 20
    with pytest.raises(ConfigError, match="no source clip"):
        cfg.train.noisy_source = "neutral"
        WindowSampler(clips[:1] + clips[2:3], cfg).sample(4, 2, modality="label")
    off = with_variant(cfg, "no-masked-noisy")
    batch = WindowSampler(clips, off, seed=0).sample(8, 2, modality="label")
    assert not bool(batch.noisy.any()) and float(batch.loss_mask.min()) == 1.0


# ------------------------------------------------------------------------------------------- 3. emotion2vec
def _fairseq_checkpoint(path: Path, state: dict) -> Path:
    """A checkpoint laid out like the official emotion2vec_base.pt: fairseq's dict with an OmegaConf
    config object (a stand-in class under omegaconf's module name), numpy scalars, the pre-training
    decoder and the EMA teacher beside the encoder's tensors under "model"."""
    saved = {k: sys.modules.get(k) for k in ("omegaconf", "omegaconf.dictconfig")}
    mod = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = content

        def __getstate__(self):
            return {"_content": self._content, "_metadata": None}

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    mod.DictConfig = DictConfig
    sys.modules.update({"omegaconf": types.ModuleType("omegaconf"), "omegaconf.dictconfig": mod})
    try:
        torch.save({"cfg": DictConfig({"model": {"_name": "data2vec_multi", "embed_dim": 32}}), "model": state,
                    "extra_state": {"best": np.float64(1.5), "meters": collections.defaultdict(list, {"x": [1]})},
                    "optimizer_history": [{"num_updates": 1}]}, path)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def test_emotion2vec_loads_the_official_checkpoint_format_strictly(tmp_path: Path):
    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.moee_ref.emotion2vec import PREFIX, TINY, Emotion2Vec, build_emotion2vec

    torch.manual_seed(0)
    ref = Emotion2Vec(TINY).eval()
    torch.nn.init.normal_(ref.modality_encoders["AUDIO"].extra_tokens)
    state = dict(ref.state_dict())
    extras = {PREFIX + "decoder.blocks.0.0.weight": torch.randn(4, 2, 7), PREFIX + "decoder.proj.weight": torch.randn(3, 3),
              "_ema": torch.randn(10)}
    _fairseq_checkpoint(tmp_path / "emotion2vec_base.pt", {**state, **extras})
    assert "omegaconf.dictconfig.DictConfig" in torch.serialization.get_unsafe_globals_in_checkpoint(
        str(tmp_path / "emotion2vec_base.pt"))
    w = WeightsOptions(str(tmp_path), allow_unverified=True)
    with pytest.warns(UserWarning, match="unverified"):
        enc = build_emotion2vec("emotion2vec", pretrained=True, weights=w)
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.allclose(enc(wave), ref(wave), atol=1e-5)
    assert enc.arch == TINY
    for bad, key in (({k: v for k, v in state.items() if not k.endswith("blocks.0.norm2.bias")}, "blocks.0.norm2.bias"),
                     ({**state, "blocks.0.attn.extra.weight": torch.zeros(1)}, "blocks.0.attn.extra.weight"),
                     ({**state, "blocks.0.mlp.fc1.bias": torch.zeros(3)}, "blocks.0.mlp.fc1.bias")):
        _fairseq_checkpoint(tmp_path / "emotion2vec_base.pt", bad)              # missing, unexpected, wrong shape
        with pytest.warns(UserWarning), pytest.raises(WeightsError, match=key):
            build_emotion2vec("emotion2vec", pretrained=True, weights=w)


def test_paper_config_asks_the_registry_for_emotion2vec_and_the_model_uses_it_for_audio():
    from moee_bench.moee_ref.emotion2vec import Emotion2Vec, emotion2vec_features
    from moee_bench.moee_ref.model import _check_pretrained_files

    asked: list[str] = []

    class Recorder:
        def resolve(self, name):
            asked.append(name)

    _check_pretrained_files(load_config("paper"), Recorder())
    assert "emotion2vec_base" in asked
    model = _tiny_model()
    assert isinstance(model.emotion_audio_encoder, Emotion2Vec)
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    feats = model.emotion_audio_features(wave, 25)
    assert feats.shape == (50, model.emotion_audio_encoder.dim)
    assert torch.equal(feats, emotion2vec_features(model.emotion_audio_encoder, wave, 25))


# ------------------------------------------------------------------------------------------- 4. perceptual loss
def test_perceptual_loss_is_a_vgg_feature_loss_not_the_lpips_metric():
    import lpips

    from moee_bench.moee_ref.losses import VGGFeatureLoss, build_perceptual, spatial_weight

    cfg = load_config("tiny")
    loss = build_perceptual(cfg)
    assert isinstance(loss, VGGFeatureLoss) and not isinstance(loss, lpips.LPIPS)
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.allclose(loss(x, x), torch.zeros(2))
    assert bool((loss(x, x.flip(0)) > 0).all())
    t = torch.tensor([0, 250, 999])
    assert torch.allclose(spatial_weight(t, 1000), torch.cos(t.float() * np.pi / 2000), atol=1e-7)


# ------------------------------------------------------------------------------------------- 5. ablation variants
def test_variant_names_agree_everywhere():
    from moee_bench.baselines.registry import available, method_class
    from moee_bench.moee_ref.variants import TABLE5_ROWS, VARIANTS
    from moee_bench.reports.paper_tables import published

    table = published()["ablation"]["rows"]
    assert [r["method"] for r in table] == [VARIANTS[v].method for v in TABLE5_ROWS]
    assert [r["label"] for r in table] == [VARIANTS[v].label for v in TABLE5_ROWS]
    registered = {name for name in available() if name.startswith("moee-ref")}
    assert registered == {v.method for v in VARIANTS.values()}
    for v in VARIANTS.values():
        cls = method_class(v.method)
        assert (cls.name, cls.variant) == (v.method, v.name)


def test_each_variant_is_a_config_switch_of_the_same_code():
    from moee_bench.moee_ref.variants import VARIANTS

    base = load_config("tiny").to_dict()
    for name, v in VARIANTS.items():
        d = with_variant(load_config("tiny"), name).to_dict()
        changed = {(sec, k) for sec in d if isinstance(d[sec], dict) for k in d[sec] if d[sec][k] != base[sec][k]}
        assert changed == set(v.switches) and d["variant"] == name
    with pytest.raises(ConfigError, match="variant 'no-moe' needs moe.experts = 1"):
        from_dict({"variant": "no-moe"})
    assert {n: _tiny_model(n).extras["down_blocks__0__attentions__0__transformer_blocks__0"].moe.n_experts
            for n in ("full", "no-moe")} == {"full": 6, "no-moe": 1}


def test_paper_tables_list_the_ablations_as_runnable_rows():
    from moee_bench.reports.paper_tables import render

    class EmptyStore:
        def runs(self):
            return []

    text = render(EmptyStore())
    for name in ("moee-ref:no-moe", "moee-ref:no-global-gate", "moee-ref:no-masked-noisy", "moee-ref:no-dhfev"):
        assert f"`{name}`" in text
    assert "--variant no-moe" in text and "training-data ablation" in text


# ------------------------------------------------------------------------------------------- 6. GPU path, on CPU
def test_random_init_generation_is_marked_and_runs_in_bf16(tmp_path: Path, write_clip):
    from moee_bench.baselines.base import GenerationRequest
    from moee_bench.baselines.registry import build_method
    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion

    clip = write_clip("c", n=4, size=64)
    ref = tmp_path / "ref.png"
    media.write_image(ref, media.read_frames(clip)[0])
    method = build_method("moee-ref:no-global-gate", {"random_init": "true", "config": "tiny", "precision": "bf16",
                                                      "steps": "1"})
    res = method.generate(GenerationRequest("c", ref, clip, tmp_path / "out.mp4", emotion=parse_emotion("happy"),
                                            num_frames=2))
    rec = res.normalisation
    assert rec["random_init"] is True and "not a trained model" in rec["weights"]
    assert rec["precision"] == "bf16" and rec["variant"] == "no-global-gate" and res.n_frames == 2


@pytest.mark.slow
def test_paper_config_random_init_generates_at_a_small_size(tmp_path: Path, write_clip):
    """The SD 1.5-sized paper config (random init, emotion2vec base, bf16 autocast) end to end on CPU at 64x64."""
    from moee_bench.baselines.base import GenerationRequest
    from moee_bench.baselines.registry import build_method
    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion

    text = (Path(__file__).resolve().parents[1] / "moee_ref" / "configs" / "paper.toml").read_text()
    text = text.replace("height = 512", "height = 64").replace("width = 512", "width = 64")
    text = text.replace("frames = 14", "frames = 2").replace("motion_frames = 2", "motion_frames = 1")
    cfg_path = tmp_path / "paper_small.toml"
    cfg_path.write_text(text)
    clip = write_clip("c", n=4, size=64)
    ref = tmp_path / "ref.png"
    media.write_image(ref, media.read_frames(clip)[0])
    method = build_method("moee-ref", {"random_init": "true", "config": str(cfg_path), "precision": "bf16", "steps": "1"})
    res = method.generate(GenerationRequest("c", ref, clip, tmp_path / "out.mp4", emotion=parse_emotion("happy"),
                                            num_frames=2))
    assert res.normalisation["random_init"] is True and res.n_frames == 2
