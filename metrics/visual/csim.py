"""CSIM: identity cosine similarity between the reference image and each generated frame (ArcFace).

Network: facexlib's ArcFace ``Backbone(num_layers=50, drop_ratio=0.6, mode='ir_se')`` (512-d, L2-
normalised), built on the CPU or the requested device ourselves because facexlib's
``init_recognition_model`` moves it to CUDA unconditionally; weights ``arcface_ir_se50`` from the
registry (facexlib's ``recognition_arcface_ir_se50.pth``), ``weights_only`` loading.
Faces: MTCNN (bundled weights) 5 landmarks -> similarity transform onto the standard ArcFace 112x112
template (insightface ``arcface_dst``; skimage ``SimilarityTransform`` least squares) -> ``cv2.warpAffine``
with a black border. Input: RGB ``(x / 255 - 0.5) / 0.5`` (the TreB1eN InsightFace_Pytorch convention
facexlib's weights come from; facexlib does not document it).
Value: mean over frames of ``cos(emb(reference), emb(frame))``; frames without a face are skipped and
counted (``csim_noface_frames``); a clip with no face at all is ``no_face``; a reference without a
face is ``no_face`` for the clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, load_into, load_state_dict
from moee_bench.metrics.core.base import ClipContext, Features, FrameMeanMetric, Param, VideoChunk
from moee_bench.metrics.core.precision import autocast, of_options
from moee_bench.bench.core.faces import FaceDetector
# imported inside the functions that use them (seconds to import, or optional): cv2, facexlib, skimage, torch

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
CROP = 112


def build_arcface(weights: WeightsOptions, device: str = "cpu"):
    """facexlib's ArcFace IR-SE50 with the registry's weights, on ``device``."""
    from facexlib.recognition.arcface_arch import Backbone

    resolved = weights.resolve("arcface_ir_se50")
    net = Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se")
    load_into(net, load_state_dict(resolved), what=f"ArcFace {resolved.path}")
    return net.eval().to(device), resolved


def alignment_matrix(landmarks5: np.ndarray) -> np.ndarray:
    """2x3 similarity transform taking the 5 landmarks onto the ArcFace template."""
    from skimage.transform import SimilarityTransform

    t = SimilarityTransform.from_estimate(np.asarray(landmarks5, np.float64), ARCFACE_TEMPLATE)
    return np.asarray(t.params[:2], np.float64)


def align_face(frame: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """(112, 112, 3) uint8 ArcFace crop of an (H, W, 3) uint8 RGB frame."""
    import cv2

    return cv2.warpAffine(np.ascontiguousarray(frame), alignment_matrix(landmarks5), (CROP, CROP), borderValue=0.0)


def embed(net, crops: np.ndarray, device: str = "cpu", precision: str = "fp32") -> np.ndarray:
    """(n, 112, 112, 3) uint8 crops -> (n, 512) float64 unit embeddings (network under ``precision``)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).contiguous().float().div(255.0).sub(0.5).div(0.5)
    with torch.no_grad(), autocast(precision, device):
        e = net(x.to(device))
    return e.double().cpu().numpy()


class _FramesExtractor:
    """ArcFace embeddings of the faces in every ``stride``-th frame of the generated video."""

    def __init__(self, m: "CSIM", ctx: ClipContext) -> None:
        self.m, self.ctx = m, ctx
        self.emb: list[np.ndarray] = []
        self.n = self.noface = 0

    def add(self, chunk: VideoChunk) -> None:
        idx = [i for i in range(len(chunk.frames)) if (chunk.start + i) % self.m.stride == 0]
        if not idx:
            return
        frames = chunk.frames[idx]
        faces = self.m.detector.detect(frames)
        self.n += len(frames)
        crops = [align_face(f, face.landmarks5) for f, face in zip(frames, faces) if face is not None]
        self.noface += len(frames) - len(crops)
        if crops:
            self.emb.append(embed(self.m.net, np.stack(crops), self.m.device, self.m.precision))

    def finish(self) -> Features:
        if not self.emb:
            raise ClipError(self.ctx.clip_id, f"no face found in any of the {self.n} checked frames", status="no_face")
        # the network computes in float32 (or bf16): storing its embeddings as float32 loses nothing
        return {"emb": np.concatenate(self.emb).astype(np.float32), "noface": np.array([self.noface, self.n], np.int64)}


class _RefExtractor:
    """The ArcFace embedding of the reference image."""

    def __init__(self, m: "CSIM", ctx: ClipContext) -> None:
        self.m, self.ctx = m, ctx

    def add(self, chunk: VideoChunk) -> None:
        raise TypeError("the reference part of CSIM reads no video")

    def finish(self) -> Features:
        m, ctx = self.m, self.ctx
        ref_face = m.detector.detect(ctx.ref_image)[0]
        if ref_face is None:
            raise ClipError(ctx.clip_id, "no face found in the reference image", status="no_face")
        emb = embed(m.net, align_face(ctx.ref_image, ref_face.landmarks5)[None], m.device, m.precision)[0]
        return {"emb": emb.astype(np.float32)}


class CSIM(FrameMeanMetric):
    name = "csim"
    reference = "ArcFace IR-SE50 (facexlib) cosine similarity, reference image vs frames"
    keys = ("csim",)
    higher_is_better = {"csim": True}
    needs_ref = True
    # the generated frames' embeddings and the reference's are cached apart: a new reference re-embeds one image
    parts = {"pred": ("pred",), "ref": ("ref",)}
    PARAMS = {"csim_stride": Param(int, 1, minimum=1, help="score every N-th frame")}

    def __init__(self, options: Any) -> None:
        self.device = options.device
        self.precision = of_options(options)
        self.stride = int(self.param_value(options, "csim_stride"))
        self.net, self.weights = build_arcface(options.weights, self.device)
        self.detector = FaceDetector(device=self.device)
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {"network": "facexlib ArcFace IR-SE50 (512-d, L2-normalised)", "weights_sha256": self.weights.sha256,
                "verified": self.weights.verified, "detector": self.detector.name,
                "alignment": "5-point similarity to the ArcFace 112x112 template, cv2.warpAffine, black border",
                "input": "RGB (x/255-0.5)/0.5", "reference": "the clip's reference image (else the first GT frame)",
                "aggregate": "mean over frames with a face", "frame_stride": self.stride,
                "precision": self.precision}

    def weight_files(self) -> list[ResolvedWeights]:
        return [self.weights]

    def part_extractor(self, ctx: ClipContext, part: str) -> _FramesExtractor | _RefExtractor:
        return _RefExtractor(self, ctx) if part == "ref" else _FramesExtractor(self, ctx)

    @classmethod
    def combine(cls, parts) -> Features:
        """Per-frame cosine similarity of the frames' unit embeddings with the reference's (float64)."""
        frames, ref = parts["pred"], parts["ref"]
        cos = np.asarray(frames["emb"], np.float64) @ np.asarray(ref["emb"], np.float64)
        return {"csim": cos, "noface": np.asarray(frames["noface"])}

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        out = super().update(ctx, feats)
        noface, n = (int(v) for v in feats["noface"])
        return {**out, "csim_noface_frames": noface, "csim_frames": n}
