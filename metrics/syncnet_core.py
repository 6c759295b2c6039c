"""SyncNet scoring with the numbers of ``syncnet_python.SyncNetInstance.evaluate``, vectorised.

Same network (``syncnet_python.SyncNetModel.S``), same MFCC (``python_speech_features.mfcc`` on
int16 16 kHz samples), same windows (5 frames / 20 MFCC columns, ``min_length - 5`` of them), same
distances (``pairwise_distance`` with eps 1e-6 against zero-padded audio features), same
aggregation (mean over windows, min and median over the 2*vshift+1 offsets). What is ours: all
offsets are scored in one tensor operation (``unfold`` over the padded audio features) instead of
a Python loop per frame, and windows are batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

VSHIFT = 15
FRAMES_PER_WINDOW = 5
SAMPLES_PER_FRAME = 640        # 16000 / 25


@dataclass(frozen=True)
class SyncResult:
    offset: int
    conf: float
    dist: float
    n_windows: int
    mdist: np.ndarray          # mean distance per offset index (2*vshift+1)
    dists: np.ndarray          # (n_windows, 2*vshift+1) per-window distances


def load_syncnet(state_dict: dict | None = None, device: str = "cpu") -> torch.nn.Module:
    """``syncnet_python``'s ``S`` network, optionally with a state dict."""
    from syncnet_python.SyncNetModel import S

    net = S(num_layers_in_fc_layers=1024)
    if state_dict is not None:
        net.load_state_dict(state_dict)
    return net.eval().to(device)


def mfcc_columns(audio_int16: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """(13, M) MFCC matrix as the reference computes it (library defaults, 100 frames/s)."""
    import python_speech_features

    return np.asarray(python_speech_features.mfcc(audio_int16, sample_rate), np.float64).T


def offset_distances(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(N, 2*vshift+1) distances between each video feature and the audio features around it."""
    padded = torch.nn.functional.pad(cc_feat, (0, 0, vshift, vshift))
    windows = padded.unfold(0, 2 * vshift + 1, 1).permute(0, 2, 1)          # (N, 2v+1, D)
    return torch.nn.functional.pairwise_distance(im_feat[:, None, :].expand_as(windows), windows)


def score(net: torch.nn.Module, frames_bgr: np.ndarray, audio_int16: np.ndarray, *, vshift: int = VSHIFT,
          batch: int = 20, device: str = "cpu") -> SyncResult:
    """Sync offset, confidence (Sync-C) and min distance (Sync-D) of 224x224 BGR frames and int16 16 kHz audio."""
    n_frames = len(frames_bgr)
    min_length = min(n_frames, math.floor(len(audio_int16) / SAMPLES_PER_FRAME))
    last = min_length - FRAMES_PER_WINDOW
    if last < 1:
        raise ValueError(f"too short for SyncNet: {n_frames} frames and {len(audio_int16) / 16000:.2f} s of audio "
                         f"give {max(last, 0)} windows")
    video = torch.from_numpy(np.ascontiguousarray(frames_bgr[:min_length], dtype=np.float32))   # T,H,W,3
    video = video.permute(3, 0, 1, 2)                                                         # 3,T,H,W
    cc = torch.from_numpy(mfcc_columns(audio_int16).astype(np.float32))                       # 13,M
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for s in range(0, last, batch):
            idx = range(s, min(last, s + batch))
            vb = torch.stack([video[:, i:i + FRAMES_PER_WINDOW] for i in idx]).to(device)
            ab = torch.stack([cc[None, :, 4 * i:4 * i + 20] for i in idx]).to(device)
            im_feat.append(net.forward_lip(vb).cpu())
            cc_feat.append(net.forward_aud(ab).cpu())
    dists = offset_distances(torch.cat(im_feat), torch.cat(cc_feat), vshift)
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    return SyncResult(int(vshift - minidx), float(conf), float(minval), last, mdist.double().numpy(),
                      dists.double().numpy())


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 as ffmpeg's s16 conversion does (scale 32768, round, clip)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
