"""Masked image pre-training (SparK-style) for the backbone of any model YAML: ``ultra-ext pretrain``.

:mod:`.masking` keeps masked patches empty through every backbone layer, :mod:`.decoder` reconstructs them,
:mod:`.backbone` checks a YAML's backbone and builds the checkpoint the stock trainer consumes (``pretrained=``; its
class lives in :mod:`ultra_ext.models.backbone_checkpoint`), :mod:`.trainer` is the loop and the command.
"""

from .backbone import BackboneError, BackboneView, PretrainedBackbone, build_backbone
from .trainer import MaskedImagePretrainer, PretrainArgs, PretrainError

__all__ = [
    "BackboneError",
    "BackboneView",
    "MaskedImagePretrainer",
    "PretrainArgs",
    "PretrainError",
    "PretrainedBackbone",
    "build_backbone",
]
