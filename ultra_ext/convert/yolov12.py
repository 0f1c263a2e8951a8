"""Upgrade stock Ultralytics YOLO12 models and checkpoints to ultra_ext's attention, in place.

Stock ``AAttn``/``ABlock``/``A2C2f`` and ours share every parameter name and shape (v1.0 layout), so the
upgrade swaps classes without touching a single weight: the model computes the same function (to float
rounding of the attention kernel) but runs on ultra_ext's backends (SDPA by default, flash on CUDA).

The model's YAML dict is rewritten too (``A2C2f`` rows → ``ultra_ext.A2C2f``), with the L/X extras that stock
``parse_model`` appends implicitly written out, so a rebuild from ``model.yaml`` (resume, DDP) gives the same model.
"""

from __future__ import annotations

import sys
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn

__all__ = ["upgrade_yolo12", "upgrade_yolo12_checkpoint"]


def _class_map() -> dict[type, type]:
    from ultralytics.nn.modules import block as stock

    from ..nn import yolov12 as ours

    return {stock.AAttn: ours.AreaAttention, stock.ABlock: ours.AreaAttentionBlock, stock.A2C2f: ours.A2C2f}


def _upgrade_yaml(d: dict) -> dict:
    """Stock YOLO12 model dict → the equivalent dict naming our classes (no implicit L/X special case)."""
    d = deepcopy(d)
    large = d.get("scale") in {"l", "x"}
    for section in ("backbone", "head"):
        for row in d.get(section) or []:
            if row[2] == "A2C2f":
                row[2] = "ultra_ext.A2C2f"
                if large:  # stock parse_model appends (residual=True, mlp_ratio=1.2) to every A2C2f row at l/x
                    row[3] = [*row[3], True, 1.2]
    return d


def upgrade_yolo12(model: nn.Module) -> int:
    """Swap stock YOLO12 attention classes for ultra_ext's in ``model`` (a ``YOLO`` or an ``nn.Module``).

    Returns:
        The number of modules upgraded (0 when the model has no stock YOLO12 attention).
    """
    from ..nn.yolov12 import AreaAttention

    from ultralytics.engine.model import Model

    net = model.model if isinstance(model, Model) else model  # YOLO wrapper → DetectionModel
    mapping = _class_map()
    count = 0
    for m in net.modules():
        new = mapping.get(type(m))
        if new is None:
            continue
        m.__class__ = new
        if hasattr(new, "ul_parse"):  # a top-level layer: keep Ultralytics' layer bookkeeping truthful
            m.type = f"{new.__module__}.{new.__name__}"
        if isinstance(m, AreaAttention):  # attributes stock AAttn lacks
            m.attn_backend = None  # follow the process-wide backend
            m.last_backend = None
        count += 1
    if count and isinstance(getattr(net, "yaml", None), dict):
        net.yaml = _upgrade_yaml(net.yaml)
    return count


def upgrade_yolo12_checkpoint(src: str | Path, dst: str | Path) -> int:
    """Upgrade an Ultralytics checkpoint file (``model`` and ``ema`` entries); write it to ``dst``.

    Returns:
        Modules upgraded in the ``model`` entry (``ema`` is upgraded alike).

    Raises:
        ValueError: the checkpoint holds no stock YOLO12 attention.
    """
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    count = 0
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), nn.Module):
            n = upgrade_yolo12(ckpt[key])
            count = count or n
    if not count:
        raise ValueError(f"{src}: no stock YOLO12 attention modules (AAttn/ABlock/A2C2f) to upgrade")
    torch.save(ckpt, dst)
    return count


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext upgrade SRC DST``: a stock YOLO12 checkpoint with our attention classes, weights unchanged."""
    import argparse

    parser = argparse.ArgumentParser(prog="ultra-ext upgrade", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("src", help="stock Ultralytics YOLO12 checkpoint (.pt)")
    parser.add_argument("dst", help="upgraded checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    from ..integration import activate

    activate()
    try:
        count = upgrade_yolo12_checkpoint(args.src, args.dst)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"upgraded {count} modules: {args.src} → {args.dst}")
    return 0
