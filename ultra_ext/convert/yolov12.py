"""Upgrade YOLO12 models and checkpoints that load as stock Ultralytics classes to ultra_ext's attention, in place.

Two layouts unpickle into stock ``AAttn``/``ABlock``/``A2C2f`` objects:

* **v1.0** (stock Ultralytics ``yolo12*.pt``): ``AAttn`` holds ``qkv``, ``proj``, ``pe`` (7×7). Ours
  (:class:`~ultra_ext.nn.yolov12.AreaAttention`, ``A2C2f``) have every parameter name and shape.
* **turbo** (the YOLOv12 authors' released weights, trained with their fork): ``AAttn`` holds ``qk``, ``v``, ``proj``,
  ``pe`` (5×5). Stock Ultralytics cannot run them (``'AAttn' object has no attribute 'qkv'``); ours
  (:class:`~ultra_ext.nn.yolov12.AreaAttentionTurbo`, ``A2C2fTurbo``) have the same state dict.

The layout is read from each attention module's submodules; a model must use one. The upgrade swaps classes without
touching a single weight: the model computes the same function (to float rounding of the attention kernel) but runs
on ultra_ext's backends (SDPA by default, flash on CUDA). The model's YAML dict is rewritten too (``A2C2f`` rows →
``ultra_ext.A2C2f`` or ``ultra_ext.A2C2fTurbo``), with the L/X extras that ``parse_model`` appends implicitly written
out, so a rebuild from ``model.yaml`` (resume, DDP) gives the same model. A checkpoint file is written only after the
upgraded model has run a forward pass.
"""

from __future__ import annotations

import sys
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn

__all__ = ["LAYOUTS", "attention_layout", "upgrade_yolo12", "upgrade_yolo12_checkpoint"]

# layout → the attention submodules that identify it
LAYOUTS = {"v1.0": ("qkv", "proj", "pe"), "turbo": ("qk", "v", "proj", "pe")}
# layout → the MLP ratio stock parse_model (v1.0) and the authors' fork (turbo) give every A2C2f at scales l and x
L_X_MLP_RATIO = {"v1.0": 1.2, "turbo": 1.5}


def attention_layout(attn: nn.Module) -> str:
    """``"v1.0"`` or ``"turbo"``: which YOLO12 attention an ``AAttn`` object is, read from its submodules.

    Raises:
        ValueError: neither layout (naming the submodules found).
    """
    names = tuple(name for name, _ in attn.named_children())
    for layout, expected in LAYOUTS.items():
        if set(names) == set(expected):
            return layout
    raise ValueError(
        f"an AAttn module with submodules {list(names)} is neither YOLO12 layout "
        f"({'; '.join(f'{k}: {list(v)}' for k, v in LAYOUTS.items())}); cannot upgrade it"
    )


def _class_map(layout: str) -> dict[type, type]:
    from ultralytics.nn.modules import block as stock

    from ..nn import yolov12 as ours

    if layout == "turbo":
        return {
            stock.AAttn: ours.AreaAttentionTurbo,
            stock.ABlock: ours.AreaAttentionBlockTurbo,
            stock.A2C2f: ours.A2C2fTurbo,
        }
    return {stock.AAttn: ours.AreaAttention, stock.ABlock: ours.AreaAttentionBlock, stock.A2C2f: ours.A2C2f}


def _model_layout(net: nn.Module) -> str | None:
    """The one attention layout of ``net``'s stock ``AAttn`` modules; ``None`` when it has none."""
    from ultralytics.nn.modules.block import AAttn

    layouts = {attention_layout(m) for m in net.modules() if type(m) is AAttn}
    if len(layouts) > 1:
        raise ValueError(f"the model mixes YOLO12 attention layouts {sorted(layouts)}; cannot upgrade it")
    return layouts.pop() if layouts else None


def _upgrade_yaml(d: dict, layout: str) -> dict:
    """Stock YOLO12 model dict → the equivalent dict naming our classes (no implicit L/X special case)."""
    d = deepcopy(d)
    large = d.get("scale") in {"l", "x"}
    for section in ("backbone", "head"):
        for row in d.get(section) or []:
            if row[2] == "A2C2f":
                row[2] = "ultra_ext.A2C2fTurbo" if layout == "turbo" else "ultra_ext.A2C2f"
                if large:  # parse_model appends (residual=True, mlp_ratio) to every A2C2f row at l/x
                    row[3] = [*row[3], True, L_X_MLP_RATIO[layout]]
    return d


def upgrade_yolo12(model: nn.Module) -> int:
    """Swap stock YOLO12 attention classes for ultra_ext's in ``model`` (a ``YOLO`` or an ``nn.Module``).

    Returns:
        The number of modules upgraded (0 when the model has no stock YOLO12 attention).
    """
    from ultralytics.engine.model import Model
    from ultralytics.nn.modules.block import AAttn

    net = model.model if isinstance(model, Model) else model  # YOLO wrapper → DetectionModel
    layout = _model_layout(net)
    if layout is None:
        return 0
    mapping = _class_map(layout)
    attention_cls = mapping[AAttn]
    count = 0
    for m in net.modules():
        new = mapping.get(type(m))
        if new is None:
            continue
        m.__class__ = new
        if hasattr(new, "ul_parse"):  # a top-level layer: keep Ultralytics' layer bookkeeping truthful
            m.type = f"{new.__module__}.{new.__name__}"
        if new is attention_cls:  # attributes stock AAttn lacks
            m.attn_backend = None  # follow the process-wide backend
            m.last_backend = None
        count += 1
    if count and isinstance(getattr(net, "yaml", None), dict):
        net.yaml = _upgrade_yaml(net.yaml, layout)
    return count


def upgrade_yolo12_checkpoint(src: str | Path, dst: str | Path) -> int:
    """Upgrade an Ultralytics checkpoint file (``model`` and ``ema`` entries); write it to ``dst`` once the upgraded
    model has run a forward pass (a 64×64 image), so a file that would not run is never written.

    Returns:
        Modules upgraded in the ``model`` entry (``ema`` is upgraded alike).

    Raises:
        ValueError: the checkpoint holds no stock YOLO12 attention, an attention of neither layout, or a model that
            does not run after the upgrade (nothing is written then).
    """
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    count = 0
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), nn.Module):
            n = upgrade_yolo12(ckpt[key])
            count = count or n
    if not count:
        raise ValueError(f"{src}: no stock YOLO12 attention modules (AAttn/ABlock/A2C2f) to upgrade")
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), nn.Module):
            try:
                with torch.no_grad():
                    deepcopy(ckpt[key]).float().eval()(torch.zeros(1, 3, 64, 64))
            except Exception as e:
                raise ValueError(
                    f"{src}: the upgraded {key!r} model does not run ({type(e).__name__}: {e}); "
                    f"nothing written to {dst}"
                ) from e
    torch.save(ckpt, dst)
    return count


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext upgrade SRC DST``: a YOLO12 checkpoint (stock v1.0, or the authors' released turbo weights) with our
    attention classes, weights unchanged."""
    import argparse

    about = " ".join(main.__doc__.split(": ", 1)[1].split())
    parser = argparse.ArgumentParser(prog="ultra-ext upgrade", description=about)
    parser.add_argument("src", help="YOLO12 checkpoint (.pt): stock Ultralytics yolo12*.pt or a released turbo file")
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
