"""Convolution + ReLU as one oneDNN call on CPU, for the feature networks (FID Inception, LPIPS AlexNet).

A ReLU after a convolution is a separate pass over the whole activation in eager PyTorch; on CPU that pass cost a
quarter of Inception's bf16 time (issue 30: 244 of 1025 ms for 32 frames on one core). torch's own
``mkldnn::_convolution_pointwise`` (the op torch.compile's CPU backend emits for this pattern) applies the ReLU
inside the convolution. The convolution and the ReLU are the same arithmetic, so the features are bit-identical to
the unfused module at fp32 and at bf16 (tests/test_speed.py against pytorch-fid's own model). Only on CPU, and only
where torch has the op (:func:`available`); elsewhere the modules are left as they are.

Precision: :class:`ConvReLU` runs in its weights' dtype (a network converted to bf16 once), or in the dtype of an
enclosing ``torch.autocast`` (as the unfused convolution would), its input cast to it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

# imported inside the functions that use them (seconds to import, or optional): torch


def available(device: Any = "cpu") -> bool:
    """Whether the fused op can run the network on ``device`` (CPU with oneDNN and the op in this torch)."""
    import torch

    return (str(device).split(":")[0] == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


@lru_cache(maxsize=1)
def _conv_relu_class() -> type:
    import torch

    class ConvReLU(torch.nn.Module):
        """``relu(conv(x))`` in one oneDNN call, in the weights' dtype or an enclosing autocast's."""

        def __init__(self, c: torch.nn.Conv2d) -> None:
            super().__init__()
            self.conv = c                         # kept as the child: state_dict keys and .to() as before
            self.args = (list(c.padding), list(c.stride), list(c.dilation), c.groups)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w, b = self.conv.weight, self.conv.bias
            dt = w.dtype
            if w.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type):
                dt = torch.get_autocast_dtype(x.device.type)
            return torch.ops.mkldnn._convolution_pointwise(x.to(dt), w.to(dt), None if b is None else b.to(dt),
                                                           *self.args, "relu", [], "")

    return ConvReLU


def conv_relu(conv: Any) -> Any:
    """A module computing ``relu(conv(x))`` in one oneDNN call (``conv``: a zero-padded ``torch.nn.Conv2d``)."""
    if not isinstance(conv.padding, tuple) or conv.padding_mode != "zeros":
        raise ValueError(f"conv_relu: {conv} has padding {conv.padding!r} / mode {conv.padding_mode!r}")
    return _conv_relu_class()(conv)


def fuse_modules(model: Any, match: Callable[[Any], Any]) -> int:
    """Replace every submodule ``m`` of ``model`` for which ``match(m)`` returns a convolution (whose output ``m``
    returns through a ReLU and nothing else) by :func:`conv_relu` of that convolution; the number replaced."""
    n = 0
    for name, mod in list(model.named_modules()):
        conv = match(mod) if name else None
        if conv is None:
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, conv_relu(conv))
        n += 1
    return n

