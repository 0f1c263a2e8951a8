"""A YAML model's ``backbone:`` rows as a network of their own, checked for masked pre-training; their weights reach
the stock trainer in a :class:`~ultra_ext.models.backbone_checkpoint.PretrainedBackbone` file
(``yolo train model=<yaml> pretrained=<backbone.pt>``).

The backbone is exactly the first ``len(yaml["backbone"])`` layers Ultralytics builds from the YAML, so their
parameter names (``model.0.conv.weight`` ...) are the names the full model has; ``DetectionModel.load`` matches
names and shapes, which is what makes the transfer exact and leaves every neck and head tensor untouched.
"""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import nn

from ..models.backbone_checkpoint import PretrainedBackbone
from .masking import SparseMasking, mask_at, sample_patch_mask

__all__ = ["BackboneError", "BackboneView", "PretrainedBackbone", "build_backbone"]


class BackboneError(ValueError):
    """A YAML backbone that masked pre-training cannot use; the message names the layer and why."""


def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"a {tuple(out.shape)} tensor"
    return f"a {type(out).__name__}"


class BackboneView(nn.Module):
    """The backbone rows of a built Ultralytics model, run with the model's own routing (``m.f``).

    ``forward(x)`` maps (B, 3, H, W) to the list of every backbone layer's output; :attr:`levels` names the
    layers whose outputs feed the decoder (the last layer at each stride from 4 to :attr:`patch`), known after
    :meth:`inspect`.
    """

    def __init__(self, model: nn.Module, yaml_name: str = "model"):
        super().__init__()
        n = len(model.yaml.get("backbone") or [])
        if n == 0:
            raise BackboneError(f"{yaml_name}: the YAML has no `backbone:` rows to pre-train")
        self.layers = nn.ModuleList(model.model[:n])
        self.yaml = deepcopy(model.yaml)
        self.yaml_name = yaml_name
        self.patch = 0
        self.levels: list[int] = []  # layer indices feeding the decoder, fine to coarse
        self.strides: list[int] = []
        self.channels: list[int] = []

    def forward(self, x: torch.Tensor) -> list:
        outputs: list = []
        for m in self.layers:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x)
        return outputs

    def _where(self, i: int) -> str:
        m = self.layers[i]
        return f"{self.yaml_name}: backbone layer {i} ({getattr(m, 'type', type(m).__name__)})"

    def _run_probe(self, imgsz: int) -> list:
        try:
            return self(torch.zeros(1, 3, imgsz, imgsz))
        except Exception as e:
            raise BackboneError(f"{self.yaml_name}: the backbone does not run at imgsz={imgsz}: {e}") from e

    def _shapes(self, imgsz: int, outputs: list) -> list[tuple[int, int]]:
        shapes = []
        for i, out in enumerate(outputs):
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                raise BackboneError(
                    f"{self._where(i)} returns {_describe(out)}; masked pre-training needs every backbone layer to "
                    "return a (B, C, H, W) feature map, so that masked positions can be kept empty"
                )
            shapes.append(tuple(out.shape[-2:]))
        return shapes

    def _strides(self, small: int, large: int) -> list[int]:
        """Each layer's stride, from probes at two sizes: a layer whose map does not scale with the input (global
        pooling) or is not a whole, square stride of it cannot follow a patch mask."""
        at_small, at_large = self._shapes(small, self._run_probe(small)), self._shapes(large, self._run_probe(large))
        strides = []
        for i, ((h, w), (h2, w2)) in enumerate(zip(at_small, at_large)):
            if small % h or small % w or small // h != small // w or (large // h2, large // w2) != (small // h,) * 2:
                raise BackboneError(
                    f"{self._where(i)} maps a {small}×{small} image to {h}×{w} and a {large}×{large} image to "
                    f"{h2}×{w2}: not a fixed, whole stride of the input (a global pooling?), so the patch mask "
                    "cannot be aligned with it and masked pre-training cannot keep it sparse"
                )
            strides.append(small // h)
        return strides

    @torch.no_grad()
    def inspect(self, imgsz: int) -> None:
        """Check that every backbone layer can stay sparse at ``imgsz``; sets patch, levels, strides, channels.

        Probes at 128 and 256 px find the layers' strides (the patch is the deepest); the checks then run at
        ``imgsz``, including a masked probe whose masked positions must come out empty at every layer.

        Raises:
            BackboneError: a layer whose output is not a (B, C, H, W) map, or not a whole stride of the input, or
                coarser than the patch grid, or whose masked positions do not stay empty; ``imgsz`` not a multiple
                of the backbone's deepest stride.
        """
        was_training = self.training
        self.eval()
        strides = self._strides(128, 256)
        patch = max(strides)
        for i, s in enumerate(strides):
            if patch % s:
                raise BackboneError(
                    f"{self._where(i)} has stride {s}, which does not divide the deepest stride {patch}"
                )
        if imgsz % patch or imgsz // patch < 2:
            raise BackboneError(
                f"imgsz={imgsz}: masked pre-training of {self.yaml_name} hides {patch}×{patch} patches (its deepest "
                f"backbone stride), so imgsz must be a multiple of {patch} and at least {2 * patch}; "
                f"e.g. imgsz={max(2 * patch, round(imgsz / patch) * patch)}"
            )
        outputs = self._run_probe(imgsz)
        if [(imgsz // s,) * 2 for s in strides] != self._shapes(imgsz, outputs):
            raise BackboneError(
                f"{self.yaml_name}: the backbone's strides at imgsz={imgsz} differ from those at 128 and 256 px"
            )
        self._check_sparsity(imgsz, patch)
        last_at = {s: i for i, s in enumerate(strides) if s >= 4}
        self.levels = [last_at[s] for s in sorted(last_at)]
        self.strides = [strides[i] for i in self.levels]
        self.channels = [outputs[i].shape[1] for i in self.levels]
        self.patch = patch
        self.train(was_training)

    def _check_sparsity(self, imgsz: int, patch: int) -> None:
        """A random image under a checkerboard mask: every layer's masked positions must be exactly zero (a layer
        that mixes positions globally, e.g. a pooled 1×1 map broadcast back, would fail here)."""
        g = torch.Generator().manual_seed(0)
        mask = sample_patch_mask(1, (imgsz // patch, imgsz // patch), 0.5, generator=g)
        image = torch.rand(1, 3, imgsz, imgsz, generator=g) * mask_at(mask, imgsz, imgsz)
        with SparseMasking(list(self.layers)) as sparse:
            sparse.set_mask(mask)
            outputs = self(image)
        for i, out in enumerate(outputs):
            hidden = ~mask_at(mask, *out.shape[-2:]).expand_as(out)
            if out[hidden].abs().max() > 0:
                raise BackboneError(
                    f"{self._where(i)} writes into masked positions even with every sub-module's output re-masked "
                    "(a functional op after the last sub-module, e.g. a global pooling added back); masked "
                    "pre-training cannot keep this layer sparse"
                )


def build_backbone(model_yaml: str, imgsz: int) -> tuple[nn.Module, BackboneView]:
    """The full model Ultralytics builds from ``model_yaml`` (any task, any family, users' own YAMLs) and a checked
    :class:`BackboneView` of its backbone rows at ``imgsz``."""
    from ultralytics import YOLO

    model = YOLO(model_yaml, verbose=False).model
    view = BackboneView(model, yaml_name=str(model_yaml))
    view.inspect(imgsz)
    return model, view
