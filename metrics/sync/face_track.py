"""Face tracks and 224x224 SyncNet crops for uncropped videos (joonson ``run_pipeline.py`` / syncnet-python 0.2.3).

Detection: S3FD from ``syncnet_python.detectors.s3fd`` (weights ``sfd_face`` from the registry), frame
scale 0.25, confidence 0.9, run on batches of frames (:meth:`S3FDDetector.detect_batch`) — or facexlib
RetinaFace (``detector="retinaface"``) as the named alternative.
Scene cuts: PySceneDetect's ``SceneManager`` + ``ContentDetector`` (default threshold, auto downscale), on
the reference's AVI (:func:`scene_cuts_video`) or on frames in memory (:func:`scene_cuts`).
Tracking: syncnet-python's own ``SyncNetPipeline._track`` (greedy IoU > 0.5 within 25 frames, more than
``min_track`` detections, interpolated over gaps, mean box side above ``min_face_size``).
Crop: size/centre median-filtered (kernel 13), grey-110 padding, crop scale 0.4, resized to 224x224
(``cv2.resize`` default bilinear), cut out of the frame directly instead of padding the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy import signal

from moee_bench.bench.core.weights import load_into
# imported inside the functions that use them (seconds to import, or optional): facexlib, scenedetect, syncnet_python, torch

DEFAULT_MIN_TRACK = 25
S3FD_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)


@dataclass
class Track:
    frames: np.ndarray   # (L,) frame indices
    boxes: np.ndarray    # (L, 4) x1 y1 x2 y2


class _ThresholdDetect:
    """S3FD's post-processing (``box_utils.Detect``), stopped where the caller's threshold stops reading it.

    The reference sorts every prior scoring > 0.05 (``scores.sort``, top 5000), runs greedy NMS (IoU 0.3)
    through all of them in a Python loop, and then reads only the kept boxes scoring > ``conf_th`` (0.9).
    A box is kept or not depending only on higher-scoring boxes, so the same sort followed by the same
    greedy loop over the boxes > ``conf_th`` (in that sorted order, ties included) keeps exactly the boxes
    the reference reads. Our code; ``decode`` is the package's and the IoU arithmetic is ``box_utils.nms``'s."""

    def __init__(self, conf_th: float, conf_thresh: float = 0.05, nms_thresh: float = 0.3, top_k: int = 750,
                 nms_top_k: int = 5000):
        self.conf_th, self.conf_thresh, self.nms_thresh = conf_th, conf_thresh, nms_thresh
        self.top_k, self.nms_top_k = top_k, nms_top_k
        self.variance = [0.1, 0.2]

    def _nms(self, boxes, idx):
        import torch

        x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
        area = torch.mul(x2 - x1, y2 - y1)
        keep = []
        while idx.numel() > 0:
            i = idx[-1]
            keep.append(int(i))
            idx = idx[:-1]
            if idx.numel() == 0:
                break
            xx1 = torch.clamp(torch.index_select(x1, 0, idx), min=x1[i])
            yy1 = torch.clamp(torch.index_select(y1, 0, idx), min=y1[i])
            xx2 = torch.clamp(torch.index_select(x2, 0, idx), max=x2[i])
            yy2 = torch.clamp(torch.index_select(y2, 0, idx), max=y2[i])
            inter = torch.clamp(xx2 - xx1, min=0.0) * torch.clamp(yy2 - yy1, min=0.0)
            union = (torch.index_select(area, 0, idx) - inter) + area[i]
            idx = idx[(inter / union).le(self.nms_thresh)]
        return keep

    def forward(self, loc_data, conf_data, prior_data):
        import torch
        from syncnet_python.detectors.s3fd.box_utils import decode

        num = loc_data.size(0)
        boxes = decode(loc_data.reshape(-1, 4), prior_data.repeat(num, 1), self.variance).view(num, -1, 4)
        out = torch.zeros(num, 2, self.top_k, 5)
        for i in range(num):
            sc = conf_data[i, :, 1]
            c_mask = sc.gt(self.conf_thresh)
            s, b = sc[c_mask], boxes[i][c_mask]
            if s.numel() == 0:
                continue
            _, idx = s.sort(0)
            idx = idx[-self.nms_top_k:]
            idx = idx[s[idx] > self.conf_th]
            keep = self._nms(b, idx)[: self.top_k]
            if keep:
                k = torch.tensor(keep)
                out[i, 1, :len(keep)] = torch.cat((s[k].unsqueeze(1), b[k]), 1)
        return out


class S3FDDetector:
    """S3FD as the reference calls it (``detect_faces(rgb, conf_th=0.9, scales=[0.25])``), on batches of BGR frames."""

    def __init__(self, state_dict: dict, device: str = "cpu", scale: float = 0.25, conf_th: float = 0.9,
                 batch_size: int = 8):
        import torch
        from syncnet_python.detectors.s3fd.nets import S3FDNet

        net = S3FDNet(device=device)
        load_into(net, state_dict, what="S3FD face detector (sfd_face)")
        net.detect = _ThresholdDetect(conf_th)
        self.net = net.to(device).eval().to(memory_format=torch.channels_last)   # oneDNN's fast layout (1.5x on CPU)
        self.device, self.scale, self.conf_th, self.batch_size = device, scale, conf_th, batch_size
        self._torch = torch

    def detect_batch(self, frames_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(n, 5) boxes (x1, y1, x2, y2, score) in frame pixels for each BGR frame; all frames the same size."""
        from syncnet_python.detectors.s3fd.box_utils import nms_

        out: list[np.ndarray] = []
        for i in range(0, len(frames_bgr), self.batch_size):
            chunk = frames_bgr[i:i + self.batch_size]
            h, w = chunk[0].shape[:2]
            # the reference: RGB frame resized (INTER_LINEAR), minus the mean in BGR order, fed as RGB
            x = np.stack([cv2.resize(f, dsize=(0, 0), fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR)
                          for f in chunk]).astype(np.float32)
            x -= S3FD_MEAN_BGR
            x = self._torch.from_numpy(np.ascontiguousarray(x[..., ::-1])).permute(0, 3, 1, 2)   # RGB, channels_last
            with self._torch.no_grad():
                det = self.net(x.to(self.device)).cpu()
            scale = self._torch.Tensor([w, h, w, h])
            for d in det:
                rows = d[1][d[1, :, 0] > self.conf_th]
                b = np.hstack([(rows[:, 1:] * scale).numpy(), rows[:, :1].numpy()]).astype(np.float64)
                out.append(b[nms_(b, 0.1)] if len(b) else np.zeros((0, 5)))
        return out


class RetinaFaceDetector:
    """facexlib RetinaFace (resnet50) on BGR frames; boxes with score >= ``conf_th``."""

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

    def detect_batch(self, frames_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(n, 5) boxes per BGR frame."""
        out = []
        with self._torch.no_grad():
            for f in frames_bgr:
                b = self.net.detect_faces(np.ascontiguousarray(f), self.conf_th)
                out.append(np.asarray(b, np.float64)[:, :5].reshape(-1, 5) if len(b) else np.zeros((0, 5)))
        return out


def _frames_stream(frames_bgr: Sequence[np.ndarray], fps: float):
    """A PySceneDetect ``VideoStream`` over frames in memory (our adapter; the library reads files only)."""
    from scenedetect.frame_timecode import FrameTimecode
    from scenedetect.video_stream import VideoStream

    class _Stream(VideoStream):
        BACKEND_NAME = "moee_bench_frames"
        path = name = "frames"
        is_seekable = True
        aspect_ratio = 1.0

        def __init__(self) -> None:
            self._i = 0

        @property
        def frame_rate(self) -> float:
            return float(fps)

        @property
        def duration(self):
            return self.base_timecode + len(frames_bgr)

        @property
        def frame_size(self) -> tuple[int, int]:
            return (frames_bgr[0].shape[1], frames_bgr[0].shape[0])

        @property
        def position(self):
            return self.base_timecode + max(0, self._i - 1)

        @property
        def position_ms(self) -> float:
            return max(0, self._i - 1) * 1000.0 / fps

        @property
        def frame_number(self) -> int:
            return self._i

        def read(self, decode: bool = True, advance: bool = True):
            if advance:
                if self._i >= len(frames_bgr):
                    return False
                self._i += 1
            return frames_bgr[self._i - 1] if decode else True

        def reset(self) -> None:
            self._i = 0

        def seek(self, target) -> None:
            self._i = int(target.frame_num if isinstance(target, FrameTimecode) else target)

    return _Stream()


def _scenes(stream) -> list[tuple[int, int]]:
    from scenedetect import ContentDetector, SceneManager, StatsManager

    sm = SceneManager(StatsManager())
    sm.add_detector(ContentDetector())
    n = sm.detect_scenes(video=stream)
    scenes = [(int(a.frame_num), int(b.frame_num)) for a, b in sm.get_scene_list()]
    return scenes or [(0, int(n))]   # no cut: one scene over every frame read, as the reference's fallback


def scene_cuts(frames_bgr: Sequence[np.ndarray], fps: float = 25.0) -> list[tuple[int, int]]:
    """Scenes ``[start, end)`` of BGR frames in memory (PySceneDetect ``SceneManager``, ``ContentDetector``)."""
    return _scenes(_frames_stream(frames_bgr, fps)) if len(frames_bgr) else []


def scene_cuts_video(path: str) -> list[tuple[int, int]]:
    """Scenes of a video file decoded by OpenCV, as the reference runs PySceneDetect on its 25-fps AVI."""
    from scenedetect.backends.opencv import VideoStreamCv2

    return _scenes(VideoStreamCv2(path))


def track_faces(dets: list[np.ndarray], start: int, *, min_track: int, num_failed_det: int = 25,
                min_face_size: float = 100.0) -> list[Track]:
    """Face tracks over one scene's detections (``dets[i]`` = boxes of frame ``start + i``).

    Runs syncnet-python's own ``SyncNetPipeline._track`` (greedy IoU > 0.5 within 25 frames, more than
    ``min_track`` detections, linear interpolation over gaps, mean box side > ``min_face_size``), so
    frames with several faces are walked exactly as the reference walks them."""
    from syncnet_python.syncnet_pipeline import PipelineConfig, SyncNetPipeline

    pipe = object.__new__(SyncNetPipeline)      # only the config is needed, not the networks
    pipe.cfg = PipelineConfig(min_track=min_track, num_failed_det=num_failed_det, min_face_size=min_face_size)
    ref_in = [[{"frame": start + i, "bbox": b[:4].tolist()} for b in np.asarray(fr).reshape(-1, 5)]
              for i, fr in enumerate(dets)]
    return [Track(np.asarray(t["frame"]), np.asarray(t["bbox"], np.float64)) for t in pipe._track(ref_in)]


def _crop(img: np.ndarray, s: float, x: float, y: float, cs: float) -> np.ndarray:
    """The reference's crop of the frame padded by ``int(s*(1+2cs))`` grey-110 pixels, without building the padded frame."""
    h, w = img.shape[:2]
    pad = int(s * (1 + 2 * cs))
    my, mx = y + pad, x + pad
    y1, y2 = int(my - s), int(my + s * (1 + 2 * cs))
    x1, x2 = int(mx - s * (1 + cs)), int(mx + s * (1 + cs))
    y2, x2 = min(y2, h + 2 * pad), min(x2, w + 2 * pad)
    if min(y1, x1) < 0 or y2 <= y1 or x2 <= x1:   # negative (wrapping) or empty slices: the reference's own steps
        img_p = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
        return img_p[int(my - s): int(my + s * (1 + 2 * cs)), int(mx - s * (1 + cs)): int(mx + s * (1 + cs))]
    out = np.full((y2 - y1, x2 - x1, 3), 110, np.uint8)
    sy1, sy2, sx1, sx2 = max(y1 - pad, 0), min(y2 - pad, h), max(x1 - pad, 0), min(x2 - pad, w)
    if sy1 < sy2 and sx1 < sx2:
        out[sy1 + pad - y1: sy2 + pad - y1, sx1 + pad - x1: sx2 + pad - x1] = img[sy1:sy2, sx1:sx2]
    return out


def crop_track(frame: Callable[[int], np.ndarray] | Sequence[np.ndarray], track: Track,
               crop_scale: float = 0.4) -> np.ndarray:
    """224x224 BGR crops (L, 224, 224, 3) of one track, as the reference's ``_crop`` makes them.

    ``frame`` gives the BGR frame of a frame index: a sequence or a function (frames read from disk)."""
    get = frame if callable(frame) else frame.__getitem__
    b = track.boxes
    s = signal.medfilt(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2, 13)
    x = signal.medfilt((b[:, 0] + b[:, 2]) / 2, 13)
    y = signal.medfilt((b[:, 1] + b[:, 3]) / 2, 13)
    return np.stack([cv2.resize(_crop(get(int(fi)), s[i], x[i], y[i], crop_scale), (224, 224))
                     for i, fi in enumerate(track.frames)])
