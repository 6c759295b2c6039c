"""face-alignment's FAN (2DFAN-4) with its S3FD detector: FOMM's landmark pipeline for AKD, from the registry.

FOMM's ``pose-evaluation`` runs ``face_alignment.FaceAlignment(LandmarksType._2D, flip_input=False)``
and keeps the first detected face's 68 points. The package downloads its weights unchecked at
construction, so we build the same objects ourselves with the registry's files (``fan_2d4`` and
``s3fd_face_alignment``, hash-checked, ``weights_only``) and then call the package's own
``get_landmarks_from_image`` (face crops, heatmap decoding), so the numbers are the package's.
"""

from __future__ import annotations

import numpy as np

from moee_bench.bench.core.extras import require
from moee_bench.bench.core.weights import WeightsOptions, load_into, load_state_dict, must_fit
import warnings
# imported inside the functions that use them (seconds to import, or optional): face_alignment, torch


class FANLandmarks:
    """68 landmarks of the first face S3FD finds, as face-alignment computes them; None without a face."""

    name = "face-alignment 2DFAN-4 + S3FD (FOMM pose-evaluation, flip_input=False)"

    def __init__(self, weights: WeightsOptions, device: str = "cpu") -> None:
        import torch
        require("face_alignment", "fan")
        from face_alignment.api import FAN, FaceAlignment, LandmarksType
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        fan_w = weights.resolve("fan_2d4")
        det_w = weights.resolve("s3fd_face_alignment")
        net = FAN(4)
        load_into(net, load_state_dict(fan_w), what=f"FAN landmarks {fan_w.path}")
        # FaceAlignment.__init__ would download weights; the object is assembled with the same attributes
        fa = object.__new__(FaceAlignment)
        fa.device, fa.flip_input, fa.landmarks_type = device, False, LandmarksType.TWO_D
        fa.verbose, fa.dtype, fa.max_batch_size = False, torch.float32, 1
        with must_fit(f"face-alignment S3FD {det_w.path}"):
            fa.face_detector = SFDDetector(device, path_to_detector=str(det_w.path))
        fa.face_alignment_net = net.to(device).eval()
        self.fa = fa
        self.resolved = [fan_w, det_w]

    def __call__(self, frame: np.ndarray, boxes: list[np.ndarray] | None = None) -> np.ndarray | None:
        """(68, 2) float64 for an (H, W, 3) uint8 RGB frame; ``boxes`` (x1, y1, x2, y2[, score]) skip detection."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # "No faces were detected" is our None
            out = self.fa.get_landmarks_from_image(np.ascontiguousarray(frame), detected_faces=boxes)
        if not out:
            return None
        return np.asarray(out[0], np.float64)[:, :2]
