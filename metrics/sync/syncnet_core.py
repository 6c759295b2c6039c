"""SyncNet offset / confidence / distance, computed as ``syncnet_python.SyncNetInstance.evaluate`` does.

The network is the package's own ``syncnet_python.SyncNetModel.S`` and the MFCCs come from
``python_speech_features.mfcc`` (the library the reference calls). What we write ourselves is the
offset search: instead of the reference's Python loop over windows (``calc_pdist``) all 31 offsets
of all windows are one tensor operation (``unfold`` over the zero-padded audio features), and the
5-frame video windows / 20-column MFCC windows are built as strided views (no per-window copies).

Protocol (anchors §1.1): BGR uint8 224x224 frames as float 0..255; 16 kHz int16 audio;
``min_length = min(T, floor(n_samples / 640))``; ``N = min_length - 5`` windows; vshift 15;
Sync-D = min over offsets of the mean distance, Sync-C = median - min, offset = vshift - argmin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import python_speech_features
import torch

from moee_bench.bench.core.weights import load_into
from moee_bench.metrics.core.precision import autocast
from moee_bench.metrics.sync.syncnet_fast import FastSyncNet
# imported inside the functions that use them (seconds to import, or optional): syncnet_python

VSHIFT = 15
SAMPLES_PER_FRAME = 640  # 16000 / 25


@dataclass
class SyncResult:
    """One scored crop clip."""

    offset: int
    conf: float
    dist: float
    mdist: np.ndarray       # (2*vshift+1,) mean distance per offset index; offset = vshift - index
    n_windows: int

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "conf": self.conf, "dist": self.dist, "n_windows": self.n_windows}


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] -> int16 as ffmpeg's swresample (flt -> s16: round(x * 32768), clipped)."""
    return np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc(audio_int16: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """MFCC (13, n) with python_speech_features defaults, exactly as the reference computes it."""
    return np.asarray(python_speech_features.mfcc(audio_int16, sample_rate), np.float64).T


def n_windows(n_frames: int, n_samples: int) -> int:
    """Number of 5-frame windows the reference scores (one fewer than fit; kept for parity)."""
    return min(n_frames, n_samples // SAMPLES_PER_FRAME) - 5


def offset_distances(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """Distances (N, 2*vshift+1) between each video feature and the audio features at all offsets, in one op.

    Same as ``calc_pdist`` of the reference: audio features zero-padded by ``vshift`` rows at both ends,
    ``pairwise_distance`` (p=2, eps=1e-6 added to the difference)."""
    padded = torch.nn.functional.pad(cc_feat, (0, 0, vshift, vshift))
    win = padded.unfold(0, 2 * vshift + 1, 1).transpose(1, 2)       # (N, 31, D)
    return torch.linalg.vector_norm(im_feat[:, None, :] - win + 1e-6, dim=-1)


def offset_distances_loop(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """The reference's loop (``syncnet_python.SyncNetInstance.calc_pdist``), stacked to (N, 31); for tests."""
    from syncnet_python.SyncNetInstance import calc_pdist

    return torch.stack(calc_pdist(im_feat, cc_feat, vshift=vshift), 0)


def summarise(dists: torch.Tensor, vshift: int = VSHIFT) -> SyncResult:
    """Offset, confidence and min distance from the (N, 31) distance matrix (torch.median: lower middle)."""
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    return SyncResult(offset=int(vshift - minidx), conf=float(conf), dist=float(minval),
                      mdist=mdist.double().numpy(), n_windows=int(dists.shape[0]))


class SyncNetScorer:
    """Scores a 224x224 BGR crop clip against 16 kHz audio with a SyncNet ``S`` network."""

    def __init__(self, net: torch.nn.Module, *, device: str = "cpu", batch_size: int = 32, vshift: int = VSHIFT,
                 fast: bool = True, precision: str = "fp32"):
        self.net = net.to(device).eval()
        self.fast = None
        if fast:
            self.fast = FastSyncNet(self.net).to(device)
        self.device = device
        self.batch_size = batch_size
        self.vshift = vshift
        self.precision = precision     # moee_bench.metrics.core.precision: bf16 runs the network under autocast

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], **kw: Any) -> "SyncNetScorer":
        """Build ``syncnet_python.SyncNetModel.S`` and load a state dict into it."""
        from syncnet_python.SyncNetModel import S

        net = S()
        load_into(net, state, what="SyncNet (syncnet_v2)")
        return cls(net, **kw)

    @torch.inference_mode()
    def features(self, frames_bgr: np.ndarray, audio_int16: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio features (N, 1024) each; ``frames_bgr`` is (T, 224, 224, 3) uint8."""
        n = n_windows(len(frames_bgr), len(audio_int16))
        if n <= 0:
            raise ValueError(f"too short: {len(frames_bgr)} frames, {len(audio_int16)} samples give {n} windows")
        video = torch.from_numpy(np.ascontiguousarray(frames_bgr[: n + 4])).float()  # (T, H, W, 3)
        cc = torch.from_numpy(mfcc(audio_int16)).float()  # (13, M)
        net = self.fast if self.fast is not None else self.net
        lip, aud = [], []
        for i in range(0, n, self.batch_size):
            j = min(n, i + self.batch_size)
            if self.fast is not None:   # (b, 15, H, W): the 5 frames of each window stacked frame-major
                v = torch.cat([video[i + k: j + k] for k in range(5)], dim=-1).permute(0, 3, 1, 2)
            else:                       # (b, 3, 5, H, W) as the reference builds it
                v = video.unfold(0, 5, 1)[i:j].permute(0, 3, 4, 1, 2).contiguous()
            lip.append(net.forward_lip(v.to(self.device)).cpu())
            a = cc[:, 4 * i: 4 * (j - 1) + 20].unfold(1, 20, 4)    # (13, b, 20)
            a = a.permute(1, 0, 2).unsqueeze(1).contiguous().to(self.device)
            aud.append(net.forward_aud(a).cpu())
        return torch.cat(lip, 0), torch.cat(aud, 0)

    def distances(self, frames_bgr: np.ndarray, audio_int16: np.ndarray) -> torch.Tensor:
        """The (N, 2*vshift+1) window-by-offset distance matrix of one crop clip."""
        with autocast(self.precision, self.device):
            im, cc = self.features(frames_bgr, audio_int16)
        return offset_distances(im.float(), cc.float(), self.vshift)

    def score(self, frames_bgr: np.ndarray, audio_int16: np.ndarray) -> SyncResult:
        """Offset, Sync-C (conf) and Sync-D (dist) of one crop clip."""
        return summarise(self.distances(frames_bgr, audio_int16), self.vshift)
