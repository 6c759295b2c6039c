"""PSNR on uint8 RGB frames, data_range 255.

Default (``psnr``): per-frame PSNR averaged over the frames of a clip, then over clips
(each clip weighted by its frame count, i.e. the mean over all frames). A frame with MSE 0
is capped at 100 dB (JunyaoHu/DisCo convention) and counted in ``psnr_capped_frames``.
Option ``psnr_mode=dataset``: one PSNR from the total squared error over all pixels of all
frames (torchmetrics ``dim=None``).  Both are reported; the headline is named in the protocol.
Per-frame values match ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=255)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.core.base import ClipContext, Features, FrameChunk, MeanState, Metric, Param, State

CAP_DB = 100.0


def frame_mse(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean squared error per frame of ``(n,H,W,3)`` uint8 arrays, in float64."""
    d = pred.astype(np.float64) - gt.astype(np.float64)
    return (d * d).reshape(len(d), -1).mean(axis=1)


def psnr_from_mse(mse: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    with np.errstate(divide="ignore"):
        v = 10.0 * np.log10((data_range ** 2) / mse)
    return np.where(mse > 0, np.minimum(v, CAP_DB), CAP_DB)


class _Extractor:
    def __init__(self) -> None:
        self.mse: list[np.ndarray] = []
        self.npix = 0

    def add(self, chunk: FrameChunk) -> None:
        self.mse.append(frame_mse(chunk.pred, chunk.gt))
        self.npix = int(np.prod(chunk.pred.shape[1:]))

    def finish(self) -> Features:
        return {"mse": np.concatenate(self.mse) if self.mse else np.zeros(0), "npix": np.array(self.npix)}


class PSNR(Metric):
    name = "psnr"
    reference = "scikit-image peak_signal_noise_ratio (data_range 255), mean of per-frame values"
    keys = ("psnr", "psnr_dataset")
    higher_is_better = {"psnr": True, "psnr_dataset": True}
    needs_gt = True
    states = {"frames": State(MeanState), "sse": State(float), "n_values": State(int), "capped": State(int)}
    PARAMS = {"psnr_mode": Param(str, "frame", ("frame", "dataset"), help="frame: mean of per-frame PSNR; dataset: "
                                 "one PSNR of the pooled MSE")}

    def __init__(self, options: Any = None) -> None:
        self.mode = str(self.param_value(options, "psnr_mode"))
        super().__init__()


    def config(self) -> dict[str, Any]:
        return {"data_range": 255, "colour": "RGB", "cap_db": CAP_DB}

    def protocol(self) -> dict[str, Any]:
        return {"metric": "psnr", **self.config(), "headline": "mean of per-frame PSNR" if self.mode == "frame"
                else "dataset-level PSNR from total MSE", "also_reported": "psnr_dataset" if self.mode == "frame" else "psnr"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor()

    def update(self, ctx: ClipContext, feats: Features) -> dict[str, Any]:
        mse = np.asarray(feats["mse"], np.float64)
        if len(mse) == 0:
            raise ClipError(ctx.clip_id, "no frame pairs to compare", status="too_short")
        per = psnr_from_mse(mse)
        for v in per:
            self.frames.add(float(v))
        npix = int(feats["npix"])
        self.sse += float(mse.sum()) * npix
        self.n_values += npix * len(mse)
        self.capped += int((mse == 0).sum())
        return {"psnr": float(per.mean()), "psnr_nframes": len(per)}   # the clip's weight in the frame mean

    def compute(self) -> dict[str, Any]:
        if not self.frames.count:
            return {"psnr": None, "psnr_reason": "no scored frames", "psnr_dataset": None}
        ds = float(psnr_from_mse(np.array([self.sse / self.n_values]))[0])
        frame_mean = self.frames.mean()
        head, other = (frame_mean, ds) if self.mode == "frame" else (ds, frame_mean)
        return {"psnr": head, "psnr_dataset" if self.mode == "frame" else "psnr_frame_mean": other,
                "psnr_capped_frames": self.capped, "psnr_n_frames": self.frames.count}
