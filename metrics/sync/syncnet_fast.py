"""An equivalent 2D-convolution form of SyncNet ``S`` for fast CPU inference (our code).

Every lip-branch Conv3d after the first has temporal kernel 1 and the 5-frame window collapses to one
time step in the first layer, so the lip branch is exactly a 2D network on the 15-channel stack of the
window's frames (frame-major, BGR within a frame). BatchNorm (eval mode, running stats) is folded into the
preceding convolution / linear layer and everything runs channels_last. Same function as ``S`` up to float32
rounding (checked against ``S.forward_lip`` / ``forward_aud`` in tests/test_sync_core.py).
"""

from __future__ import annotations

import torch
from torch import nn


def _fold(conv_w: torch.Tensor, conv_b: torch.Tensor | None, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = conv_b if conv_b is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (conv_w.dim() - 1)
    return conv_w * scale.reshape(shape), (b - bn.running_mean) * scale + bn.bias


def _to_2d(seq: nn.Sequential, first_temporal: bool) -> nn.Sequential:
    """Conv/BN/ReLU/MaxPool (2D or 3D with temporal size 1) -> folded 2D layers."""
    out: list[nn.Module] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            w, b = m.weight.detach(), (m.bias.detach() if m.bias is not None else None)
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(nxt, (nn.BatchNorm2d, nn.BatchNorm3d)):
                w, b = _fold(w, b, nxt)
                i += 1
            if w.dim() == 5:
                if w.shape[2] != 1:  # first lip conv: time taps become input channels (frame-major)
                    w = w.permute(0, 2, 1, 3, 4).reshape(w.shape[0], -1, w.shape[3], w.shape[4])
                else:
                    w = w[:, :, 0]
            stride = m.stride[-2:]
            padding = m.padding[-2:]
            c = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[-2:]), stride=stride, padding=padding)
            c.weight.data.copy_(w)
            c.bias.data.copy_(b if b is not None else torch.zeros(w.shape[0]))
            out.append(c)
        elif isinstance(m, nn.ReLU):
            out.append(nn.ReLU(inplace=True))
        elif isinstance(m, (nn.MaxPool2d, nn.MaxPool3d)):
            k, s, p = (tuple(v[-2:]) if isinstance(v, tuple) else v for v in (m.kernel_size, m.stride, m.padding))
            out.append(nn.MaxPool2d(k, s, p))
        else:
            raise TypeError(f"unexpected layer {type(m).__name__}")
        i += 1
    return nn.Sequential(*out)


def _fc(seq: nn.Sequential) -> nn.Sequential:
    lin1, bn, _, lin2 = list(seq)
    w, b = _fold(lin1.weight.detach(), lin1.bias.detach(), bn)
    l1 = nn.Linear(w.shape[1], w.shape[0])
    l1.weight.data.copy_(w)
    l1.bias.data.copy_(b)
    return nn.Sequential(l1, nn.ReLU(), lin2)


class FastSyncNet(nn.Module):
    """``forward_lip`` takes (B, 15, 224, 224) frame-major BGR stacks; ``forward_aud`` (B, 1, 13, 20) MFCCs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        net = net.eval()
        with torch.no_grad():
            self.lip = _to_2d(net.netcnnlip, True).to(memory_format=torch.channels_last)
            self.aud = _to_2d(net.netcnnaud, False).to(memory_format=torch.channels_last)
            self.fclip, self.fcaud = _fc(net.netfclip), _fc(net.netfcaud)
        self.eval()

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lip(x.contiguous(memory_format=torch.channels_last))
        return self.fclip(h.reshape(h.shape[0], -1))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        h = self.aud(x.contiguous(memory_format=torch.channels_last))
        return self.fcaud(h.reshape(h.shape[0], -1))
