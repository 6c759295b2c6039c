"""MoEE reference model: gating maths, Emotion-to-Latents, reference/temporal layers, guidance, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moee_bench.moee_ref.config import ConfigError, from_dict, load_config
from moee_bench.moee_ref.moe import MoELayer, gate_kl, onehot_routing


@pytest.fixture(scope="module")
def tiny():
    from moee_bench.moee_ref.model import MoEEModel

    torch.manual_seed(0)
    return MoEEModel(load_config("tiny")).eval()


def _conds(model, b: int = 1, f: int = 4, emotion: bool = True, seed: int = 0):
    from moee_bench.moee_ref.model import Conditions

    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    h, w = cfg.latent_size
    ref = torch.randn(b, cfg.vae.latent_channels, h, w, generator=g)
    audio = torch.randn(b, f, 2 * (2 * cfg.audio.window + 1), cfg.audio.dim, generator=g)
    z = torch.randn(b, cfg.emotion.num_queries, cfg.emotion.latent_dim, generator=g) if emotion else None
    noisy = torch.randn(b, f, cfg.vae.latent_channels, h, w, generator=g)
    return ref, Conditions(model.reference_tokens(ref), audio, z, onehot_routing(0, b), torch.ones(b)), noisy


# ---------------------------------------------------------------------------------------------- MoE layer
def test_gates_shapes_ranges_and_softmax():
    torch.manual_seed(0)
    layer = MoELayer(16, 8, heads=2)
    x, z = torch.randn(3, 10, 16), torch.randn(3, 4, 8)
    s, g = layer.gates(x, z)
    assert s.shape == (3, 10, 6) and g.shape == (3, 6)
    assert bool(((s > 0) & (s < 1)).all())
    assert torch.allclose(g.sum(-1), torch.ones(3), atol=1e-6)
    out, g2, s2 = layer(x, z)
    assert out.shape == x.shape and torch.equal(g, g2)


def test_double_gate_option_matches_explicit_sum():
    """The earlier build, kept as local_gate="double": X' = X + sum_i g_i * s_i * E_i(norm(X) * s_i)."""
    torch.manual_seed(1)
    layer = MoELayer(16, 8, heads=2, local_gate="double")
    x, z = torch.randn(2, 5, 16), torch.randn(2, 3, 8)
    out, g, s = layer(x, z)
    h = layer.norm(x)
    want = x.clone()
    for i, e in enumerate(layer.experts):
        want = want + g[:, i, None, None] * s[..., i:i + 1] * e(h * s[..., i:i + 1], encoder_hidden_states=z)
    assert torch.allclose(out, want, atol=1e-6)


def test_routing_single_compound_neutral():
    torch.manual_seed(2)
    layer = MoELayer(16, 8, heads=2)
    x, z = torch.randn(1, 5, 16), torch.randn(1, 3, 8)
    single, _, _ = layer(x, z, routing=onehot_routing(2))
    # only expert 2 contributes: perturbing expert 0 changes nothing
    with torch.no_grad():
        layer.experts[0].to_out[0].weight.add_(1.0)
    single2, _, _ = layer(x, z, routing=onehot_routing(2))
    assert torch.allclose(single, single2)
    mix = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0, 0.0]])
    a, _, _ = layer(x, z, routing=onehot_routing(2))
    b, _, _ = layer(x, z, routing=onehot_routing(3))
    c, _, _ = layer(x, z, routing=mix)
    assert torch.allclose(c - x, 0.5 * (a - x) + 0.5 * (b - x), atol=1e-6)     # compound = soft mix
    neutral, _, _ = layer(x, z, routing=mix, active=torch.zeros(1))
    assert torch.equal(neutral, x)                                            # neutral = residual only


def test_gate_kl_zero_at_target_and_positive_elsewhere():
    t = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0, 0.0]])
    assert float(gate_kl(t.clamp_min(1e-12) / t.clamp_min(1e-12).sum(), t)) == pytest.approx(0.0, abs=1e-6)
    assert float(gate_kl(torch.full((1, 6), 1 / 6), t)) == pytest.approx(np.log(3), rel=1e-5)
    assert float(gate_kl(torch.full((1, 6), 1 / 6), t, torch.zeros(1))) == 0.0


# ---------------------------------------------------------------------------------------------- Emotion-to-Latents
def test_emotion_to_latents_each_modality(tiny):
    from moee_bench.moee_ref.emotion_latents import MiniLMTextEncoder

    q, d = tiny.cfg.emotion.num_queries, tiny.cfg.emotion.latent_dim
    w = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0, 0], [0.0] * 6])
    z_label = tiny.emotion_latents("label", w, torch.ones(3, 1, dtype=torch.bool))
    assert z_label.shape == (3, q, d)
    assert not torch.allclose(z_label[0], z_label[1]) and not torch.allclose(z_label[1], z_label[2])
    enc = MiniLMTextEncoder()
    feats, mask = enc(["a person talking with a happy, smiling face", "a person talking with a sad face"])
    assert feats.shape == (2, 1, 384)
    # real MiniLM weights: the two descriptions are different sentences, not a constant embedding
    assert float(torch.nn.functional.cosine_similarity(feats[0, 0], feats[1, 0], dim=0)) < 0.95
    z_text = tiny.emotion_latents("text", feats, mask)
    assert z_text.shape == (2, q, d) and not torch.allclose(z_text[0], z_text[1])
    hidden = tiny.audio_encoder.config.hidden_size
    audio = torch.randn(2, 50, hidden)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 30:] = False
    z_audio = tiny.emotion_latents("audio", audio, mask)
    assert z_audio.shape == (2, q, d)
    # padding is ignored: changing masked-out features does not change the latent
    audio2 = audio.clone()
    audio2[1, 32:] += 5.0
    assert torch.allclose(tiny.emotion_latents("audio", audio2, mask)[1], z_audio[1], atol=1e-5)
    with pytest.raises(ValueError, match="unknown emotion modality"):
        tiny.emotion("smell", feats, mask)


# ---------------------------------------------------------------------------------------------- denoiser layers
@torch.no_grad()
def test_reference_injection_changes_output(tiny):
    ref, cond, noisy = _conds(tiny)
    t = torch.tensor([500])
    group = ref[:, None]
    tiny.set_reference(group, cond.ref_tokens)
    with_ref = tiny.denoise(noisy, t, cond)
    other = torch.randn_like(group)
    tiny.set_reference(other, cond.ref_tokens)
    with_other = tiny.denoise(noisy, t, cond)
    from moee_bench.moee_ref.model import Conditions

    dropped = Conditions(None, cond.audio, cond.emotion, cond.routing, cond.emotion_active)
    ignored = tiny.denoise(noisy, t, dropped)                 # reference dropped for one call only
    assert tiny.bank.mode == "read" and tiny.bank.store
    tiny.set_reference(None, None)
    without = tiny.denoise(noisy, t, cond)
    assert torch.equal(ignored, tiny.denoise(noisy, t, dropped))
    assert with_ref.shape == noisy.shape
    assert (with_ref - with_other).abs().max() > 1e-4        # the ReferenceNet's tokens reach the denoiser
    assert (with_ref - without).abs().max() > 1e-4


@torch.no_grad()
def test_temporal_layers_mix_frames(tiny):
    ref, cond, noisy = _conds(tiny)
    t = torch.tensor([300])
    tiny.set_reference(ref[:, None], cond.ref_tokens)
    base = tiny.denoise(noisy, t, cond)
    changed = noisy.clone()
    changed[:, 3] += 1.0                                      # perturb only the last frame
    out = tiny.denoise(changed, t, cond)
    tiny.set_reference(None, None)
    assert (out[:, 0] - base[:, 0]).abs().max() > 1e-5       # frame 0 sees frame 3 through temporal attention
    from moee_bench.moee_ref.unet import TemporalAttention

    layer = TemporalAttention(8, 2, 16, zero_init=False)
    x = torch.randn(3 * 2, 5, 8)                              # B=2 windows of 3 frames
    y = layer(x, 3)
    x2 = x.clone()
    x2[3:] += 1.0                                             # second window only
    assert torch.allclose(layer(x2, 3)[:3], y[:3])            # windows do not mix
    assert torch.equal(layer(x, 1), x)


@torch.no_grad()
def test_audio_and_emotion_conditions_matter(tiny):
    from moee_bench.moee_ref.model import Conditions

    ref, cond, noisy = _conds(tiny)
    t = torch.tensor([200])
    tiny.set_reference(ref[:, None], cond.ref_tokens)
    full = tiny.denoise(noisy, t, cond)
    no_audio = tiny.denoise(noisy, t, Conditions(cond.ref_tokens, torch.zeros_like(cond.audio), cond.emotion,
                                                 cond.routing, cond.emotion_active))
    other_expert = tiny.denoise(noisy, t, Conditions(cond.ref_tokens, cond.audio, cond.emotion, onehot_routing(4),
                                                     cond.emotion_active))
    neutral = tiny.denoise(noisy, t, Conditions(cond.ref_tokens, cond.audio, cond.emotion, cond.routing, torch.zeros(1)))
    no_emotion = tiny.denoise(noisy, t, Conditions(cond.ref_tokens, cond.audio, None))
    tiny.set_reference(None, None)
    assert (full - no_audio).abs().max() > 1e-4
    assert (full - other_expert).abs().max() > 1e-4
    assert torch.allclose(neutral, no_emotion, atol=1e-6)      # neutral == the no-emotion branch
    assert len(tiny.gate_outputs()) == 0                        # the last call had no MoE


def test_guidance_combination():
    from moee_bench.moee_ref.pipeline import Guidance, combine_guidance

    e0, er, era, erae = (torch.full((2,), v) for v in (0.0, 1.0, 3.0, 6.0))
    assert torch.equal(combine_guidance(e0, er, era, erae, Guidance()), erae)
    got = combine_guidance(e0, er, era, erae, Guidance(2.0, 1.5, 3.0))
    assert torch.allclose(got, torch.full((2,), 0 + 2 * 1 + 1.5 * 2 + 3 * 3.0))
    assert Guidance().trivial and not Guidance(emotion=2.0).trivial


def test_stage_parameters_partition(tiny):
    s1 = {id(p) for p in tiny.stage_parameters(1)}
    s2 = {id(p) for p in tiny.stage_parameters(2)}
    assert s1 and s2 and not (s1 & s2)
    assert {id(p) for p in tiny.emotion.parameters()} <= s2
    assert {id(p) for p in tiny.reference_net.parameters()} <= s1
    frozen = {id(p) for p in list(tiny.vae.parameters()) + list(tiny.audio_encoder.parameters())
              + list(tiny.emotion_audio_encoder.parameters())}
    assert not (frozen & (s1 | s2))


# ---------------------------------------------------------------------------------------------- config, weights, checkpoints
def test_config_refuses_unknown_keys_and_bad_values(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown keys"):
        from_dict({"unet": {"blokc_out_channels": [1]}})
    with pytest.raises(ConfigError, match="one expert per basic emotion"):
        from_dict({"moe": {"experts": 4}})
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_config(tmp_path / "nope.toml")
    paper = load_config("paper")
    assert paper.unet.block_out_channels == [320, 640, 1280, 1280] and paper.video.height == 512


def test_paper_config_without_weights_names_the_file(tmp_path: Path):
    from moee_bench.bench.core.errors import WeightsError
    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.moee_ref.model import MoEEModel

    with pytest.raises(WeightsError) as e:
        MoEEModel(load_config("paper"), WeightsOptions(str(tmp_path)))
    msg = str(e.value)
    assert "sd15-unet.safetensors" in msg and str(tmp_path) in msg and "huggingface.co" in msg


def test_checkpoint_round_trip_and_tamper(tmp_path: Path, tiny):
    from moee_bench.moee_ref.checkpoint import CheckpointError, load_model_weights, save_checkpoint
    from moee_bench.moee_ref.model import MoEEModel

    opt = torch.optim.AdamW(tiny.stage_parameters(2), lr=1e-3)
    loss = sum(p.square().sum() for p in tiny.stage_parameters(2))
    loss.backward()
    opt.step()
    opt.zero_grad()
    ck = save_checkpoint(tmp_path, 5, tiny, opt, {"stage": 2, "config": tiny.cfg.to_dict()})
    fresh = MoEEModel(load_config("tiny"))
    load_model_weights(fresh, ck)
    a, b = tiny.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the optimizer state comes back equal
    from moee_bench.moee_ref.checkpoint import load_optimizer

    opt2 = torch.optim.AdamW(fresh.stage_parameters(2), lr=1e-3)
    load_optimizer(opt2, ck)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    # a plain state dict loads with weights_only=True
    pt_dir = tmp_path / "pt"
    pt_dir.mkdir()
    torch.save(tiny.state_dict(), pt_dir / "model.pt")
    fresh2 = MoEEModel(load_config("tiny"))
    load_model_weights(fresh2, pt_dir)
    assert torch.equal(fresh2.state_dict()["ref_proj.weight"], a["ref_proj.weight"])
    # tampering is refused with a message naming the file
    raw = bytearray((ck / "model.safetensors").read_bytes())
    raw[-3] ^= 0xFF
    (ck / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="model.safetensors has sha256"):
        load_model_weights(fresh, ck)


def test_audio_windows():
    from moee_bench.moee_ref.audio import frame_windows

    feats = torch.arange(20, dtype=torch.float32)[:, None]      # 10 frames x 2 features
    w = frame_windows(feats, [0, 5, 9], window=1)
    assert w.shape == (3, 6, 1)
    assert w[1, :, 0].tolist() == [8, 9, 10, 11, 12, 13]         # frames 4, 5, 6
    assert w[0, :, 0].tolist() == [0, 1, 0, 1, 2, 3]             # clamped at the start
    assert w[2, :, 0].tolist() == [16, 17, 18, 19, 18, 19]       # clamped at the end


def test_mouth_mask_and_loss_mask():
    from moee_bench.moee_ref.data import mouth_mask
    from moee_bench.moee_ref.losses import latent_mask, spatial_weight

    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)          # an outer-lip ellipse, corners at 0 and 6
    lips = np.stack([0.5 + 0.1 * np.cos(ang), 0.7 + 0.04 * np.sin(ang)], 1)
    m = mouth_mask(lips, 100, 100)
    assert m.shape == (1, 100, 100) and m[0, 70, 50] == 0 and m[0, 70, 30] == 1 and m[0, 40, 50] == 1
    assert m[0, 70, 38] == 0                                     # grown by MOUTH_PAD x the 20 px mouth width
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 8:12, 4:10] = 0
    lat = latent_mask(mask, (4, 4))
    assert lat[0, 0, 2, 1] == 0 and lat[0, 0, 2, 2] == 0 and lat[0, 0, 0, 0] == 1
    w = spatial_weight(torch.tensor([0, 500, 1000]), 1000)
    assert torch.allclose(w, torch.tensor([1.0, float(np.cos(np.pi / 4)), 0.0]), atol=1e-6)


def test_t5_text_encoder_loads_registry_files(tmp_path: Path):
    """The paper's T5 path with a tiny random T5 saved as the registry's safetensors file + tokenizer.json."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5Config, T5EncoderModel

    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.moee_ref.emotion_latents import T5TextEncoder

    words = ["<pad>", "</s>", "<unk>", "a", "happy", "sad", "face"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "t5-base-tokenizer.json"))
    torch.manual_seed(0)
    ref = T5EncoderModel(T5Config(vocab_size=len(words), d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4,
                                  is_encoder_decoder=False)).eval()
    sd = {k: v.contiguous() for k, v in ref.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(sd, str(tmp_path / "t5-base.safetensors"))
    with pytest.warns(UserWarning, match="unverified"):
        enc = T5TextEncoder(WeightsOptions(str(tmp_path), allow_unverified=True))
    feats, mask = enc(["a happy face", "sad"])
    assert enc.dim == 16 and feats.shape == (2, 3, 16)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    with torch.no_grad():
        want = ref(input_ids=torch.tensor([[3, 4, 6]])).last_hidden_state
    assert torch.allclose(feats[0], want[0], atol=1e-6)


def test_wav2vec2_registry_checkpoint_key_mapping(tmp_path: Path):
    """A Wav2Vec2ForCTC-format checkpoint (``wav2vec2.`` prefix, CTC head) loads into the audio encoder."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from moee_bench.bench.core.weights import WeightsOptions
    from moee_bench.moee_ref.audio import build_wav2vec2

    torch.manual_seed(0)
    ctc = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32)).eval()
    save_file({k: v.contiguous() for k, v in ctc.state_dict().items()}, str(tmp_path / "wav2vec2-base-960h.safetensors"))
    cfg = load_config("paper")
    with pytest.warns(UserWarning, match="unverified"):
        enc = build_wav2vec2(cfg, WeightsOptions(str(tmp_path), allow_unverified=True)).eval()
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.allclose(enc(wave).last_hidden_state, ctc.wav2vec2(wave).last_hidden_state, atol=1e-5)


def test_gate_routing_table(tiny):
    from moee_bench.moee_ref.diagnostics import gate_routing, routing_summary

    table = gate_routing(tiny)
    assert table.shape == (6, 6) and torch.allclose(table.sum(1), torch.ones(6), atol=1e-5)
    # forcing the global gate's bias towards expert 3 shows up in every row
    with torch.no_grad():
        saved = [ex.moe.global_gate.bias.clone() for ex in tiny.extras.values()]
        for ex in tiny.extras.values():
            ex.moe.global_gate.bias[3] += 50.0
        biased = gate_routing(tiny)
        for ex, b in zip(tiny.extras.values(), saved):
            ex.moe.global_gate.bias.copy_(b)
    assert bool((biased.argmax(1) == 3).all())
    assert routing_summary(biased).startswith("predicted gate routes 1/6")


def test_gradient_checkpointing_gives_the_same_gradients():
    """Diffusers' block checkpointing re-runs our hooked layers in backward; gradients must not change."""
    from moee_bench.moee_ref.model import MoEEModel

    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = MoEEModel(load_config("tiny"))
        model.train()
        if ckpt:
            model.denoiser.enable_gradient_checkpointing()
            model.reference_net.enable_gradient_checkpointing()
        ref, cond, noisy = _conds(model, seed=3)
        model.set_reference(ref[:, None], cond.ref_tokens)
        out = model.denoise(noisy, torch.tensor([400]), cond)
        out.square().mean().backward()                 # the bank must still hold the reference here
        model.set_reference(None, None)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    a, b = grads
    assert a.keys() == b.keys() and len(a) > 100
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
