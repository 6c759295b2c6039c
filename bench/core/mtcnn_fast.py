"""MTCNN's ``detect`` at facenet-pytorch's own values, faster on CPU (our own code: facenet-pytorch has no batched
or CPU-tuned path).

Two changes, both exact (the same floating-point operations on the same operands, so bit-identical outputs;
``tests/test_face_fast.py`` checks boxes, scores and points against the untouched ``MTCNN.detect`` on real frames):

* **Max pooling** (P/R/O-net, ``ceil_mode=True``): torch's CPU ``max_pool2d`` is slower here than the same
  maxima taken over strided numpy views (P-net's first pool on a 59-frame clip, channels-last as the convolution
  leaves it: 57.7 ms against 27.8 ms; about even on O-net's). Max is exact and order-free, so
  :class:`ExactMaxPool2d` takes the window maximum as a separable max over strided slices, keeping torch's
  output memory layout (the next convolution's last bits depend on it). CPU only; other devices keep the library's.
* **Candidate resampling** (R- and O-net stages): facenet-pytorch resizes every candidate box with its own
  ``interpolate(mode="area")`` call (~65 a frame). Area interpolation is computed per sample and channel, so
  :func:`detect_face` stacks the crops of equal size into one call and puts the results back in box order.

:func:`detect_face` is facenet-pytorch 2.5.3's ``models/utils/detect_face.detect_face`` (MIT licence) with only
those crop loops changed; everything else (pyramid, thresholds, NMS, regression) calls the library's own helpers.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, fixed_batch_process,
                                                      generateBoundingBox, imresample, pad, rerec)
from torch import nn
from torchvision.ops.boxes import batched_nms


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

        m = a[rows(0, out)].copy()
        for i in range(1, self.k):
            count = min(out, (n - i + self.s - 1) // self.s)     # the last (ceil-mode) window may be partial
            if count > 0:
                view = m[(slice(None),) * axis + (slice(0, count),)]
                np.maximum(view, a[rows(i, count)], out=view)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the memory layout torch's pooling gives its output (it follows the input): the next convolution's
        # arithmetic depends on it, so another layout changes its values in the last bits
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
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


def _crops(imgs: torch.Tensor, image_inds: np.ndarray, y, ey, x, ex, size: int) -> torch.Tensor:
    """Area-resampled ``size`` x ``size`` crops of every box with a non-empty area, in box order, one
    ``interpolate`` call per distinct crop shape (the library calls it once per box: same values)."""
    keep = [k for k in range(len(y)) if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1)]
    groups: dict[tuple[int, int], list[int]] = {}
    for j, k in enumerate(keep):
        groups.setdefault((int(ey[k] - y[k] + 1), int(ex[k] - x[k] + 1)), []).append(j)
    out = imgs.new_empty((len(keep), imgs.shape[1], size, size))
    for js in groups.values():
        batch = torch.stack([imgs[image_inds[keep[j]], :, (y[keep[j]] - 1):ey[keep[j]], (x[keep[j]] - 1):ex[keep[j]]]
                             for j in js])
        out[js] = imresample(batch, (size, size))
    return out


def detect_face(imgs: torch.Tensor, minsize: float, pnet, rnet, onet, threshold, factor: float, device):
    """facenet-pytorch's ``detect_face`` for a ``(n, H, W, 3)`` uint8 tensor on ``device``, with the R/O-net crops
    resampled in groups (:func:`_crops`). Returns the library's ``(batch_boxes, batch_points)`` object arrays."""
    model_dtype = next(pnet.parameters()).dtype
    imgs = imgs.permute(0, 3, 1, 2).type(model_dtype)

    batch_size = len(imgs)
    h, w = imgs.shape[2:4]
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
        im_data = imresample(imgs, (int(h * scale + 1), int(w * scale + 1)))
        im_data = (im_data - 127.5) * 0.0078125
        reg, probs = pnet(im_data)
        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes.append(boxes_scale)
        image_inds.append(image_inds_scale)
        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes, dim=0)
    image_inds = torch.cat(image_inds, dim=0)
    scale_picks = torch.cat(scale_picks, dim=0)
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]

    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
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
        im_data = _crops(imgs, image_inds.cpu().numpy(), y, ey, x, ex, 24)
        im_data = (im_data - 127.5) * 0.0078125
        out = fixed_batch_process(im_data, rnet)
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        score = out1[1, :]
        ipass = score > threshold[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes) > 0:
        y, ey, x, ex = pad(boxes, w, h)
        im_data = _crops(imgs, image_inds.cpu().numpy(), y, ey, x, ex, 48)
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


class FastMTCNN:
    """``MTCNN.detect(frames, landmarks=True)`` of a keep-all, select-largest facenet-pytorch ``MTCNN`` through
    :func:`detect_face` and :func:`fast_nets`; same values, returned per frame as float64 arrays."""

    def __init__(self, mtcnn) -> None:
        self.mtcnn = mtcnn
        self.pnet, self.rnet, self.onet = fast_nets(mtcnn)

    def detect(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Per frame of ``(n, H, W, 3)`` uint8 RGB: None without a face, else boxes ``(k, 4)``, probabilities
        ``(k,)``, points ``(k, 5, 2)`` (float64), largest box first as the library orders them."""
        m = self.mtcnn
        with torch.inference_mode():
            imgs = torch.as_tensor(np.ascontiguousarray(frames), device=m.device)
            batch_boxes, batch_points = detect_face(imgs, m.min_face_size, self.pnet, self.rnet, self.onet,
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
