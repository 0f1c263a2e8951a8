"""Sparse masked convolution for any YAML backbone, SparK-style: masked patches stay empty at every layer.

SparK (Tian et al., ICLR 2023) pre-trains a convolutional network as if the masked image were a sparse point set:
masked positions are zero at the input, every layer's output is multiplied by the mask at that layer's resolution
(so a convolution's bias, a residual add or a pooling never fills a masked position), and batch normalisation
computes its statistics over visible positions only. Dense convolutions then behave like submanifold sparse ones,
and the network cannot infer a masked patch from the zeros around it.

:class:`SparseMasking` does that to the backbone rows of an Ultralytics model without touching their code: a forward
hook on every sub-module re-applies the mask to each 4-D output it can align with the patch grid, and every
``BatchNorm2d`` gets a visible-only forward for the duration. Attention blocks need nothing more: their queries,
keys and values come from masked convolutions, so masked tokens carry zero values (they still take a share of each
softmax; docs/training.md says what that changes).

Shapes: ``mask`` is ``(B, 1, gh, gw)`` bool, True = visible, on the patch grid (``gh = H / patch``).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SparseMasking", "mask_at", "sample_patch_mask", "sparse_batch_norm"]


def sample_patch_mask(
    batch: int, grid: tuple[int, int], ratio: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """A random patch mask ``(batch, 1, gh, gw)`` bool (True = visible) with ``round(ratio * gh * gw)`` masked
    patches per image, at least one patch visible and one masked."""
    gh, gw = grid
    n = gh * gw
    n_masked = min(max(round(ratio * n), 1), n - 1)
    scores = torch.rand(batch, n, generator=generator)
    order = scores.argsort(dim=1)
    visible = torch.ones(batch, n, dtype=torch.bool)
    visible.scatter_(1, order[:, :n_masked], False)
    return visible.view(batch, 1, gh, gw).to(device)


def mask_at(mask: torch.Tensor, h: int, w: int) -> torch.Tensor | None:
    """``mask`` (B, 1, gh, gw) repeated to (B, 1, h, w), or None when (h, w) is not a whole multiple of the grid."""
    gh, gw = mask.shape[-2:]
    if h % gh or w % gw or h < gh or w < gw:
        return None
    return mask.repeat_interleave(h // gh, dim=2).repeat_interleave(w // gw, dim=3)


def sparse_batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``bn`` applied with statistics of the visible positions only (x: (B, C, H, W); visible: (B, 1, H, W) bool);
    masked positions come out zero. Running statistics are updated from the visible positions, as SparK's."""
    tokens = x.permute(0, 2, 3, 1)[visible[:, 0]]  # (N_visible, C)
    use_batch_stats = bn.training or bn.running_mean is None
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d does
            momentum = 1.0 / float(bn.num_batches_tracked)
    normed = F.batch_norm(
        tokens,
        bn.running_mean if not bn.training or bn.track_running_stats else None,
        bn.running_var if not bn.training or bn.track_running_stats else None,
        bn.weight,
        bn.bias,
        use_batch_stats,
        momentum,
        bn.eps,
    )
    out = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    out[visible[:, 0]] = normed.to(out.dtype)
    return out.permute(0, 3, 1, 2)


class SparseMasking:
    """Context manager: while active, ``modules`` (the backbone rows) compute as a sparse network under the mask
    set by :meth:`set_mask`.

    Example::

        with SparseMasking(backbone_rows) as sparse:
            sparse.set_mask(mask)              # (B, 1, gh, gw) bool
            features = run_backbone(image * mask_at(mask, H, W))
    """

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules
        self.mask: torch.Tensor | None = None
        self._handles: list = []
        self._patched_bn: list[nn.BatchNorm2d] = []

    def set_mask(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def _mask_output(self, module: nn.Module, inputs, output):
        if isinstance(output, torch.Tensor):
            return self._apply(output)
        if isinstance(output, (list, tuple)):  # multi-output rows (e.g. split feature lists)
            return type(output)(self._apply(t) if isinstance(t, torch.Tensor) else t for t in output)
        return output

    def _apply(self, t: torch.Tensor) -> torch.Tensor:
        mask = self.mask
        if mask is None or t.dim() != 4 or t.shape[0] != mask.shape[0]:
            return t  # token layouts inside attention, or no mask yet: their next 4-D output is masked instead
        visible = mask_at(mask, t.shape[2], t.shape[3])
        return t if visible is None else t * visible.to(t.dtype)

    def _sparse_bn_forward(self, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        visible = None if self.mask is None or x.dim() != 4 or x.shape[0] != self.mask.shape[0] else mask_at(
            self.mask, x.shape[2], x.shape[3]
        )
        if visible is None:
            return type(bn).forward(bn, x)
        return sparse_batch_norm(bn, x, visible)

    def __enter__(self) -> SparseMasking:
        for root in self.modules:
            for m in root.modules():
                self._handles.append(m.register_forward_hook(self._mask_output))
                if isinstance(m, nn.BatchNorm2d) and "forward" not in vars(m):
                    m.forward = types.MethodType(lambda bn, x: self._sparse_bn_forward(bn, x), m)
                    self._patched_bn.append(m)
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for bn in self._patched_bn:
            del bn.forward  # the class's own forward again
        self._patched_bn.clear()
        self.mask = None
