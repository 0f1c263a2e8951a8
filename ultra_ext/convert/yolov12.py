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
# MLP ratios YOLO12 code bases build (N/S/M 2.0; L/X 1.2 stock v1.0, 1.5 turbo, 1.0 the seg/cls branches' argument
# mix-up), tried in this order when reading a model's ratio from its MLP widths
MLP_RATIOS = (2.0, 1.5, 1.2, 1.0)


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


def _attention_rows(net: nn.Module) -> dict[int, tuple[bool, float]]:
    """``row → (residual, mlp_ratio)`` of each stock ``A2C2f`` row with attention, read from its weights: the residual
    is on where the row has ``gamma``; the MLP ratio is the one of :data:`MLP_RATIOS` that gives every block's MLP
    width (``int(dim * ratio)``, as the block builds it).

    Reading the weights instead of the scale covers every code base at once: stock (L/X ``True, 1.2``), turbo
    (``True, 1.5``) and the official seg/cls branches (residual on at N/S/M; ``1.5, True`` at L/X, i.e. residual on
    and MLP ratio 1.0).

    Raises:
        ValueError: a block whose MLP width no ratio explains.
    """
    from ultralytics.nn.modules.block import A2C2f, ABlock

    rows = {}
    for i, layer in enumerate(net.model):
        blocks = [m for m in layer.modules() if type(m) is ABlock] if type(layer) is A2C2f else []
        if not blocks:
            continue
        widths = {(b.mlp[0].conv.in_channels, b.mlp[0].conv.out_channels) for b in blocks}
        ratio = next((r for r in MLP_RATIOS if all(int(dim * r) == hidden for dim, hidden in widths)), None)
        if ratio is None:
            raise ValueError(
                f"row {i} (A2C2f): MLP widths {sorted(widths)} (in, hidden) match none of the MLP ratios "
                f"{MLP_RATIOS}; cannot write its YAML row"
            )
        rows[i] = (layer.gamma is not None, ratio)
    return rows


def _upgrade_yaml(net: nn.Module, layout: str) -> dict:
    """The model's stock YOLO12 dict → the equivalent dict naming our classes, with each ``A2C2f`` row's residual
    and MLP ratio written out as the weights have them (:func:`_attention_rows`; rows without attention, where both
    are unused, take the model's values), so no implicit scale special case is left.

    Raises:
        ValueError: an ``A2C2f`` row whose arguments are not the stock ``[c2, a2, area]``.
    """
    d = deepcopy(net.yaml)
    extras = _attention_rows(net)
    shared = set(extras.values())
    default = shared.pop() if len(shared) == 1 else (False, 2.0)
    rows = [*(d.get("backbone") or []), *(d.get("head") or [])]
    for i, row in enumerate(rows):
        if row[2] != "A2C2f":
            continue
        if len(row[3]) != 3:
            raise ValueError(f"row {i} (A2C2f) has args {row[3]}; the upgrade knows the stock [c2, a2, area] only")
        row[2] = "ultra_ext.A2C2fTurbo" if layout == "turbo" else "ultra_ext.A2C2f"
        row[3] = [*row[3], *extras.get(i, default)]
    return d


def _check_rebuild(net: nn.Module) -> None:
    """Building the rewritten YAML gives exactly the upgraded model's parameters and buffers (names and shapes).

    Raises:
        ValueError: listing every difference.
    """
    import logging

    from ultralytics.utils import LOGGER

    from .mapping import raise_problems

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # ClassificationModel prints its summary even with verbose=False
    try:
        rebuilt = type(net)(deepcopy(net.yaml), verbose=False).state_dict()
    except Exception as e:  # parse errors, and the stride probe's forward pass
        raise ValueError(f"the upgraded YAML does not build ({type(e).__name__}: {e})") from e
    finally:
        LOGGER.setLevel(level)
    have = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    built = {k: tuple(v.shape) for k, v in rebuilt.items()}
    raise_problems(
        "the upgraded YAML does not rebuild the model",
        [
            ("in the checkpoint only", sorted(have.keys() - built.keys())),
            ("in the rebuilt model only", sorted(built.keys() - have.keys())),
            ("shapes differ", [f"{k} {have[k]} vs {built[k]}" for k in sorted(have.keys() & built.keys())
                               if have[k] != built[k]]),  # fmt: skip
        ],
    )


def upgrade_yolo12(model: nn.Module, check: bool = False) -> int:
    """Swap stock YOLO12 attention classes for ultra_ext's in ``model`` (a ``YOLO`` or an ``nn.Module``), in place;
    the model's YAML dict is rewritten to match.

    Args:
        model: the model.
        check: also rebuild the rewritten YAML and compare every parameter and buffer name and shape
            (:func:`_check_rebuild`); done for checkpoints, where the YAML is what training resumes from.

    Returns:
        The number of modules upgraded (0 when the model has no stock YOLO12 attention).
    """
    from ultralytics.engine.model import Model
    from ultralytics.nn.modules.block import AAttn

    net = model.model if isinstance(model, Model) else model  # YOLO wrapper → DetectionModel
    layout = _model_layout(net)
    if layout is None:
        return 0
    has_yaml = isinstance(getattr(net, "yaml", None), dict)
    new_yaml = _upgrade_yaml(net, layout) if has_yaml else None  # read from the stock classes, before the swap
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
    if has_yaml:
        net.yaml = new_yaml
        if check:
            _check_rebuild(net)
    return count


def _runs(model: nn.Module, where: str) -> None:
    """A 64×64 forward pass of a copy of ``model``.

    Raises:
        ValueError: it does not run (naming ``where``)."""
    try:
        with torch.no_grad():
            deepcopy(model).float().eval()(torch.zeros(1, 3, 64, 64))
    except Exception as e:
        raise ValueError(f"{where}: the upgraded model does not run ({type(e).__name__}: {e})") from e


def load_upgraded(src: str | Path) -> tuple[dict, int, str]:
    """Read a YOLO12 checkpoint file and upgrade its ``model`` and ``ema`` entries in memory.

    The file is read with torch's restricted unpickler (stock and ultra_ext classes real, nothing else run; see
    :func:`~.checkpoint.load_foreign`). Each upgraded model is rebuilt from its rewritten YAML for comparison and
    run once on a 64×64 image.

    Returns:
        ``(checkpoint dict, modules upgraded in its model entry, layout)``.

    Raises:
        ValueError: not a YOLO12 checkpoint (says what it is), no stock YOLO12 attention, an attention of neither
            layout, a YAML that does not rebuild the model, or a model that does not run.
    """
    from .checkpoint import load_foreign
    from .identify import identify
    from .unpickle import StubPickle, drop_stubbed_entries

    found = identify(src)
    if found.source != "yolov12":
        raise ValueError(
            f"{src}: {found.what}, not a YOLO12 checkpoint with stock attention classes; "
            f"`ultra-ext convert {src} -o OUT.pt` detects what a file is and converts every source we support"
        )
    ckpt = load_foreign(src, StubPickle(fallback=("ultralytics",)), "YOLO12")
    if not isinstance(ckpt, dict):
        ckpt = {"model": ckpt}
    drop_stubbed_entries(ckpt)  # e.g. a numpy best_fitness of a training checkpoint: not needed, not re-writable
    count, layout = 0, None
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), nn.Module):
            layout = layout or _model_layout(ckpt[key])
            n = upgrade_yolo12(ckpt[key], check=True)
            count = count or n
            if n:
                _runs(ckpt[key], f"{src} [{key!r}]")
    if not count:
        raise ValueError(f"{src}: no stock YOLO12 attention modules (AAttn/ABlock/A2C2f) to upgrade")
    return ckpt, count, layout


def upgrade_yolo12_checkpoint(src: str | Path, dst: str | Path) -> int:
    """Upgrade an Ultralytics checkpoint file (``model`` and ``ema`` entries, :func:`load_upgraded`); write it to
    ``dst`` only once every check passed, so a file that would not load or run is never written.

    Returns:
        Modules upgraded in the ``model`` entry (``ema`` is upgraded alike).

    Raises:
        ValueError: see :func:`load_upgraded` (nothing is written then).
    """
    ckpt, count, _ = load_upgraded(src)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
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
