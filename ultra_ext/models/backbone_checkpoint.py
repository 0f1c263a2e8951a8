"""The checkpoint class ``ultra-ext pretrain`` saves: a YAML model's backbone rows and nothing else.

``yolo train model=<the yaml> pretrained=<backbone.pt>`` (or ``model=<backbone.pt>``: the trainer rebuilds the
YAML it carries) transfers every backbone tensor by name and shape; neck and head stay as initialised. It lives in
this layer, not in :mod:`ultra_ext.pretrain`, because the safe-loading allow-list (:mod:`ultra_ext.integration`)
names it.
"""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import nn

__all__ = ["PretrainedBackbone"]


class PretrainedBackbone(nn.Module):
    """Pre-trained backbone rows, the YAML they came from, and how they were trained.

    Args:
        layers: the first ``len(yaml["backbone"])`` layers of the built model, in order; stored as ``model`` so
            their parameter names (``model.0.conv.weight`` ...) are the full model's.
        yaml: the model dict (Ultralytics' ``model.yaml``) the layers were built from.
        record: how they were trained (method, epochs, imgsz, mask ratio, data, final loss); ``record["task"]``
            sets :attr:`task` (default ``detect``).
        stride: the backbone's deepest stride (the pre-training patch size).

    It is not a runnable network: calling it raises ``TypeError`` saying what the file is for.
    """

    def __init__(self, layers: list[nn.Module], yaml: dict, record: dict, stride: int = 32):
        super().__init__()
        self.model = nn.Sequential(*[deepcopy(m) for m in layers])
        self.yaml = deepcopy(yaml)
        self.pretrain = dict(record)
        self.task = record.get("task", "detect")
        self.names = {}
        self.stride = torch.tensor([float(stride)])

    def forward(self, *args, **kwargs):
        raise TypeError(
            "this file holds masked-image pre-trained backbone weights only (ultra-ext pretrain), not a detector: "
            "train from it with `yolo train model=<the YAML> pretrained=<this file>`"
        )

    def is_fused(self) -> bool:  # asked by DetectionModel.load
        return False
