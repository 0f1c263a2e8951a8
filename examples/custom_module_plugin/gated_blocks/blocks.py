"""Two blocks registered with ultra_ext, so model YAMLs can name them.

``GatedConv`` uses the default ``"channels"`` rule (the row's first argument is the output width, scaled like a stock
``Conv`` row; the input width is prepended). ``ChannelShuffle`` keeps its input's channels (``rule="same"``).
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import Conv

import ultra_ext


@ultra_ext.register
class GatedConv(nn.Module):
    """Conv → BN → SiLU whose output is gated by a sigmoid of a 1×1 projection of itself.

    ``(B, c1, H, W) → (B, c2, H/s, W/s)``. YAML: ``[-1, 1, GatedConv, [c2, k, s]]``.
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1):
        super().__init__()
        self.conv = Conv(c1, c2, k, s)
        self.gate = nn.Conv2d(c2, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * torch.sigmoid(self.gate(y))


@ultra_ext.register(rule="same")
class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: interleaves ``groups`` channel groups, shape unchanged.

    ``(B, C, H, W) → (B, C, H, W)``. YAML: ``[-1, 1, ChannelShuffle, [groups]]``.
    """

    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)
