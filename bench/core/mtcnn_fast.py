"""MTCNN's ``detect`` at facenet-pytorch's own values, faster on CPU (our own code: facenet-pytorch has no batched
or CPU-tuned path).

The changes are exact (the same floating-point operations on the same operands, so bit-identical outputs;
``tests/test_face_fast.py`` checks boxes, scores and points against the untouched ``MTCNN.detect`` on real frames):

* **Max pooling** (P/R/O-net, ``ceil_mode=True``): torch's CPU ``max_pool2d`` is slower here than the same
  maxima taken over strided numpy views (P-net's first pool on a 59-frame clip, channels-last as the convolution
  leaves it: 57.7 ms against 27.8 ms; about even on O-net's). Max is exact and order-free, so
  :class:`ExactMaxPool2d` takes the window maximum as a separable max over strided slices, keeping torch's
  output memory layout (the next convolution's last bits depend on it). CPU only; other devices keep the library's.
* **Area resampling** (the P-net pyramid and every R/O-net candidate crop): facenet-pytorch calls
  ``interpolate(mode="area")`` (torch's ``adaptive_avg_pool2d``) once per pyramid scale and once per candidate
  box (~65 a frame), a third of its time. Its inputs are whole pixel values, so every window sum is an exact
  integer in float32 whatever the summation order; :class:`AreaSampler` takes the sums from one integral image
  per frame (int32) and divides as torch's kernel does (``sum / kh / kw`` in float32): the same bits, all crops
  of a stage in one vectorised step. Windows whose sum could exceed float32's exact integers (2^24) are left to
  the library's call.
* **Frames on both cores** (:meth:`FastMTCNN.detect`): chunks of frames (:func:`chunk_frames`) run on one Python
  thread per core (:func:`workers`) at once, each op on one torch intra-op thread (torch and numpy release the
  GIL; the library's convolutions give other last bits on 2 intra-op threads). NMS is taken per frame, as a
  one-frame library call takes it.

What "the library's values" means: facenet-pytorch's own outputs depend in their last bits on how many frames
share a ``detect`` call (its convolutions round differently by batch size; measured on 123 real 256x256 frames:
one-frame calls and one 123-frame call differ on 120 frames, by ~1e-5 px in the boxes). So a chunk here equals
the library called on the same frames (a single frame: a one-frame call); AKD's integer boxes, and so its
landmarks, come out the same either way on the frames measured (``bench faces``: "landmarks identical").

:func:`detect_face` is facenet-pytorch 2.5.3's ``models/utils/detect_face.detect_face`` (MIT licence) with only
the resampling and the NMS grouping changed; everything else (pyramid, thresholds, regression) calls the
library's own helpers.
"""

from __future__ import annotations

import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, fixed_batch_process,
                                                      generateBoundingBox, imresample, pad, rerec)
from torch import nn
from torchvision.ops import nms


class ExactMaxPool2d(nn.Module):
    """``nn.MaxPool2d(kernel, stride, ceil_mode=True)`` (padding 0, dilation 1), same values, computed as a
    separable maximum over strided views (numpy; the last window of each axis may be partial, as in ceil mode).
    CPU tensors only."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.k, self.s = int(kernel_size), int(stride)

    def _axis(self, a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        out = math.ceil((n - self.k) / self.s) + 1

        def rows(i: int, count: int) -> tuple:
            return (slice(None),) * axis + (slice(i, i + (count - 1) * self.s + 1, self.s),)

        first = a[rows(0, out)]
        if self.k == 1:
            return first.copy()
        shape = list(a.shape)
        shape[axis] = out
        m = np.empty(shape, a.dtype)
        count = min(out, (n - 1 + self.s - 1) // self.s)       # windows with a second element (ceil mode)
        np.maximum(first[(slice(None),) * axis + (slice(0, count),)], a[rows(1, count)],
                   out=m[(slice(None),) * axis + (slice(0, count),)])
        if count < out:
            m[(slice(None),) * axis + (slice(count, out),)] = first[(slice(None),) * axis + (slice(count, out),)]
        for i in range(2, self.k):
            count = min(out, (n - i + self.s - 1) // self.s)     # the last (ceil-mode) window may be partial
            if count > 0:
                view = m[(slice(None),) * axis + (slice(0, count),)]
                np.maximum(view, a[rows(i, count)], out=view)
        return m

    def _tiles(self, t: torch.Tensor) -> torch.Tensor:
        """Non-overlapping windows (kernel == stride) of a contiguous ``(n, H, W, C)`` tensor: each axis split into
        (windows, k) and the k slices maximised, rows first, so every maximum runs over long contiguous runs
        (P-net's first pool: 1.6 ms against 2.4 ms by :meth:`_axis`); a last partial window (ceil mode) is the
        maximum of what is left."""
        k = self.k

        def fold(a: torch.Tensor, axis: int) -> torch.Tensor:       # max over groups of k along ``axis``
            size = a.shape[axis]
            full = size // k
            g = a.narrow(axis, 0, full * k).reshape(*a.shape[:axis], full, k, *a.shape[axis + 1:])
            m = g.select(axis + 1, 0)
            for i in range(1, k):
                m = torch.maximum(m, g.select(axis + 1, i))
            if size % k:
                rest = a.narrow(axis, full * k, size - full * k)
                last = rest.narrow(axis, 0, 1)
                for i in range(1, rest.shape[axis]):
                    last = torch.maximum(last, rest.narrow(axis, i, 1))
                m = torch.cat([m, last], dim=axis)
            return m

        return fold(fold(t, 1), 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the memory layout torch's pooling gives its output (it follows the input): the next convolution's
        # arithmetic depends on it, so another layout changes its values in the last bits
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            if self.k == self.s and min(x.shape[2:]) >= self.k:
                return self._tiles(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            nhwc = x.permute(0, 2, 3, 1).numpy()
            return torch.from_numpy(self._axis(self._axis(nhwc, 1), 2)).permute(0, 3, 1, 2)
        a = x.contiguous().numpy()
        return torch.from_numpy(self._axis(self._axis(a, a.ndim - 2), a.ndim - 1))


def fast_nets(mtcnn) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Copies of ``mtcnn``'s P/R/O-nets with every ceil-mode ``nn.MaxPool2d`` swapped for :class:`ExactMaxPool2d`
    (the library's modules stay untouched); on another device than the CPU, the library's own nets."""
    nets = []
    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        if next(net.parameters()).device.type != "cpu":
            nets.append(net)
            continue
        net = copy.deepcopy(net).eval()
        for name, mod in list(net.named_children()):
            if isinstance(mod, nn.MaxPool2d):
                k, s = mod.kernel_size, mod.stride
                if (mod.ceil_mode and mod.padding == 0 and mod.dilation == 1 and isinstance(k, int)
                        and isinstance(s, int)):
                    setattr(net, name, ExactMaxPool2d(k, s))
        nets.append(net)
    return nets[0], nets[1], nets[2]


#: float32 holds every integer below 2^24 exactly: window sums of whole pixel values up to this stay exact
_EXACT_SUM = 2 ** 24


def _windows(size_in: np.ndarray, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of ``adaptive_avg_pool``'s windows along one axis: ``(..., size_out)`` each, for
    input lengths ``size_in`` (any shape)."""
    i = np.arange(size_out)
    n = np.asarray(size_in, np.int64)[..., None]
    return (i * n) // size_out, ((i + 1) * n + size_out - 1) // size_out


class AreaSampler:
    """``interpolate(mode="area")`` of whole-pixel frames from one integral image per frame (our own code: torch
    has no integral-image area resampling). Window sums are exact integers, divided as torch's
    ``adaptive_avg_pool2d`` kernel divides (``sum / kh / kw`` in float32), so the values equal the library's."""

    def __init__(self, frames: np.ndarray) -> None:
        n, h, w, c = frames.shape
        self.shape = (h, w)
        sums = np.zeros((n, h + 1, w + 1, c), np.int32)
        sums[:, 1:, 1:] = frames
        for i in range(2, h + 1):                # row by row: faster here than numpy's cumsum along this axis
            np.add(sums[:, i], sums[:, i - 1], out=sums[:, i])
        np.cumsum(sums[:, 1:, 1:], axis=2, out=sums[:, 1:, 1:])
        self.sums = sums

    @staticmethod
    def _exact(kh: np.ndarray, kw: np.ndarray) -> bool:
        return int(kh.max(initial=0)) * int(kw.max(initial=0)) * 255 < _EXACT_SUM

    @staticmethod
    def _divide(total: np.ndarray, kh: np.ndarray, kw: np.ndarray) -> np.ndarray:
        """``sum / kh / kw`` in float32 (torch's order), C-contiguous; ``kh`` along the rows axis, ``kw`` along
        the columns axis of ``total`` (``(..., rows, cols, C)``)."""
        out = total.astype(np.float32)
        out /= kh.astype(np.float32)[..., :, None, None]
        out /= kw.astype(np.float32)[..., None, :, None]
        return out

    def frames(self, height: int, width: int) -> torch.Tensor | None:
        """All frames resampled to ``height`` x ``width``: ``(n, C, height, width)`` float32, NHWC in memory
        (channels last, the layout the library's call gives a permuted NHWC input: the convolution's bits
        depend on it); None where not exact."""
        h0, h1 = _windows(np.int64(self.shape[0]), height)
        w0, w1 = _windows(np.int64(self.shape[1]), width)
        if not self._exact(h1 - h0, w1 - w0):
            return None
        rows = np.take(self.sums, h1, axis=1) - np.take(self.sums, h0, axis=1)
        out = self._divide(np.take(rows, w1, axis=2) - np.take(rows, w0, axis=2), h1 - h0, w1 - w0)
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def crops(self, image_inds: np.ndarray, y, ey, x, ex, size: int) -> torch.Tensor | None:
        """The library's R/O-net input: ``size`` x ``size`` area resamples of the boxes with a non-empty area
        (1-based ``y..ey``, ``x..ex`` as ``pad`` gives them), in box order, ``(k, C, size, size)`` contiguous;
        None where not exact."""
        y, ey, x, ex = (np.asarray(v, np.int64) for v in (y, ey, x, ex))
        keep = (ey > y - 1) & (ex > x - 1)
        y0, x0 = y[keep] - 1, x[keep] - 1
        h0, h1 = _windows(ey[keep] - y0, size)
        w0, w1 = _windows(ex[keep] - x0, size)
        if not self._exact(h1 - h0, w1 - w0):
            return None
        _, n_rows, n_cols, c = self.sums.shape
        pixels = self.sums.reshape(-1, c)                       # one row per (frame, y, x) of the integral image
        first = np.asarray(image_inds, np.int64)[keep][:, None] * n_rows + y0[:, None]
        r0, r1 = ((first + h0) * n_cols)[:, :, None], ((first + h1) * n_cols)[:, :, None]
        c0, c1 = (w0 + x0[:, None])[:, None, :], (w1 + x0[:, None])[:, None, :]
        total = (np.take(pixels, r1 + c1, axis=0) - np.take(pixels, r0 + c1, axis=0)
                 - np.take(pixels, r1 + c0, axis=0) + np.take(pixels, r0 + c0, axis=0))
        return torch.from_numpy(self._divide(total, h1 - h0, w1 - w0)).permute(0, 3, 1, 2).contiguous()


def _library_crops(imgs: torch.Tensor, image_inds: np.ndarray, y, ey, x, ex, size: int) -> torch.Tensor:
    """The library's crop loop (one ``imresample`` per box), for windows :class:`AreaSampler` cannot sum exactly."""
    crops = [imresample(imgs[image_inds[k], :, (y[k] - 1):ey[k], (x[k] - 1):ex[k]].unsqueeze(0), (size, size))
             for k in range(len(y)) if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1)]
    return torch.cat(crops, dim=0)


def _nms_per_frame(boxes: torch.Tensor, scores: torch.Tensor, image_inds: torch.Tensor,
                   threshold: float) -> torch.Tensor:
    """torchvision's ``batched_nms`` with each frame's boxes taken on their own, as a one-frame call takes them
    (the library's batched call shifts each frame's coordinates by an offset that depends on the whole batch,
    which can move IoUs in their last bits); indices in decreasing score order."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    keep = []
    for b in torch.unique(image_inds):
        idx = torch.nonzero(image_inds == b).flatten()
        keep.append(idx[nms(boxes[idx], scores[idx], threshold)])
    kept = torch.cat(keep)
    return kept[torch.sort(scores[kept], descending=True, stable=True)[1]]


def _stage_input(sampler: AreaSampler, imgs: Callable[[], torch.Tensor], image_inds: torch.Tensor, y, ey, x, ex,
                 size: int, device) -> torch.Tensor:
    inds = image_inds.cpu().numpy()
    crops = sampler.crops(inds, y, ey, x, ex, size)
    if crops is None:
        return _library_crops(imgs(), inds, y, ey, x, ex, size)
    return crops.to(device)


def detect_face(frames: np.ndarray, minsize: float, pnet, rnet, onet, threshold, factor: float, device):
    """facenet-pytorch's ``detect_face`` for ``(n, H, W, 3)`` uint8 frames, with the area resampling from
    :class:`AreaSampler` and NMS per frame (:func:`_nms_per_frame`). Returns the library's
    ``(batch_boxes, batch_points)`` lists."""
    model_dtype = next(pnet.parameters()).dtype
    sampler = AreaSampler(frames)

    @lru_cache(maxsize=1)
    def imgs() -> torch.Tensor:           # the library's float input, only for windows the sampler leaves to it
        return torch.as_tensor(frames, device=device).permute(0, 3, 1, 2).type(model_dtype)

    batch_size = len(frames)
    h, w = frames.shape[1:3]
    m = 12.0 / minsize
    minl = min(h, w)
    minl = minl * m

    scale_i = m
    scales = []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor

    boxes = []
    image_inds = []
    scale_picks = []
    offset = 0
    for scale in scales:
        size = (int(h * scale + 1), int(w * scale + 1))
        im_data = sampler.frames(*size)
        im_data = imresample(imgs(), size) if im_data is None else im_data.to(device)
        im_data = (im_data - 127.5) * 0.0078125
        reg, probs = pnet(im_data)
        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes.append(boxes_scale)
        image_inds.append(image_inds_scale)
        pick = _nms_per_frame(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes, dim=0)
    image_inds = torch.cat(image_inds, dim=0)
    scale_picks = torch.cat(scale_picks, dim=0)
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]

    pick = _nms_per_frame(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)
    y, ey, x, ex = pad(boxes, w, h)

    if len(boxes) > 0:
        im_data = _stage_input(sampler, imgs, image_inds, y, ey, x, ex, 24, device)
        im_data = (im_data - 127.5) * 0.0078125
        out = fixed_batch_process(im_data, rnet)
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        score = out1[1, :]
        ipass = score > threshold[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        pick = _nms_per_frame(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes) > 0:
        y, ey, x, ex = pad(boxes, w, h)
        im_data = _stage_input(sampler, imgs, image_inds, y, ey, x, ex, 48, device)
        im_data = (im_data - 127.5) * 0.0078125
        out = fixed_batch_process(im_data, onet)
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        out2 = out[2].permute(1, 0)
        score = out2[1, :]
        points = out1
        ipass = score > threshold[2]
        points = points[:, ipass]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, 'Min')
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes = boxes.cpu().numpy()
    points = points.cpu().numpy()
    image_inds = image_inds.cpu().numpy()
    batch_boxes = [boxes[image_inds == b] for b in range(batch_size)]
    batch_points = [points[image_inds == b] for b in range(batch_size)]
    return batch_boxes, batch_points


#: frames per :func:`detect_face` call, fewer where their integral images would pass :data:`CHUNK_BYTES`
CHUNK = 8
#: memory of one call's integral images (int32, 4 bytes a pixel and channel: 0.8 MB a 256x256 frame, 25 MB a 1080p one)
CHUNK_BYTES = 64 * 2 ** 20


def chunk_frames(shape: tuple[int, ...]) -> int:
    """Frames per :func:`detect_face` call for frames of ``shape`` ``(n, H, W, C)``."""
    one = 4 * (shape[1] + 1) * (shape[2] + 1) * shape[3]
    return max(1, min(CHUNK, CHUNK_BYTES // one))


def workers() -> int:
    """Python threads :meth:`FastMTCNN.detect` spreads chunks over: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class FastMTCNN:
    """``MTCNN.detect(frames, landmarks=True)`` of a keep-all, select-largest facenet-pytorch ``MTCNN`` through
    :func:`detect_face` and :func:`fast_nets`; same values, returned per frame as float64 arrays."""

    def __init__(self, mtcnn) -> None:
        self.mtcnn = mtcnn
        self.pnet, self.rnet, self.onet = fast_nets(mtcnn)

    def _chunk(self, frames: np.ndarray, threads: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        m = self.mtcnn
        if torch.get_num_threads() != threads:       # a pool thread takes the caller's setting
            torch.set_num_threads(threads)
        with torch.inference_mode():
            batch_boxes, batch_points = detect_face(frames, m.min_face_size, self.pnet, self.rnet, self.onet,
                                                    m.thresholds, m.factor, m.device)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        for box, point in zip(batch_boxes, batch_points):
            if len(box) == 0:
                out.append(None)
                continue
            if m.select_largest:
                order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
                box, point = box[order], point[order]
            out.append((box[:, :4].astype(np.float64), box[:, 4].astype(np.float64),
                        point.astype(np.float64).reshape(-1, 5, 2)))
        return out

    def detect(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Per frame of ``(n, H, W, 3)`` uint8 RGB: None without a face, else boxes ``(k, 4)``, probabilities
        ``(k,)``, points ``(k, 5, 2)`` (float64), largest box first as the library orders them.

        With one torch intra-op thread and several cores, chunks of :func:`chunk_frames` frames run on that many
        Python threads at once (each op on one thread, so the values do not change); otherwise in turn."""
        frames = np.ascontiguousarray(frames)
        step = chunk_frames(frames.shape)
        chunks = [frames[i:i + step] for i in range(0, len(frames), step)]
        threads = torch.get_num_threads()
        n_workers = min(workers(), len(chunks)) if threads == 1 and str(self.mtcnn.device) == "cpu" else 1
        if n_workers <= 1:
            return [r for c in chunks for r in self._chunk(c, threads)]
        with ThreadPoolExecutor(n_workers) as pool:
            return [r for part in pool.map(self._chunk, chunks, [threads] * len(chunks)) for r in part]
