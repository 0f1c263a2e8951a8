"""Official Gold-YOLO checkpoints → ultra_ext Gold-YOLO models (an Ultralytics ``DetectionModel``).

The official checkpoints (huawei-noah/Efficient-Computing, ``Detection/Gold-YOLO``, a YOLOv6 fork) pickle whole
modules whose classes live in ``yolov6.*``, ``gold_yolo.*`` and ``mmcv.*``. :func:`load_official_checkpoint` reads
them without that code: those classes are replaced by generated ``nn.Module`` stubs while unpickling, which is
enough to call ``state_dict()``. :func:`official_to_ultra_ext` then builds ``goldyolo-<scale>.yaml`` with the
checkpoint's class count and box bins and moves every official tensor to its place by the explicit rules of
:func:`map_official_state_dict`; anything it cannot place, anything of ours left empty, or any shape mismatch is
one ``ValueError`` that lists them.

Two things a converter must know about the official head:

* **Bins.** ``reg_preds`` has ``4·(reg_max+1)`` channels: 4 (no DFL, the plain N config) or 68 (17 bins), which
  become our YAML ``reg_max`` 1 or 17. The DFL projection (``proj``, ``proj_conv``) is the fixed ramp ``0..16``,
  which Ultralytics' ``DFL`` holds already; it is checked, not copied.
* **Distilled N/S checkpoints** (the released N and S weights) carry two box branches: ``reg_preds_lrtb``
  (4 channels, direct distances) is what the official inference decodes, and ``reg_preds`` (68 channels) is an
  auxiliary DFL branch used only by the distillation loss. The default conversion follows the official
  inference (``reg_max`` 1, auxiliary branch dropped); ``prefer_dfl=True`` keeps the DFL branch instead (``reg_max``
  17, a different — training-only — predictor).

Anchor-based branches (``*_ab``, "fuse_ab" training) are dropped; their anchor-free twins (``*_af``) convert like
the plain ``cls_preds``/``reg_preds``. Deployed (re-parameterised, ``rbr_reparam``) checkpoints are refused: convert
the training-time checkpoint, then ``model.fuse()`` gives the deployed graph.

Example:
    >>> from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint
    >>> from ultra_ext.convert.goldyolo import load_official_checkpoint, official_to_ultra_ext
    >>> sd = load_official_checkpoint("Gold_n_dist.pt")  # doctest: +SKIP
    >>> model = official_to_ultra_ext(sd, "n")  # doctest: +SKIP
    >>> save_ultralytics_checkpoint(model, "goldyolo-n-coco.pt")  # then YOLO("goldyolo-n-coco.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import build_from_yaml, clean_state_dict, copy_mapped, load_foreign
from .mapping import MAX_LISTED, check_layout, listed, raise_problems, scale_from_width
from .unpickle import OfficialStub, StubPickle

__all__ = [
    "SCALES",
    "ConversionPlan",
    "OfficialStub",
    "build_goldyolo",
    "infer_scale",
    "load_official_checkpoint",
    "map_official_state_dict",
    "official_to_ultra_ext",
]

SCALES = ("n", "s", "m", "l")
_STEM_WIDTH = {16: "n", 32: "s", 48: "m", 64: "l"}  # stem output channels (64 × width multiple) → scale
_STUB_PACKAGES = ("yolov6", "gold_yolo", "mmcv")  # top-level packages of the official code and its dependency


# ------------------------------------------------------------------------------------------------ loading
def _stub_pickle() -> StubPickle:
    """Pickle stand-in for one load: the official packages (and their mmcv dependency) always become stubs."""
    return StubPickle(
        always=_STUB_PACKAGES,
        hint="a class of the official Gold-YOLO code; it holds weights only: convert it with "
        "ultra_ext.convert.goldyolo.official_to_ultra_ext",
    )


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _extract_state_dict(obj, where: str) -> dict[str, torch.Tensor]:
    """The model's state dict from whatever a checkpoint file holds (YOLOv6 checkpoint, module or state dict)."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        # YOLOv6 evaluates ckpt['ema'] when present (training checkpoints), else ckpt['model'] (released weights)
        for key in ("ema", "model", "state_dict"):
            if isinstance(obj.get(key), nn.Module) or _is_state_dict(obj.get(key)):
                return _extract_state_dict(obj[key], where)
        raise ValueError(
            f"{where}: not a Gold-YOLO checkpoint: a dict without a model "
            f"(keys: {sorted(map(str, obj))[:MAX_LISTED]}); expected ckpt['model'] or ckpt['ema'] to be a module "
            f"or a state dict"
        )
    raise ValueError(f"{where}: not a Gold-YOLO checkpoint: it holds a {type(obj).__name__}, not a model or a dict")


def _check_gold_yolo(sd: dict[str, torch.Tensor], where: str) -> None:
    """Refuse state dicts that are clearly something else, with a hint about what they are."""
    prefixes = sorted({k.split(".", 1)[0] for k in sd})
    if any(k.startswith("model.") for k in sd):
        raise ValueError(
            f"{where}: not an official Gold-YOLO checkpoint: its keys start with 'model.' (an Ultralytics "
            f"checkpoint?); load Ultralytics checkpoints with YOLO(path)"
        )
    if not any(k.startswith("neck.low_IFM.") for k in sd) or not any(k.startswith("detect.") for k in sd):
        hint = " (a YOLOv6 checkpoint without the GD neck?)" if "backbone" in prefixes and "neck" in prefixes else ""
        raise ValueError(
            f"{where}: not a Gold-YOLO checkpoint{hint}: no 'neck.low_IFM.*' or 'detect.*' keys; "
            f"top-level prefixes: {prefixes[:MAX_LISTED]}"
        )


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the model weights of an official Gold-YOLO checkpoint, without the official code.

    Accepts the official ``.pt`` files (a pickled YOLOv6-style dict whose ``ema`` or ``model`` entry is the whole
    module, usually fp16), a pickled module, a plain state dict, or ``{'model': state_dict}``. Classes of
    ``yolov6``, ``gold_yolo`` and ``mmcv`` become :class:`OfficialStub` subclasses, as does anything else outside
    the vetted torch / Ultralytics classes: the read is restricted, nothing the file names runs.

    Args:
        path: checkpoint file.

    Returns:
        The official state dict (``backbone.*``, ``neck.*``, ``detect.*``): floating tensors as float32 on the CPU,
        integer ones (``num_batches_tracked``) unchanged. A DataParallel ``module.`` prefix is removed.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is unreadable or holds no Gold-YOLO weights.
    """
    obj = load_foreign(path, _stub_pickle(), "Gold-YOLO")
    sd = clean_state_dict(_extract_state_dict(obj, str(path)))
    _check_gold_yolo(sd, str(path))
    return sd


def infer_scale(state_dict: dict[str, torch.Tensor]) -> str:
    """The Gold-YOLO scale (``n``/``s``/``m``/``l``) of an official state dict, from the stem's output width."""
    stems = ("rbr_dense.conv.weight", "block.conv.weight", "rbr_reparam.weight")  # RepVGG, ConvWrapper, deployed
    return scale_from_width(state_dict, tuple(f"backbone.stem.{name}" for name in stems), _STEM_WIDTH, "Gold-YOLO")


# ------------------------------------------------------------------------------------------------ key rules
# Official module (prefix) → our YAML row and the rule that renames the keys below it. Rows follow the
# goldyolo-<scale>.yaml files; _ROW_TYPES checks the built model agrees, so a YAML change cannot silently shift them.
_LAYOUT: tuple[tuple[str, int, str], ...] = (
    ("backbone.stem", 0, "block"),
    ("backbone.ERBlock_2.0", 1, "block"),  # stride-2 downsampling block
    ("backbone.ERBlock_2.1", 2, "stage"),  # RepBlock (N/S) or BepC3 (M/L) → B2
    ("backbone.ERBlock_3.0", 3, "block"),
    ("backbone.ERBlock_3.1", 4, "stage"),  # → B3
    ("backbone.ERBlock_4.0", 5, "block"),
    ("backbone.ERBlock_4.1", 6, "stage"),  # → B4
    ("backbone.ERBlock_5.0", 7, "block"),
    ("backbone.ERBlock_5.1", 8, "stage"),
    ("backbone.ERBlock_5.2", 9, "same"),  # SimCSPSPPF cv1..cv7 (N/S), SimSPPF / SPPF cv1, cv2 (M/L) → B5
    ("neck.low_IFM", 11, "low_fusion"),  # row 10 (LowStageAlign) has no weights
    ("neck.reduce_layer_c5", 12, "same"),
    ("neck.LAF_p4", 13, "same"),  # cv1, cv_fuse
    ("neck.Inject_p4", 14, "same"),  # local_embedding, global_embedding, global_act (.conv, .bn)
    ("neck.Rep_p4", 15, "stage"),
    ("neck.reduce_layer_p4", 16, "same"),
    ("neck.LAF_p3", 17, "same"),
    ("neck.Inject_p3", 18, "same"),
    ("neck.Rep_p3", 19, "stage"),  # → P3
    ("neck.high_IFM", 21, "high_fusion"),  # row 20 (HighStageAlign) has no weights
    ("neck.conv_1x1_n", 21, "high_out"),
    ("neck.Inject_n4", 23, "same"),  # row 22 (PoolConcat) has no weights
    ("neck.Rep_n4", 24, "stage"),  # → N4
    ("neck.Inject_n5", 26, "same"),  # row 25 (PoolConcat) has no weights
    ("neck.Rep_n5", 27, "stage"),  # → N5
    ("detect", 28, "head"),
)
_ROW_TYPES = {
    0: {"RepVGGBlock", "BiasConv"},
    1: {"RepVGGBlock", "BiasConv"},
    2: {"Sequential", "RepVGGBlock", "BepC3"},
    9: {"SimCSPSPPF", "SimSPPF", "SPPF"},
    11: {"LowStageFusion"},
    12: {"SimConv"},
    13: {"LocalFusion3"},
    14: {"Injection"},
    15: {"Sequential", "RepVGGBlock", "BepC3"},
    16: {"SimConv"},
    17: {"LocalFusion3"},
    18: {"Injection"},
    21: {"HighStageFusion"},
    23: {"Injection"},
    26: {"Injection"},
    28: {"EfficientDecoupledDetect"},
}
_DFL_KEY = "model.28.dfl.conv.weight"  # our fixed DFL ramp 0..reg_max-1: the official proj, checked not copied

_REASON_PROJ = "DFL projection: fixed ramp 0..16, held by our DFL (checked)"
_REASON_AB = "anchor-based branch of fuse_ab training, unused at inference"
_REASON_AUX_DFL = "auxiliary DFL branch of distillation training (official inference decodes reg_preds_lrtb)"
_REASON_LRTB = "distillation LRTB branch (converted the DFL branch instead: prefer_dfl=True)"


class _Unmapped(Exception):
    """A key below a known module that no rule translates."""


def _block(rest: str) -> str:
    """RepVGG (``rbr_*``) → RepVGGBlock (``conv1``, ``conv2``, ``bn``); ConvWrapper (``block.*``) → BiasConv."""
    for official, ours in (("rbr_dense.", "conv1."), ("rbr_1x1.", "conv2."), ("rbr_identity.", "bn."), ("block.", "")):
        if rest.startswith(official):
            return ours + rest[len(official) :]
    raise _Unmapped


def _bottle_rep(rest: str) -> str:
    """BottleRep: ``alpha`` and two basic blocks ``conv1``/``conv2`` (same names in ours)."""
    if rest == "alpha":
        return rest
    m = re.fullmatch(r"(conv[12])\.(.+)", rest)
    if not m:
        raise _Unmapped
    return f"{m[1]}.{_block(m[2])}"


def _stage(rest: str, layer: nn.Module) -> str:
    """A neck/backbone stage: RepBlock (N/S) or BepC3 (M/L).

    RepBlock ``conv1``, ``block.j`` → our stacked blocks ``0``, ``j+1``; BepC3 ``cv1..3`` unchanged, its BottleReps
    ``m.conv1``, ``m.block.j`` → ``m.0``, ``m.j+1``.
    """
    first = "0." if isinstance(layer, nn.Sequential) else ""  # a row with n > 1 is an nn.Sequential of blocks
    if m := re.fullmatch(r"conv1\.(.+)", rest):  # RepBlock's first block
        return first + _block(m[1])
    if m := re.fullmatch(r"block\.(\d+)\.(.+)", rest):  # RepBlock's remaining blocks
        return f"{int(m[1]) + 1}.{_block(m[2])}"
    if m := re.fullmatch(r"(cv[123])\.((?:conv|bn)\..+)", rest):  # BepC3's 1×1 convs (Conv_C3: conv, bn)
        return rest
    if m := re.fullmatch(r"m\.conv1\.(.+)", rest):  # BepC3's RepBlock of BottleReps: first one
        return f"m.0.{_bottle_rep(m[1])}"
    if m := re.fullmatch(r"m\.block\.(\d+)\.(.+)", rest):
        return f"m.{int(m[1]) + 1}.{_bottle_rep(m[2])}"
    raise _Unmapped


def _low_fusion(rest: str, layer: nn.Module) -> str:
    """``low_IFM`` = Sequential(Conv, n blocks, Conv) → our ``reduce``, ``blocks.j``, ``expand``."""
    m = re.fullmatch(r"(\d+)\.(.+)", rest)
    if not m:
        raise _Unmapped
    i, n = int(m[1]), len(layer.blocks)
    if i == 0:
        return f"reduce.{m[2]}"
    if i <= n:
        return f"blocks.{i - 1}.{_block(m[2])}"
    if i == n + 1:
        return f"expand.{m[2]}"
    raise _Unmapped


def _high_fusion(rest: str) -> str:
    """``high_IFM.transformer_blocks.i`` → ``blocks.i``; TopFormer's ``Conv2d_BN`` conv ``c`` → ours ``conv``."""
    m = re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", rest)
    if not m:
        raise _Unmapped
    return f"blocks.{m[1]}." + re.sub(r"(^|\.)c\.", r"\1conv.", m[2])


def _head(rest: str, box_branch: str) -> str | tuple[None, str]:
    """EffiDeHead → EfficientDecoupledDetect: stems, cls/reg convs → ``cv3/cv2.i.0``, preds → ``cv3/cv2.i.1``.

    Returns our key suffix, or ``(None, reason)`` for an intentionally dropped key.
    """
    if rest in ("proj", "proj_conv.weight"):
        return None, _REASON_PROJ
    if re.fullmatch(r"(cls|reg)_preds_ab\.\d+\..+", rest):
        return None, _REASON_AB
    if m := re.fullmatch(r"stems\.(\d+)\.(.+)", rest):
        return f"stems.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"cls_convs\.(\d+)\.(.+)", rest):
        return f"cv3.{m[1]}.0.{m[2]}"
    if m := re.fullmatch(r"reg_convs\.(\d+)\.(.+)", rest):
        return f"cv2.{m[1]}.0.{m[2]}"
    if m := re.fullmatch(r"cls_preds(?:_af)?\.(\d+)\.(.+)", rest):
        return f"cv3.{m[1]}.1.{m[2]}"
    if m := re.fullmatch(r"(reg_preds(?:_af|_lrtb)?)\.(\d+)\.(.+)", rest):
        if m[1] != box_branch:  # the other box branch of a distilled checkpoint
            return None, _REASON_LRTB if m[1] == "reg_preds_lrtb" else _REASON_AUX_DFL
        return f"cv2.{m[2]}.1.{m[3]}"
    raise _Unmapped


def _translate(key: str, model: nn.Module, box_branch: str) -> str | tuple[None, str]:
    """One official key → our key, or ``(None, reason)`` if dropped on purpose. Raises ``_Unmapped``."""
    for prefix, row, rule in _LAYOUT:
        if not key.startswith(prefix + "."):
            continue
        rest, layer = key[len(prefix) + 1 :], model.model[row]
        if rule == "block":
            ours = _block(rest)
        elif rule == "stage":
            ours = _stage(rest, layer)
        elif rule == "same":
            ours = rest
        elif rule == "low_fusion":
            ours = _low_fusion(rest, layer)
        elif rule == "high_fusion":
            ours = _high_fusion(rest)
        elif rule == "high_out":
            ours = f"out.{rest}"
        else:  # head
            ours = _head(rest, box_branch)
            if isinstance(ours, tuple):
                return ours
        return f"model.{row}.{ours}"
    raise _Unmapped


# ------------------------------------------------------------------------------------------------ conversion
@dataclass
class ConversionPlan:
    """Where every official tensor goes.

    Attributes:
        mapping (dict[str, str]): official key → our key (every key of our model except the fixed DFL ramp).
        dropped (dict[str, str]): official key → why it is not converted.
        nc (int): classes. reg_max (int): our box bins per side (1: no DFL; 17: official DFL).
        box_branch (str): the official box branch converted (``reg_preds``, ``reg_preds_af`` or ``reg_preds_lrtb``).
    """

    mapping: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    nc: int = 0
    reg_max: int = 0
    box_branch: str = "reg_preds"

    def summary(self) -> str:
        """One line: counts, head settings and the dropped keys grouped by reason."""
        reasons: dict[str, list[str]] = {}
        for k, why in self.dropped.items():
            reasons.setdefault(why, []).append(k)
        dropped = "; ".join(f"{len(ks)} × {why} (e.g. {ks[0]})" for why, ks in reasons.items())
        return (
            f"{len(self.mapping)} tensors converted, nc={self.nc}, reg_max={self.reg_max} (box branch "
            f"detect.{self.box_branch}); dropped {len(self.dropped)}: {dropped or 'none'}"
        )


def _head_settings(sd: dict[str, torch.Tensor], prefer_dfl: bool) -> tuple[int, int, str]:
    """``(nc, reg_max, box_branch)`` from the head's prediction convs."""
    cls = next((f"detect.{n}.0.weight" for n in ("cls_preds", "cls_preds_af") if f"detect.{n}.0.weight" in sd), None)
    boxes = [n for n in ("reg_preds", "reg_preds_af", "reg_preds_lrtb") if f"detect.{n}.0.weight" in sd]
    if cls is None or not boxes:
        raise ValueError(
            "not a Gold-YOLO head: need detect.cls_preds.0.weight (or cls_preds_af) and detect.reg_preds.0.weight "
            "(or reg_preds_af / reg_preds_lrtb)"
        )
    lrtb = "reg_preds_lrtb" in boxes
    dfl = [n for n in boxes if n != "reg_preds_lrtb"]
    if prefer_dfl and not dfl:
        raise ValueError("prefer_dfl=True, but the checkpoint has no DFL box branch (detect.reg_preds)")
    box = dfl[0] if (prefer_dfl or not lrtb) else "reg_preds_lrtb"
    out = sd[f"detect.{box}.0.weight"].shape[0]
    if out % 4:
        raise ValueError(f"detect.{box}.0.weight has {out} output channels, not 4 × bins")
    return sd[cls].shape[0], out // 4, box


def map_official_state_dict(
    state_dict: dict[str, torch.Tensor], model: nn.Module, prefer_dfl: bool = False
) -> ConversionPlan:
    """Plan the conversion of an official state dict into ``model`` (a Gold-YOLO ``DetectionModel``) and check it.

    Every official key is either mapped to one key of ``model`` with the same shape or dropped for a listed reason;
    every key of ``model`` except the fixed DFL ramp is filled exactly once.

    Args:
        state_dict: official state dict (see :func:`load_official_checkpoint`).
        model: the target model, built for the checkpoint's scale, ``nc`` and ``reg_max``.
        prefer_dfl: for distilled checkpoints, convert the auxiliary DFL box branch instead of ``reg_preds_lrtb``.

    Returns:
        The plan (mapping, dropped keys with reasons, head settings).

    Raises:
        ValueError: deployed checkpoint; unmapped official keys, unfilled or doubly filled keys of ours, shape
            mismatches (listed together), or a non-standard DFL projection.
    """
    deployed = [k for k in state_dict if ".rbr_reparam." in k]
    if deployed or not any(".bn." in k or ".rbr_identity." in k for k in state_dict):
        raise ValueError(
            "this is a deployed (re-parameterised / BN-folded) Gold-YOLO checkpoint"
            + (f" (e.g. {deployed[0]})" if deployed else " (no BatchNorm keys)")
            + "; convert the training-time checkpoint (as released: rbr_dense/rbr_1x1 branches and BNs), then call "
            "model.fuse() for the deployed graph"
        )
    check_layout(model, _ROW_TYPES, f"goldyolo-{_model_scale(model)}.yaml")
    nc, reg_max, box_branch = _head_settings(state_dict, prefer_dfl)
    plan = ConversionPlan(nc=nc, reg_max=reg_max, box_branch=box_branch)
    ours = model.state_dict()
    unmapped, shapes, twice = [], [], []
    claimed: set[str] = set()  # our keys some official key points at (mismatched ones are reported as such)
    for key, value in state_dict.items():
        try:
            target = _translate(key, model, box_branch)
        except _Unmapped:
            unmapped.append(key)
            continue
        if isinstance(target, tuple):
            plan.dropped[key] = target[1]
            continue
        if target not in ours:
            unmapped.append(f"{key} (→ {target}, not in our model)")
        elif target in claimed:
            twice.append(f"{key} → {target}")
        elif tuple(value.shape) != tuple(ours[target].shape):
            shapes.append(f"{key} {tuple(value.shape)} → {target} {tuple(ours[target].shape)}")
        else:
            plan.mapping[key] = target
        claimed.add(target)
    unfilled = [k for k in ours if k not in claimed and k != _DFL_KEY]
    raise_problems(
        f"official Gold-YOLO state dict does not fit goldyolo-{_model_scale(model)}.yaml (nc={nc}, reg_max={reg_max})",
        [
            (f"{len(unmapped)} official keys match no rule", unmapped),
            (f"{len(unfilled)} keys of our model receive nothing", unfilled),
            (f"{len(shapes)} shape mismatches", shapes),
            (f"{len(twice)} keys of ours would be written twice", twice),
        ],
    )
    _check_dfl(state_dict, ours, reg_max)
    return plan


def _check_dfl(sd: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], reg_max: int) -> None:
    """The official ``proj`` must be the ramp our DFL holds (the only projection either code ever builds)."""
    if reg_max <= 1 or "detect.proj" not in sd:
        return
    proj, ramp = sd["detect.proj"].flatten(), ours[_DFL_KEY].flatten()
    if proj.shape != ramp.shape or not torch.allclose(proj.float(), ramp.float()):
        raise ValueError(f"detect.proj is not the DFL ramp 0..{reg_max - 1} of Ultralytics' DFL: {proj.tolist()}")


def _model_scale(model: nn.Module) -> str:
    return (getattr(model, "yaml", None) or {}).get("scale", "?")


def build_goldyolo(scale: str, nc: int = 80, reg_max: int = 17) -> nn.Module:
    """Our ``goldyolo-<scale>.yaml`` model with the given class count and box bins (``reg_max``)."""
    if scale not in SCALES:
        raise ValueError(f"unknown Gold-YOLO scale {scale!r}; expected one of {', '.join(SCALES)}")
    return build_from_yaml(f"goldyolo-{scale}.yaml", nc=nc, reg_max=reg_max)


def official_to_ultra_ext(
    state_dict: dict[str, torch.Tensor], scale: str | None = None, prefer_dfl: bool = False, verbose: bool = True
) -> nn.Module:
    """Convert an official Gold-YOLO state dict to our Gold-YOLO ``DetectionModel``.

    ``nc`` comes from ``cls_preds`` and the bins from the box branch (4 channels → ``reg_max`` 1, 68 → 17); the
    model is ``goldyolo-<scale>.yaml`` with those values, so its ``model.yaml`` rebuilds it (training, export).

    Args:
        state_dict: official state dict (from :func:`load_official_checkpoint`, or ``official_model.state_dict()``).
        scale: ``n``/``s``/``m``/``l``; ``None`` reads it from the stem width. A scale that disagrees with the
            checkpoint is an error.
        prefer_dfl: distilled N/S checkpoints: convert the auxiliary DFL branch (``reg_max`` 17) instead of the
            ``reg_preds_lrtb`` branch the official inference uses.
        verbose: log what was converted and dropped.

    Returns:
        The model in eval mode, float32, weights and BN statistics copied.

    Raises:
        ValueError: unknown scale, scale mismatch, or a state dict that does not fit (see
            :func:`map_official_state_dict`).
    """
    if scale is not None and scale not in SCALES:
        raise ValueError(f"unknown Gold-YOLO scale {scale!r}; expected one of {', '.join(SCALES)}")
    found = infer_scale(state_dict)
    if scale is not None and scale != found:
        raise ValueError(f"the checkpoint is Gold-YOLO-{found.upper()} (stem width), not the requested scale {scale!r}")
    nc, reg_max, _ = _head_settings(state_dict, prefer_dfl)
    model = build_goldyolo(found, nc, reg_max)
    plan = map_official_state_dict(state_dict, model, prefer_dfl)
    copy_mapped(model, state_dict, plan.mapping)
    if verbose:
        from ultralytics.utils import LOGGER

        LOGGER.info(f"Gold-YOLO-{found.upper()} official → ultra_ext: {plan.summary()}")
    return model


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext convert-goldyolo CKPT -o OUT``: an official Gold-YOLO checkpoint as an Ultralytics checkpoint."""
    import argparse

    from .checkpoint import save_ultralytics_checkpoint

    parser = argparse.ArgumentParser(prog="ultra-ext convert-goldyolo", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("checkpoint", help="official Gold-YOLO checkpoint (.pt)")
    parser.add_argument("-o", "--output", required=True, help="Ultralytics checkpoint to write (.pt)")
    parser.add_argument("--scale", choices=SCALES, help="default: read from the checkpoint")
    parser.add_argument("--dfl", action="store_true", help="distilled N/S: convert the auxiliary DFL box branch")
    args = parser.parse_args(argv)
    try:
        model = official_to_ultra_ext(load_official_checkpoint(args.checkpoint), args.scale, prefer_dfl=args.dfl)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_ultralytics_checkpoint(model, args.output, source=Path(args.checkpoint).name)
    cfg = model.yaml
    print(
        f"converted {args.checkpoint} → {args.output} "
        f"(Gold-YOLO-{cfg['scale'].upper()}, nc={cfg['nc']}, reg_max={cfg['reg_max']})"
    )
    return 0
