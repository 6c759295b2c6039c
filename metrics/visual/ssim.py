"""SSIM as scikit-image computes it with the Wang et al. (2004) arguments:
``structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255, channel_axis=-1)`` on uint8 RGB frames; per-frame values averaged over all frames."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np

from moee_bench.metrics.core.base import ClipContext, Features, FrameChunk, FrameMeanMetric
# imported inside the functions that use them (seconds to import, or optional): skimage, torch

SKIMAGE_ARGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255,
                "channel_axis": -1}


@lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssim")


def frame_ssim(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame SSIM of ``(n,H,W,3)`` uint8 arrays (scikit-image, Wang et al. arguments).

    Frames run on as many threads as torch uses (scipy's filters release the GIL; 1 under torchrun's
    default OMP_NUM_THREADS=1); each frame is the same scikit-image call, so the values do not change."""
    import torch
    from skimage.metrics import structural_similarity

    def one(i: int) -> float:
        return structural_similarity(gt[i], pred[i], **SKIMAGE_ARGS)

    workers = max(1, torch.get_num_threads())
    if workers == 1 or len(pred) < 2:
        return np.array([one(i) for i in range(len(pred))], np.float64)
    return np.array(list(_pool(workers).map(one, range(len(pred)))), np.float64)


class _Extractor:
    def __init__(self) -> None:
        self.vals: list[np.ndarray] = []

    def add(self, chunk: FrameChunk) -> None:
        self.vals.append(frame_ssim(chunk.pred, chunk.gt))

    def finish(self) -> Features:
        return {"ssim": np.concatenate(self.vals) if self.vals else np.zeros(0)}


class SSIM(FrameMeanMetric):
    name = "ssim"
    reference = "scikit-image structural_similarity with Wang et al. (2004) arguments"
    keys = ("ssim",)
    higher_is_better = {"ssim": True}
    needs_gt = True
    min_size = 11             # skimage's Gaussian window (sigma 1.5) is 11 pixels wide

    def __init__(self, options: Any = None) -> None:
        super().__init__()

    def config(self) -> dict[str, Any]:
        return {"impl": "skimage.metrics.structural_similarity", **SKIMAGE_ARGS, "colour": "RGB",
                "aggregate": "mean over frames"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor()
