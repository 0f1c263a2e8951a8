"""Published PST checkpoints → ultra_ext ``yolov12-pst`` models (an Ultralytics ``DetectionModel``).

The PST release (inlmouse/PyramidSparseTransformer, inlmouse/P2HCT; Google-Drive weights for N/S/M) is a fork of
Ultralytics 8.3.105. Its checkpoints are ordinary Ultralytics checkpoints (``{'model'|'ema': DetectionModel, ...}``)
whose PST layers are the fork's classes ``ultralytics.nn.modules.block.PST``, ``PSAttnBlock`` and ``PSAttn``: stock
Ultralytics lacks them, so ``YOLO(path)`` fails. :func:`load_pst_checkpoint` unpickles with the installed
Ultralytics and replaces only the classes that do not resolve there by weight-holding stubs (never importing the
fork), then :func:`pst_to_ultra_ext` builds ``yolov12-pst.yaml`` at the checkpoint's scale and class count.

The published topology (the fork's ``yolo11-pst.yaml``, really a YOLO12 backbone) is our ``yolov12-pst.yaml`` and
our PST keeps the published attribute names, so the keys are identical — except our buffer
``attn.gate_trained``, which the converter sets to 0. Every key and shape is still checked: anything of theirs we
cannot place, anything of ours left empty, or any shape mismatch is one ``ValueError`` that lists them.

**The gate of converted weights.** The published models trained coarse-only (``topk = 0``), so the fine-stage gate
never received a gradient: it ships with its random initialisation, and ``gate_trained = 0`` records that. Our
default gate policy ``"auto"`` therefore blends coarse and fine outputs with a fixed 0.5 when the fine stage is on
(``topk = 8`` in eval, our default). To reproduce the published ``k = 8`` numbers (which used the stored random gate,
without the fork's Gumbel noise, which we never add at inference) switch to the stored gate::

    from ultra_ext.nn import set_pst_options
    set_pst_options(model, topk=8, gate="learned")

``gate="fixed"`` always blends 0.5; ``topk=0`` gives the coarse-only model exactly as trained. The mode is a module
attribute, so it is saved with the converted checkpoint (``ultra-ext convert-pst --gate learned``); a model rebuilt
from the YAML (training) starts again from ``"auto"``.

Example:
    >>> from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint
    >>> from ultra_ext.convert.pst import load_pst_checkpoint, pst_to_ultra_ext
    >>> sd, info = load_pst_checkpoint("yolo11n-pst.pt")  # doctest: +SKIP
    >>> model = pst_to_ultra_ext(sd, names=info["names"], gate="learned")  # doctest: +SKIP
    >>> save_ultralytics_checkpoint(model, "yolov12n-pst-coco.pt", names=info["names"])  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import build_from_yaml, clean_state_dict, copy_mapped, load_foreign
from .mapping import MAX_LISTED, check_layout, raise_problems, scale_from_width
from .unpickle import StubPickle

__all__ = [
    "SCALES",
    "PSTConversion",
    "build_yolov12_pst",
    "infer_scale",
    "load_pst_checkpoint",
    "map_pst_state_dict",
    "pst_to_ultra_ext",
]

SCALES = ("n", "s", "m", "l", "x")  # n/s/m published; l/x are our extension of yolov12-pst.yaml
_STEM = "model.0.conv.weight"  # stem Conv: 64 × width multiple output channels
_STEM_WIDTH = {16: "n", 32: "s", 64: "m", 96: "x"}  # 64 is m or l: told apart by depth (_DEPTH_KEY)
_DEPTH_KEY = "model.2.m.1.cv1.conv.weight"  # second bottleneck of row 2 (C3k2 × 2): only at depth 1.0 (l, x)
_HEAD = 21  # Detect row of yolov12-pst.yaml
_CLS_OUT = f"model.{_HEAD}.cv3.0.2.weight"  # last cls conv of the first level: (nc, c3, 1, 1)
_ROW_TYPES = {11: {"PST"}, 14: {"PST"}, _HEAD: {"Detect"}}  # rows the conversion relies on (guards against YAML drift)
_GATE_TRAINED = "gate_trained"  # our buffer; not in the published state dict
_STUB_HINT = (
    "a class of the PST fork of Ultralytics 8.3.105 that the installed Ultralytics lacks; it holds weights only: "
    "convert the checkpoint with ultra_ext.convert.pst.pst_to_ultra_ext (or `ultra-ext convert-pst`)"
)


# ------------------------------------------------------------------------------------------------ loading
def _state_dict_of(obj, where: str) -> tuple[dict[str, torch.Tensor], nn.Module | None]:
    """The model's state dict (and the model, if pickled whole) from an Ultralytics checkpoint, a module or a dict."""
    if isinstance(obj, nn.Module):
        return obj.state_dict(), obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    if isinstance(obj, dict):
        for key in ("ema", "model"):  # Ultralytics evaluates ckpt['ema'] when present, else ckpt['model']
            if obj.get(key) is not None:
                return _state_dict_of(obj[key], where)
        raise ValueError(
            f"{where}: not a PST checkpoint: a dict without a model (keys: {sorted(map(str, obj))[:MAX_LISTED]}); "
            f"expected ckpt['model'] or ckpt['ema'] to be a model or a state dict"
        )
    raise ValueError(f"{where}: not a PST checkpoint: it holds a {type(obj).__name__}, not a model or a dict")


def _check_pst(sd: dict[str, torch.Tensor], where: str) -> None:
    """Refuse state dicts that are clearly something else, with a hint about what they are."""
    if not any(k.startswith("model.") for k in sd):
        prefixes = sorted({k.split(".", 1)[0] for k in sd})[:MAX_LISTED]
        raise ValueError(f"{where}: not an Ultralytics PST checkpoint: no 'model.*' keys (prefixes: {prefixes})")
    if not any(".attnlayer_0.attn.gate_conv1d." in k for k in sd):
        raise ValueError(
            f"{where}: not a PST checkpoint: no PST layer ('*.attnlayer_0.attn.*' keys); a stock Ultralytics "
            f"checkpoint loads with YOLO(path)"
        )


def load_pst_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the weights of a published PST checkpoint without the fork's code.

    Classes of ``ultralytics.*`` that the installed Ultralytics lacks (the fork's ``PST``, ``PSAttnBlock``,
    ``PSAttn``, or anything else removed since 8.3.105) become stubs; vetted stock classes are used as they are
    (the read is restricted: nothing the file names runs). Also accepts a pickled model, a plain state dict or
    ``{'model': state_dict}``.

    Args:
        path: checkpoint file.

    Returns:
        ``(state_dict, info)``: the state dict (``model.<row>.*``; floating tensors float32 on the CPU, integer ones
        unchanged; a DataParallel ``module.`` prefix removed) and ``info`` with ``nc`` (from the Detect head) and
        ``scale`` (from the stem width and depth), each ``None`` where not derivable, and where the file has them
        ``names`` (dict), ``train_args`` (dict), ``version`` and ``date``; ``stubbed`` lists the classes that
        were replaced by stubs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is unreadable or holds no PST weights.
    """
    stubs = StubPickle(fallback=("ultralytics",), hint=_STUB_HINT)
    obj = load_foreign(path, stubs, "PST")
    sd, model = _state_dict_of(obj, str(path))
    sd = clean_state_dict(sd)
    _check_pst(sd, str(path))

    info: dict = {"nc": None, "scale": None, "stubbed": list(stubs.stubbed)}
    for key, read in (("nc", _head_nc), ("scale", infer_scale)):
        try:
            info[key] = read(sd)
        except ValueError:  # not derivable: pst_to_ultra_ext reports it with the full list of problems
            pass
    names = getattr(model, "names", None)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if isinstance(names, dict) and names:
        info["names"] = {int(k): str(v) for k, v in names.items()}
    if isinstance(obj, dict):
        args = obj.get("train_args")
        if args is not None:
            info["train_args"] = dict(vars(args)) if not isinstance(args, dict) else dict(args)
        info.update({k: obj[k] for k in ("version", "date") if obj.get(k) is not None})
    return sd, info


def _head_nc(sd: dict[str, torch.Tensor]) -> int:
    if _CLS_OUT not in sd:
        raise ValueError(f"cannot read the class count: no {_CLS_OUT} (the Detect head of the published topology)")
    return int(sd[_CLS_OUT].shape[0])


def infer_scale(state_dict: dict[str, torch.Tensor]) -> str:
    """The ``yolov12-pst`` scale of a state dict: stem width 16/32/64/96 → n/s/m-or-l/x; 64 with a second row-2
    bottleneck (depth 1.0) → l."""
    if _STEM in state_dict and int(state_dict[_STEM].shape[0]) == 64:  # m and l share the stem width
        return "l" if _DEPTH_KEY in state_dict else "m"
    return scale_from_width(state_dict, (_STEM,), _STEM_WIDTH, "yolov12-pst")


# ------------------------------------------------------------------------------------------------ mapping
@dataclass
class PSTConversion:
    """Where every published tensor goes.

    Attributes:
        mapping (dict[str, str]): published key → our key (identical names in the published topology).
        defaults (dict[str, float]): our keys the checkpoint has no value for → the value they get
            (``gate_trained`` = 0: the published gate was never trained).
        nc (int): classes, from the Detect head.
    """

    mapping: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    nc: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.mapping)} tensors converted, nc={self.nc}; {len(self.defaults)} gate_trained buffers set to 0 "
            f"(the published gate was never trained)"
        )


def map_pst_state_dict(state_dict: dict[str, torch.Tensor], model: nn.Module) -> PSTConversion:
    """Plan the conversion of a published PST state dict into ``model`` (a ``yolov12-pst`` ``DetectionModel``).

    Published keys map to the same names in ours; our ``*.attn.gate_trained`` buffers, which the fork does not
    have, default to 0 (a state dict that has them — one of ours — keeps its values).

    Raises:
        ValueError: one message listing every published key with no place in ours, every key of ours left empty
            and every shape mismatch.
    """
    scale = (getattr(model, "yaml", None) or {}).get("scale", "?")
    check_layout(model, _ROW_TYPES, f"yolov12{scale}-pst.yaml")
    ours = model.state_dict()
    plan = PSTConversion(nc=_head_nc(state_dict))
    unmapped, shapes = [], []
    for key, value in state_dict.items():
        if key not in ours:
            unmapped.append(key)
        elif tuple(value.shape) != tuple(ours[key].shape):
            shapes.append(f"{key} {tuple(value.shape)} → {tuple(ours[key].shape)}")
        else:
            plan.mapping[key] = key
    unfilled = []
    for key in ours:
        if key in state_dict:
            continue
        if key.rsplit(".", 1)[-1] == _GATE_TRAINED:
            plan.defaults[key] = 0.0
        else:
            unfilled.append(key)
    raise_problems(
        f"published PST state dict does not fit yolov12{scale}-pst.yaml (nc={plan.nc})",
        [
            (f"{len(unmapped)} published keys have no place in ours", unmapped),
            (f"{len(unfilled)} keys of our model receive nothing", unfilled),
            (f"{len(shapes)} shape mismatches (published → ours)", shapes),
        ],
    )
    return plan


# ------------------------------------------------------------------------------------------------ building
def build_yolov12_pst(scale: str, nc: int = 80) -> nn.Module:
    """Our ``yolov12<scale>-pst.yaml`` model (the published topology) with ``nc`` classes."""
    if scale not in SCALES:
        raise ValueError(f"unknown yolov12-pst scale {scale!r}; expected one of {', '.join(SCALES)}")
    return build_from_yaml(f"yolov12{scale}-pst.yaml", nc=nc)


def pst_to_ultra_ext(
    state_dict: dict[str, torch.Tensor],
    scale: str | None = None,
    names: dict[int, str] | list[str] | None = None,
    gate: str | None = None,
    verbose: bool = True,
) -> nn.Module:
    """Convert a published PST state dict to our ``yolov12-pst`` ``DetectionModel``.

    Args:
        state_dict: published state dict (from :func:`load_pst_checkpoint`, or the fork's ``model.state_dict()``).
        scale: ``n``/``s``/``m``/``l``/``x``; ``None`` reads it from the stem. A scale that disagrees with the
            checkpoint is an error.
        names: class names (dict or list of ``nc``); default: the model's placeholder names.
        gate: gate policy to set (``"auto"``, ``"learned"``, ``"fixed"``); ``None`` keeps ``"auto"``, which blends
            0.5 for the untrained published gate. ``"learned"`` reproduces the published ``k = 8`` numbers.
        verbose: log what was converted.

    Returns:
        The model in eval mode, float32, weights and BN statistics copied, ``gate_trained`` 0.

    Raises:
        ValueError: unknown scale, scale mismatch, names that do not match ``nc``, or a state dict that does not
            fit (see :func:`map_pst_state_dict`).
    """
    from ..nn.pst import set_pst_options

    if scale is not None and scale not in SCALES:
        raise ValueError(f"unknown yolov12-pst scale {scale!r}; expected one of {', '.join(SCALES)}")
    found = infer_scale(state_dict)
    if scale is not None and scale != found:
        raise ValueError(
            f"the checkpoint is yolov12{found}-pst (stem width and depth), not the requested scale {scale!r}"
        )
    nc = _head_nc(state_dict)
    if names is not None:
        names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
        if len(names) != nc:
            raise ValueError(f"{len(names)} class names for a checkpoint with {nc} classes")
    model = build_yolov12_pst(found, nc)
    plan = map_pst_state_dict(state_dict, model)
    copy_mapped(model, state_dict, plan.mapping, plan.defaults)
    if names is not None:
        model.names = names
    if gate is not None:
        set_pst_options(model, gate=gate)
    if verbose:
        from ultralytics.utils import LOGGER

        policy = gate or "auto (fixed 0.5 blend for the untrained gate; gate='learned' reproduces published k=8)"
        LOGGER.info(f"PST yolov12{found}-pst published → ultra_ext: {plan.summary()}; gate policy {policy}")
    return model


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext convert-pst CKPT -o OUT``: a published PST checkpoint as our yolov12-pst Ultralytics checkpoint."""
    import argparse

    from .checkpoint import save_ultralytics_checkpoint

    parser = argparse.ArgumentParser(
        prog="ultra-ext convert-pst",
        description="Convert a published PST checkpoint (an Ultralytics 8.3.105 fork) to our yolov12-pst model, saved "
        "for YOLO(path). The published gate was never trained (coarse-only training), so the default gate policy "
        "'auto' blends coarse and fine outputs 0.5 when the fine stage is on (topk 8 at inference); '--gate learned' "
        "uses the stored gate and reproduces the published k=8 numbers.",
    )
    parser.add_argument("checkpoint", help="published PST checkpoint (.pt)")
    parser.add_argument("-o", "--output", required=True, help="Ultralytics checkpoint to write (.pt)")
    parser.add_argument("--scale", choices=SCALES, help="default: read from the checkpoint")
    parser.add_argument(
        "--gate",
        choices=("auto", "learned", "fixed"),
        default="auto",
        help="fine-stage gate policy saved with the model: auto (default; untrained gate → fixed 0.5 blend), "
        "learned (the stored, never-trained gate: reproduces the published k=8 numbers), fixed (always 0.5)",
    )
    args = parser.parse_args(argv)
    try:
        sd, info = load_pst_checkpoint(args.checkpoint)
        model = pst_to_ultra_ext(sd, args.scale, names=info.get("names"), gate=args.gate)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_ultralytics_checkpoint(model, args.output, names=info.get("names"), source=Path(args.checkpoint).name)
    cfg = model.yaml
    model_name = f"yolov12{cfg['scale']}-pst"
    print(f"converted {args.checkpoint} → {args.output} ({model_name}, nc={cfg['nc']}, gate={args.gate})")
    return 0
