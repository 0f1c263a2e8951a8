"""Reading foreign checkpoints and writing Ultralytics ones: the parts every converter shares.

A converter (one file per source: :mod:`.goldyolo`, :mod:`.pst`, :mod:`.yolov12`) reads a checkpoint with
:func:`load_foreign`, plans where each tensor goes (its own rules), copies the tensors with :func:`copy_mapped`
and writes the result with :func:`save_ultralytics_checkpoint`, which knows nothing about families or tasks: it
reads them from the model.
"""

from __future__ import annotations

import pickle
from copy import deepcopy
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "build_from_yaml",
    "clean_state_dict",
    "copy_mapped",
    "load_foreign",
    "save_ultralytics_checkpoint",
    "ultralytics_checkpoint",
]


def load_foreign(path: str | Path, pickle_module, what: str):
    """Read a foreign checkpoint on the CPU with :func:`~.unpickle.restricted_load`: ``pickle_module`` (a
    :class:`~.unpickle.StubPickle`) resolves only vetted torch / Ultralytics / ultra_ext classes and stubs everything
    else, so no function the file names runs; files from anywhere are safe to read (``ULTRALYTICS_SAFE_LOAD`` or
    not).

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not a readable PyTorch checkpoint.
    """
    from .unpickle import restricted_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    try:
        return restricted_load(path, pickle_module)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: cannot read it as a PyTorch checkpoint ({type(e).__name__}: {e})") from e


def clean_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU tensors, floating ones as float32 (releases ship fp16), without a DataParallel ``module.``."""
    return {
        k.removeprefix("module."): (v.detach().float() if v.is_floating_point() else v.detach()).cpu()
        for k, v in sd.items()
    }


def build_from_yaml(name: str, **overrides) -> nn.Module:
    """A ``DetectionModel`` of the shipped model YAML ``name`` with top-level keys overridden (``nc``, ``reg_max``)."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    from ..integration import activate

    activate()  # our modules and YAML folder

    cfg = deepcopy(yaml_model_load(name))
    cfg.update(overrides)
    return DetectionModel(cfg, nc=cfg.get("nc"), verbose=False)


def copy_mapped(
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    mapping: dict[str, str],
    defaults: dict[str, float] | None = None,
) -> nn.Module:
    """Copy ``state_dict[src]`` into ``model``'s ``dst`` for each ``src → dst`` of ``mapping``; ``defaults`` fills
    keys the source lacks with a constant. Loads strictly, so a key left out is an error, not a silent init."""
    ours = model.state_dict()
    for src, dst in mapping.items():
        ours[dst] = state_dict[src].to(ours[dst].dtype)
    for key, value in (defaults or {}).items():
        ours[key] = torch.full_like(ours[key], value)
    model.load_state_dict(ours, strict=True)
    return model.float().eval()


def _coco_names() -> dict[int, str]:
    from ultralytics.utils import ROOT, YAML

    return dict(YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"])


def ultralytics_checkpoint(
    model: nn.Module, names: dict[int, str] | list[str] | None = None, source: str | None = None, half: bool = True
) -> dict:
    """``model`` as the checkpoint dict Ultralytics writes (the layout of ``strip_optimizer``): a copy of the model
    (fp16 when ``half``, as Ultralytics ships weights; no gradients) with its class names and YAML dict, so training
    from it rebuilds the same architecture; the task is the one Ultralytics guesses for that dict. 80-class models
    get the COCO names (released weights are COCO's), and then ``data=coco.yaml`` as their training data.

    Args:
        model: a converted Ultralytics model (its ``yaml`` dict names the YAML it was built from).
        names: class names (dict or list); default COCO for 80 classes, else the model's.
        source: where the weights came from, recorded as ``converted_from``.
        half: store the model in fp16.

    Raises:
        ValueError: ``names`` does not have one entry per class.
    """
    from ultralytics import __version__
    from ultralytics.nn.tasks import guess_model_task

    nc, coco = model.yaml["nc"], _coco_names()
    if names is None:
        names = coco if nc == 80 else getattr(model, "names", None) or {i: str(i) for i in range(nc)}
    names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
    if len(names) != nc:
        raise ValueError(f"{len(names)} class names for a model with {nc} classes")
    m = deepcopy(model).float().eval()
    m.names = names
    if half:
        m.half()
    for p in m.parameters():
        p.requires_grad = False
    yaml_file = Path(model.yaml.get("yaml_file") or f"{type(model).__name__}.yaml").name
    train_args = {"model": yaml_file, "task": guess_model_task(model.yaml), "imgsz": 640}
    if names == coco:  # what released weights were trained on: `YOLO(path).val()` evaluates on COCO by default
        train_args["data"] = "coco.yaml"
    return {
        "date": datetime.now().astimezone().isoformat(),
        "version": __version__,
        "model": m,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "best_fitness": None,
        "epoch": -1,
        "train_args": train_args,
        "converted_from": source,
    }


def save_ultralytics_checkpoint(
    model: nn.Module, path: str | Path, names: dict[int, str] | list[str] | None = None, source: str | None = None
) -> Path:
    """Write ``model`` as an Ultralytics checkpoint that ``YOLO(path)`` loads (:func:`ultralytics_checkpoint`).

    Returns:
        The written path.

    Raises:
        ValueError: ``names`` does not have one entry per class.
    """
    ckpt = ultralytics_checkpoint(model, names, source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
