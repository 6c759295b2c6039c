"""Face tracks and 224x224 SyncNet crops for uncropped videos (joonson ``run_pipeline.py`` / syncnet-python 0.2.3).

Detection: S3FD from ``syncnet_python.detectors.s3fd`` (weights ``sfd_face`` from the registry), frame
scale 0.25, confidence 0.9 — or facexlib RetinaFace (``detector="retinaface"``) as the named alternative.
Scene cuts: PySceneDetect's ``ContentDetector`` (default threshold) fed our decoded frames directly.
Tracking (our code, same rules as the reference): greedy, a detection joins the track if it is at most
25 frames after the last one and has IoU > 0.5 with it; tracks need more than ``min_track`` detections;
boxes are linearly interpolated over gaps; mean box side must exceed ``min_face_size``.
Crop: size/centre median-filtered (kernel 13), grey-110 padding, crop scale 0.4, resized to 224x224.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import signal
from scipy.interpolate import interp1d

from moee_bench.bench.core.weights import load_into

DEFAULT_MIN_TRACK = 25


@dataclass
class Track:
    frames: np.ndarray   # (L,) frame indices
    boxes: np.ndarray    # (L, 4) x1 y1 x2 y2


class S3FDDetector:
    """S3FD on RGB frames, as the reference calls it (``detect_faces(rgb, conf_th=0.9, scales=[0.25])``)."""

    def __init__(self, state_dict: dict, device: str = "cpu", scale: float = 0.25, conf_th: float = 0.9):
        from syncnet_python.detectors.s3fd import S3FD
        from syncnet_python.detectors.s3fd.nets import S3FDNet

        net = S3FDNet(device=device)
        load_into(net, state_dict, what="S3FD face detector (sfd_face)")
        self.det = S3FD(net.eval(), device=device)
        self.scale, self.conf_th = scale, conf_th

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        b = self.det.detect_faces(rgb, conf_th=self.conf_th, scales=[self.scale])
        return np.asarray(b, np.float64).reshape(-1, 5)


class RetinaFaceDetector:
    """facexlib RetinaFace (resnet50) on RGB frames; boxes with score >= ``conf_th``."""

    def __init__(self, weights_path: str, device: str = "cpu", conf_th: float = 0.9):
        import torch
        from facexlib.detection.retinaface import RetinaFace

        self.net = RetinaFace(network_name="resnet50", half=False, device=torch.device(device))
        sd = torch.load(weights_path, map_location=device, weights_only=True)
        sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}  # as facexlib's loader does
        load_into(self.net, sd, what=f"RetinaFace {weights_path}")
        self.net.eval()
        self._torch = torch
        self.conf_th = conf_th

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            b = self.net.detect_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self.conf_th)
        return np.asarray(b, np.float64)[:, :5].reshape(-1, 5) if len(b) else np.zeros((0, 5))


def scene_cuts(frames_rgb: list[np.ndarray]) -> list[tuple[int, int]]:
    """Scenes ``[start, end)`` from PySceneDetect's ContentDetector (default threshold) on the frames."""
    from scenedetect.detectors import ContentDetector

    det = ContentDetector()
    cuts = []
    for i, f in enumerate(frames_rgb):
        cuts += det.process_frame(i, cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    bounds = [0] + sorted(int(c) for c in cuts if 0 < int(c) < len(frames_rgb)) + [len(frames_rgb)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-8)


def track_faces(dets: list[np.ndarray], start: int, *, min_track: int, num_failed_det: int = 25,
                min_face_size: float = 100.0) -> list[Track]:
    """Greedy IoU tracks over one scene's detections (``dets[i]`` = boxes of frame ``start + i``)."""
    pool = [[(start + i, d[:4]) for d in fr] for i, fr in enumerate(dets)]
    tracks: list[Track] = []
    while True:
        t: list[tuple[int, np.ndarray]] = []
        for faces in pool:
            for f in list(faces):
                if not t or (f[0] - t[-1][0] <= num_failed_det and _iou(f[1], t[-1][1]) > 0.5):
                    t.append(f)
                    faces.remove(f)
                    break
        if not t:
            return tracks
        if len(t) > min_track:
            fr = np.array([x[0] for x in t])
            bb = np.array([x[1] for x in t])
            full = np.arange(fr[0], fr[-1] + 1)
            bi = np.stack([interp1d(fr, bb[:, k])(full) for k in range(4)], 1)
            if max(np.mean(bi[:, 2] - bi[:, 0]), np.mean(bi[:, 3] - bi[:, 1])) > min_face_size:
                tracks.append(Track(full, bi))


def crop_track(frames_rgb: list[np.ndarray], track: Track, crop_scale: float = 0.4) -> np.ndarray:
    """224x224 BGR crops (L, 224, 224, 3) of one track, as the reference's ``_crop`` makes them."""
    b = track.boxes
    s = signal.medfilt(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2, 13)
    x = signal.medfilt((b[:, 0] + b[:, 2]) / 2, 13)
    y = signal.medfilt((b[:, 1] + b[:, 3]) / 2, 13)
    out = []
    for i, fi in enumerate(track.frames):
        img = cv2.cvtColor(frames_rgb[fi], cv2.COLOR_RGB2BGR)
        pad = int(s[i] * (1 + 2 * crop_scale))
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
        my, mx = y[i] + pad, x[i] + pad
        crop = img[int(my - s[i]): int(my + s[i] * (1 + 2 * crop_scale)),
                   int(mx - s[i] * (1 + crop_scale)): int(mx + s[i] * (1 + crop_scale))]
        out.append(cv2.resize(crop, (224, 224)))
    return np.stack(out)
