"""Registered alternative classifiers (HSEmotion, Emotion-FAN) with random-initialised networks saved in their
checkpoint formats: safe loading, preprocessing parity with the reference pipelines, clear missing-weights errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import WeightsOptions, get_spec
from moee_bench.metrics.emotion.classifiers import (CLASSIFIERS, EmotionFAN, HSEmotion, build_classifier,
                                         build_frame_attention_net, resolve_package_weights)


def _crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_registry_names():
    assert set(CLASSIFIERS) == {"fer2013", "hsemotion", "emotion_fan"}
    with pytest.raises(KeyError, match="unknown emotion classifier"):
        build_classifier("deepface")
    assert get_spec("fer2013_tflite").packaged and get_spec("fer2013_tflite").format == "tflite"


def test_package_weights_hash_mismatch_refused(monkeypatch):
    from moee_bench.bench.core import weights as w

    spec = w.get_spec("fer2013_tflite")
    bad = w.WeightSpec(**{**spec.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(w.registry(), "fer2013_tflite", bad)
    with pytest.raises(WeightsError, match="sha256"):
        resolve_package_weights("fer2013_tflite")
    with pytest.warns(UserWarning):
        r = resolve_package_weights("fer2013_tflite", WeightsOptions(allow_unverified=True))
    assert not r.verified


def test_hsemotion_missing_weights_error_names_file_and_url(tmp_path, monkeypatch):
    pytest.importorskip("timm")     # without the [hsemotion] extra the error names the extra (tests/test_install.py)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv("MOEE_BENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsError) as e:
        build_classifier("hsemotion", WeightsOptions(str(tmp_path)))
    msg = str(e.value)
    assert "hsemotion_enet_b0_8_best_vgaf.safetensors" in msg and "enet_b0_8_best_vgaf.pt" in msg and str(tmp_path) in msg


def test_hsemotion_random_state_dict_safetensors_parity(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    ref = timm.create_model("tf_efficientnet_b0", pretrained=False, num_classes=8)
    ref.classifier = torch.nn.Sequential(torch.nn.Linear(1280, 8))     # the upstream head layout
    ref.eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()},
              str(tmp_path / "hsemotion_enet_b0_8_best_vgaf.safetensors"))
    with pytest.warns(UserWarning, match="unverified"):
        clf = build_classifier("hsemotion:enet_b0_8_best_vgaf", WeightsOptions(str(tmp_path), allow_unverified=True))
    assert clf.weights is not None and not clf.weights.verified
    crops = _crops(3, 224)
    got = clf.predict(crops)
    # reference: hsemotion's own preprocessing (PIL -> Resize -> ToTensor -> Normalize) and softmax
    tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                             transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    x = torch.stack([tf(Image.fromarray(c)) for c in crops])
    with torch.no_grad():
        want = torch.softmax(ref(x), dim=1).double().numpy()
    assert got.shape == (3, 8)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_hsemotion_refuses_a_pickled_model(tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnet_b0", pretrained=False, num_classes=8)
    # a whole pickled model under the registered name: the safetensors loader must refuse it
    torch.save(model, tmp_path / "hsemotion_enet_b0_8_best_vgaf.safetensors")
    with pytest.raises(WeightsError, match="cannot be loaded safely"), pytest.warns(UserWarning):
        build_classifier("hsemotion", WeightsOptions(str(tmp_path), allow_unverified=True))


def test_emotion_fan_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv("MOEE_BENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsError) as e:
        build_classifier("emotion_fan", WeightsOptions(str(tmp_path)))
    assert "self_relation-attention_61_84.3655" in str(e.value) and "evaluation_eat" in str(e.value)


def test_emotion_fan_upstream_checkpoint_format_and_attention_formula(tmp_path):
    torch.manual_seed(1)
    net = build_frame_attention_net(8)
    # upstream names: conv1, layer1..4, alpha.0, beta.0, pred_fc1, pred_fc2 (no fc); DataParallel 'module.' prefix
    names = set(net.state_dict())
    assert {"conv1.weight", "layer4.1.bn2.running_var", "alpha.0.weight", "beta.0.weight", "pred_fc2.weight"} <= names
    assert not any(n.startswith("fc.") for n in names)
    torch.save({"epoch": 61, "prec1": 84.3655, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}},
               tmp_path / "self_relation-attention_61_84.3655")
    with pytest.warns(UserWarning):
        clf = build_classifier("emotion_fan", WeightsOptions(str(tmp_path), allow_unverified=True))
    assert isinstance(clf, EmotionFAN) and clf.clip_level
    crops = _crops(4, 224, seed=2)
    got = clf.predict(crops)
    assert got.shape == (1, 8) and got.sum() == pytest.approx(1.0)
    # the paper's formula, step by step in numpy from the frame features and the head weights
    sd = {k: v.double().numpy() for k, v in net.state_dict().items()}
    with torch.no_grad():
        f = net.eval().frame_features(torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255)).double().numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    alpha = sig(f @ sd["alpha.0.weight"].T + sd["alpha.0.bias"])
    v = (alpha * f).sum(0) / alpha.sum()
    fc = np.concatenate([f, np.repeat(v[None], len(f), 0)], axis=1)
    beta = sig(fc @ sd["beta.0.weight"].T + sd["beta.0.bias"])
    pooled = (alpha * beta * fc).sum(0) / (alpha * beta).sum()
    logits = pooled @ sd["pred_fc2.weight"].T + sd["pred_fc2.bias"]
    want = np.exp(logits - logits.max())
    want /= want.sum()
    np.testing.assert_allclose(got[0], want, atol=1e-5)


def test_hsemotion_unknown_variant():
    with pytest.raises(ValueError, match="unknown HSEmotion variant"):
        HSEmotion(variant="enet_b9")
