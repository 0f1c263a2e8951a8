"""Official Generalist YOLO checkpoints (``gyolo.pt``) → our ``gyolo-generalist-l`` model (an Ultralytics
``GeneralistModel``).

The official code (WongKinYiu/GeneralistYOLO, a YOLOv9-style code base) pickles whole modules whose classes live in
``models.*`` (``models.yolo.SegmentationModel``, ``models.common.RepNCSPELAN4``, the head ``models.yolo.DualDPanoptic``
and the captioner ``models.grit.Grit``); :func:`load_generalist_checkpoint` reads them as weight-holding stubs,
without that code. The released model is ``models/caption/gyolo.yaml``, our scale ``l``.

Its state dict holds three things (counts for the released layout):

* the **vision path** (1491 tensors, 26,488,701 parameters) — trunk, FPN/PAN, the three ``RepNCSPELAN4B`` outputs,
  the main semantic and prototype branches and the main parts of the head. It maps onto our model by renames only
  (:data:`RULES`): rows shift by -1 (official 1-23, after its ``Silence`` input row), -20 (the semantic branch,
  43-46) and -24 (the proto branch, 51-54); inside ``RepNCSPELAN4B`` the second output conv ``cvcap`` is our ``cv5``;
  in the head (official row 55, ours 31) the one-to-many box/class branches ``cv4``/``cv5`` are our ``cv2``/``cv3``,
  the one-to-one ``cv6``/``cv7`` our ``one2one_cv2``/``one2one_cv3`` (class branches: the official flat
  ``Sequential`` of 5 becomes our nested ``(DWConv, Conv), (DWConv, Conv), Conv2d``), mask coefficients ``cv9`` →
  ``cv4``, ``proto2`` → ``proto``, the semantic conv ``uconv2`` → ``semantic`` and ``dfl2`` → ``dfl``;
* the **PGI auxiliary branch** (897 tensors, 17,694,157 parameters: rows 24-42 and 47-50, the head's ``cv2``,
  ``cv3``, ``cv8``, ``proto``, ``uconv``, ``dfl``) — training-only; no counterpart yet;
* the **captioner** (127 tensors, 8,418,304 parameters: row 56, ``Grit``) — no counterpart yet.

The last two (and the head's spare ``dfl3`` ramp) are dropped, and reported group by group (:data:`DROPPED`), so
a later version that adds them can map them here. The semantic head has ``nc + sem_nc`` maps: 80 things + 93
COCO-Stuff classes = 173, so the model is built with ``sem_nc`` read from the checkpoint (the YAML's default is 1).
Everything else is checked: anything we cannot place, anything of ours left empty, or a shape mismatch is one
``ValueError`` listing all of them.

Example:
    >>> from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint
    >>> from ultra_ext.convert.generalist import generalist_to_ultra_ext, load_generalist_checkpoint
    >>> sd, info = load_generalist_checkpoint("gyolo.pt")  # doctest: +SKIP
    >>> model, dropped = generalist_to_ultra_ext(sd)  # doctest: +SKIP
    >>> save_ultralytics_checkpoint(model, "gyolo-coco.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn

from .checkpoint import clean_state_dict, copy_mapped, load_foreign
from .mapping import MAX_LISTED, check_layout, raise_problems
from .unpickle import StubPickle

__all__ = ["DROPPED", "RULES", "generalist_to_ultra_ext", "load_generalist_checkpoint", "map_generalist_state_dict"]

_HEAD = 31  # GeneralistHead row of gyolo-generalist.yaml
_ROW_TYPES = {16: {"RepNCSPELAN4B"}, 19: {"RepNCSPELAN4B"}, 22: {"RepNCSPELAN4B"}, _HEAD: {"GeneralistHead"}}
_SEMANTIC = "model.55.uconv2.weight"  # (nc + sem_nc, 256, 1, 1): marks a Generalist YOLO state dict
_CLS_OUT = "model.55.cv5.0.4.weight"  # last conv of the first one-to-many class branch: (nc, c, 1, 1)
_STUB_PACKAGES = ("models", "utils")  # the official code base's top-level packages
_STUB_HINT = (
    "a class of the official Generalist YOLO code; it holds weights only: convert the checkpoint with "
    "`ultra-ext convert` (or ultra_ext.convert.generalist.generalist_to_ultra_ext)"
)

# official class branch index (flat Sequential of 5) → ours (nested: 2 × (DWConv, Conv), then the Conv2d)
_CLS_INDEX = {"0": "0.0", "1": "0.1", "2": "1.0", "3": "1.1", "4": "2"}
_HEAD_RENAMES = {"cv4": "cv2", "cv6": "one2one_cv2", "cv9": "cv4", "proto2": "proto", "uconv2": "semantic",
                 "dfl2": "dfl"}  # fmt: skip
_CLS_RENAMES = {"cv5": "cv3", "cv7": "one2one_cv3"}

# what the vision path leaves out, by group: (title, pattern on the official key)
DROPPED = (
    ("PGI auxiliary branch (training only)", re.compile(r"model\.(2[4-9]|3\d|4[0-2]|4[7-9]|50)\.")),
    ("PGI auxiliary head parts", re.compile(r"model\.55\.(cv2|cv3|cv8|proto|uconv|dfl)\.")),
    ("captioner (Grit)", re.compile(r"model\.56\.")),
    ("spare DFL ramp of the one-to-one head (the same fixed 0..15 as ours)", re.compile(r"model\.55\.dfl3\.")),
)


def _body(i: int, rest: str) -> str | None:
    """Our key for official body row ``i`` (not the head), or ``None`` if the row has no counterpart."""
    if 1 <= i <= 23:
        if i in (17, 20, 23) and rest.startswith("cvcap."):
            rest = "cv5." + rest[len("cvcap.") :]
        return f"model.{i - 1}.{rest}"
    if 43 <= i <= 46:
        return f"model.{i - 20}.{rest}"
    if 51 <= i <= 54:
        return f"model.{i - 24}.{rest}"
    return None


def _head(rest: str) -> str | None:
    name, _, tail = rest.partition(".")
    if name in _HEAD_RENAMES:
        return f"model.{_HEAD}.{_HEAD_RENAMES[name]}.{tail}"
    if name in _CLS_RENAMES:
        level, index, leaf = tail.split(".", 2)
        if index in _CLS_INDEX:
            return f"model.{_HEAD}.{_CLS_RENAMES[name]}.{level}.{_CLS_INDEX[index]}.{leaf}"
    return None


def official_to_our_key(key: str) -> str | None:
    """Our key for an official vision-path key; ``None`` for keys with no rule (dropped groups or unknown)."""
    m = re.match(r"model\.(\d+)\.(.+)", key)
    if m is None:
        return None
    i, rest = int(m.group(1)), m.group(2)
    return _head(rest) if i == 55 else _body(i, rest)


RULES = official_to_our_key  # the rename rules, documented in the module docstring


# ------------------------------------------------------------------------------------------------ loading
def _state_dict_of(obj, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("ema", "model"):  # YOLOv9-style training checkpoints evaluate ema when present
            if isinstance(obj.get(key), (nn.Module, dict)):
                return _state_dict_of(obj[key], where)
        raise ValueError(
            f"{where}: not a Generalist YOLO checkpoint: a dict without a model "
            f"(keys: {sorted(map(str, obj))[:MAX_LISTED]}); expected ckpt['model'] or ckpt['ema']"
        )
    raise ValueError(f"{where}: not a Generalist YOLO checkpoint: it holds a {type(obj).__name__}")


def load_generalist_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the weights of an official Generalist YOLO checkpoint without the official code.

    Classes of ``models.*`` and ``utils.*`` (the official code base) become stubs, as does anything else outside
    torch (numpy training state, paths); nothing the file names runs (:func:`~.checkpoint.load_foreign`).

    Returns:
        ``(state_dict, info)``: floating tensors float32 on the CPU; ``info`` has ``names`` (dict) where the model
        carries them and ``stubbed`` (the classes replaced by stubs).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, or not a Generalist YOLO checkpoint (no ``model.55.uconv2`` semantic conv).
    """
    stubs = StubPickle(always=_STUB_PACKAGES, hint=_STUB_HINT)
    obj = load_foreign(path, stubs, "Generalist YOLO")
    sd = clean_state_dict(_state_dict_of(obj, str(path)))
    if _SEMANTIC not in sd:
        prefixes = sorted({".".join(k.split(".")[:2]) for k in sd})[:MAX_LISTED]
        raise ValueError(
            f"{path}: not a Generalist YOLO checkpoint: no semantic conv {_SEMANTIC!r} (key prefixes: {prefixes})"
        )
    info: dict = {"stubbed": list(stubs.stubbed)}
    model = obj.get("ema") or obj.get("model") if isinstance(obj, dict) else obj
    names = getattr(model, "names", None) if isinstance(model, nn.Module) else None
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if isinstance(names, dict) and names:
        info["names"] = {int(k): str(v) for k, v in names.items()}
    return sd, info


# ------------------------------------------------------------------------------------------------ mapping
def map_generalist_state_dict(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> tuple[dict[str, str], list[str]]:
    """Plan official key → our key for every tensor of ``model``.

    Returns:
        ``(mapping, dropped)``: the plan, and one line per dropped group (``title: n tensors, p parameters``).

    Raises:
        ValueError: listing every official key no rule places, every key of ours left empty and every shape
            mismatch.
    """
    check_layout(model, _ROW_TYPES, "gyolo-generalist.yaml")
    ours = model.state_dict()
    mapping, unplaced, groups = {}, [], {title: [] for title, _ in DROPPED}
    for key in state_dict:
        group = next((title for title, pattern in DROPPED if pattern.match(key)), None)
        if group is not None:
            groups[group].append(key)
            continue
        dst = official_to_our_key(key)
        if dst is None or dst not in ours:
            unplaced.append(key if dst is None else f"{key} → {dst} (no such key of ours)")
            continue
        mapping[key] = dst
    empty = sorted(ours.keys() - set(mapping.values()))
    shapes = [
        f"{src} {tuple(state_dict[src].shape)} → {dst} {tuple(ours[dst].shape)}"
        for src, dst in mapping.items()
        if state_dict[src].shape != ours[dst].shape
    ]
    raise_problems(
        f"official Generalist YOLO state dict does not fit {model.yaml.get('yaml_file', 'gyolo-generalist.yaml')}",
        [("official keys no rule places", unplaced), ("keys of ours that receive nothing", empty),
         ("shape mismatches", shapes)],  # fmt: skip
    )
    def values(keys: list[str]) -> int:
        return sum(state_dict[k].numel() for k in keys if state_dict[k].is_floating_point())

    dropped = [f"{title}: {len(keys)} tensors, {values(keys):,} values" for title, keys in groups.items() if keys]
    return mapping, dropped


def build_generalist(nc: int = 80, sem_nc: int = 1, scale: str = "l") -> nn.Module:
    """Our ``gyolo-generalist-<scale>`` model with ``nc`` thing classes and ``sem_nc`` extra semantic maps."""
    from ultralytics.nn.tasks import yaml_model_load

    from ..integration import activate
    from ..models.generalist import GeneralistModel

    activate()
    cfg = deepcopy(yaml_model_load(f"gyolo-generalist-{scale}.yaml"))
    head = cfg["head"][-1]
    if head[2] != "GeneralistHead" or len(head[3]) != 3:
        raise ValueError(f"our gyolo-generalist.yaml's last row is {head}; the converter expects GeneralistHead")
    head[3] = [head[3][0], head[3][1], sem_nc]
    return GeneralistModel(cfg, nc=nc, verbose=False)


def generalist_to_ultra_ext(
    state_dict: dict[str, torch.Tensor],
    scale: str | None = None,
    names: dict[int, str] | list[str] | None = None,
    verbose: bool = True,
) -> tuple[nn.Module, list[str]]:
    """Convert an official Generalist YOLO state dict to our ``GeneralistModel``.

    Args:
        state_dict: official state dict (:func:`load_generalist_checkpoint`, or the official model's).
        scale: only ``"l"`` (the released ``gyolo.yaml``); ``None`` means ``"l"``. Other widths fail the shape check.
        names: class names (``nc`` of them); default: the model's placeholders.
        verbose: log what was converted and dropped.

    Returns:
        ``(model, dropped)``: the model in eval mode, float32, weights and BN statistics copied; one line per dropped
        group of official tensors.

    Raises:
        ValueError: an unsupported scale, names that do not match ``nc``, or a state dict that does not fit
            (:func:`map_generalist_state_dict`).
    """
    if scale not in (None, "l"):
        raise ValueError(f"the released Generalist YOLO is gyolo.yaml, our scale 'l'; got scale {scale!r}")
    nc = int(state_dict[_CLS_OUT].shape[0]) if _CLS_OUT in state_dict else 80
    sem_nc = int(state_dict[_SEMANTIC].shape[0]) - nc
    if sem_nc < 1:
        raise ValueError(f"semantic conv {_SEMANTIC} has {sem_nc + nc} maps for {nc} classes; expected more than nc")
    if names is not None:
        names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
        if len(names) != nc:
            raise ValueError(f"{len(names)} class names for a checkpoint with {nc} classes")
    model = build_generalist(nc, sem_nc)
    mapping, dropped = map_generalist_state_dict(state_dict, model)
    copy_mapped(model, state_dict, mapping)
    if names is not None:
        model.names = names
    if verbose:
        from ultralytics.utils import LOGGER

        LOGGER.info(
            f"Generalist YOLO official → ultra_ext gyolo-generalist-l (nc={nc}, sem_nc={sem_nc}): {len(mapping)} "
            f"tensors converted; dropped {'; '.join(dropped) or 'nothing'}"
        )
    return model, dropped

