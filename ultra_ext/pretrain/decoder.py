"""SparK's light decoder and its reconstruction loss: densify the sparse multi-scale features, upsample to pixels,
compare normalised pixels on the masked patches only.

The decoder exists only during pre-training (it is not saved into the backbone checkpoint). Widths follow the
backbone: the deepest level's channel count, halved at every 2× upsampling (at least 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .masking import mask_at

__all__ = ["LightDecoder", "masked_patch_loss"]


class UpBlock(nn.Module):
    """2× upsampling: transposed 2×2 convolution, then two 3×3 Conv-BN-ReLU. (B, c1, h, w) → (B, c2, 2h, 2w)."""

    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c1, c2, 2, 2)
        self.conv = nn.Sequential(
            nn.Conv2d(c2, c2, 3, 1, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3, 1, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class LightDecoder(nn.Module):
    """Reconstruct the image (B, 3, H, W) from sparse backbone features at ``strides`` (fine to coarse, the last
    equal to the patch size).

    Densifying: every masked position of level i gets a learned token (1, C_i, 1, 1), then a 3×3 convolution
    projects to the decoder width at that stride. Decoding starts at the deepest level and, per 2× step, adds the
    densified level of that stride when there is one; after the finest level it continues to stride 1 and a 1×1
    convolution gives 3 channels.
    """

    def __init__(self, channels: list[int], strides: list[int]):
        super().__init__()
        if sorted(strides) != list(strides) or len(set(strides)) != len(strides):
            raise ValueError(f"decoder strides must be increasing, got {strides}")
        self.strides = list(strides)
        top = strides[-1]
        width = {s: max(16, channels[-1] * s // top) for s in _powers_of_two(top)}
        self.width = width
        self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in channels])
        self.densify = nn.ModuleList(nn.Conv2d(c, width[s], 3, 1, 1) for c, s in zip(channels, strides))
        self.ups = nn.ModuleList(UpBlock(width[s], width[s // 2]) for s in _powers_of_two(top)[::-1] if s > 1)
        self.head = nn.Conv2d(width[1], 3, 1)
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02)

    def forward(self, features: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        dense = {}
        for f, s, token, proj in zip(features, self.strides, self.mask_tokens, self.densify):
            visible = mask_at(mask, f.shape[2], f.shape[3]).to(f.dtype)
            dense[s] = proj(f * visible + token * (1 - visible))
        s = self.strides[-1]
        x = dense[s]
        for up in self.ups:
            x, s = up(x), s // 2
            if s in dense:
                x = x + dense[s]
        return self.head(x)


def _powers_of_two(top: int) -> list[int]:
    """[1, 2, 4, ..., top] (top a power of two)."""
    if top < 1 or top & (top - 1):
        raise ValueError(f"the backbone stride must be a power of two for the decoder, got {top}")
    return [2**k for k in range(top.bit_length())]


def masked_patch_loss(pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean squared error on the masked patches, against pixels normalised per patch (SparK's target).

    pred, image: (B, 3, H, W); mask: (B, 1, H/patch, W/patch) bool, True = visible.
    """
    b, c, h, w = image.shape

    def patches(t: torch.Tensor) -> torch.Tensor:  # (B, L, patch*patch*3)
        return F.unfold(t, kernel_size=patch, stride=patch).transpose(1, 2)

    target = patches(image)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (patches(pred) - target).pow(2).mean(-1)  # (B, L)
    hidden = (~mask).flatten(1).to(per_patch.dtype)  # (B, L), row-major like unfold
    return (per_patch * hidden).sum() / hidden.sum().clamp(min=1)
