"""Which of our classes the YAML parser sees, under which names, and which the safe loader allows.

YAML-visible classes (those with ``ul_parse``) are put into ``ultralytics.nn.tasks``' globals, the dict
parse_model looks names up in, under a namespaced alias ``ultra_ext.<Name>`` that can never collide with a
stock module, and under the plain ``<Name>`` only where that name is free.
"""

from __future__ import annotations

import difflib
import inspect
import sys

import torch
from ultralytics.utils import LOGGER

from .protocol import LayerError

__all__ = ["ALIAS_PREFIX", "check_model_dict", "model_classes", "yaml_classes"]

ALIAS_PREFIX = "ultra_ext."
# Stock names our classes deliberately do not take: stock yolo12*.yaml must keep building the stock model.
_STOCK_NAMES_WE_KNOW = {"A2C2f"}


def model_classes() -> list[type]:
    """Every ``nn.Module`` class defined in ``ultra_ext.nn.*`` (what a checkpoint may pickle)."""
    import ultra_ext.nn  # noqa: F401  (imports every family module)

    found = []
    for name, module in sorted(sys.modules.items()):
        if name.startswith("ultra_ext.nn") and module is not None:
            for obj in vars(module).values():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, torch.nn.Module)
                    and obj.__module__ == name
                    and obj not in found
                ):
                    found.append(obj)
    return found


def yaml_classes() -> list[type]:
    """The classes a model YAML can name (they implement ``ul_parse``)."""
    return [c for c in model_classes() if hasattr(c, "ul_parse")]


def register_names(namespace: dict) -> dict[str, type]:
    """Put our YAML classes into ``namespace`` (tasks' globals); return ``{name: class}`` of what was added."""
    added = {}
    for cls in yaml_classes():
        alias = ALIAS_PREFIX + cls.__name__
        namespace[alias] = added[alias] = cls
        current = namespace.get(cls.__name__)
        if current is None or current is cls:
            namespace[cls.__name__] = added[cls.__name__] = cls
        elif cls.__name__ not in _STOCK_NAMES_WE_KNOW:
            LOGGER.warning(
                f"ultra_ext: '{cls.__name__}' is already a stock Ultralytics name; use '{alias}' in model YAMLs"
            )
    return added


def unregister_names(namespace: dict, added: dict[str, type]) -> None:
    for name, cls in added.items():
        if namespace.get(name) is cls:
            del namespace[name]


def register_safe_globals() -> None:
    """Allow every class we may pickle under ``ULTRALYTICS_SAFE_LOAD=1`` (torch ``weights_only`` loading)."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        from ..models.backbone_checkpoint import PretrainedBackbone  # what `ultra-ext pretrain` saves

        add([*model_classes(), PretrainedBackbone])


def _suggestion(name, namespace: dict) -> str:
    """`` (did you mean 'X'?)`` for the closest module name the parser knows, or ``""``."""
    if not isinstance(name, str):
        return ""
    known = [k for k, v in namespace.items() if inspect.isclass(v) and issubclass(v, torch.nn.Module)]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolvable(name: str, namespace: dict) -> bool:
    if name.startswith("nn."):
        return hasattr(torch.nn, name[3:])
    if name.startswith("torchvision.ops."):
        import torchvision

        return hasattr(torchvision.ops, name[16:])
    return name in namespace


def check_model_dict(d: dict, namespace: dict, ours: dict[str, type]) -> None:
    """Validate a model dict before parse_model builds it.

    Raises:
        LayerError: a row naming an unknown module (the message lists ours), a malformed row, or, for a
            model that uses our modules, a missing or unknown scale (stock would silently take the first).
    """
    rows = (d.get("backbone") or []) + (d.get("head") or [])
    uses_ours = False
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise LayerError(f"model YAML layer {i}: a row must be [from, repeats, module, args], got {row!r}")
        name = row[2]
        if not isinstance(name, str) or not _resolvable(name, namespace):
            listed = ", ".join(sorted(n for n in ours if n.startswith(ALIAS_PREFIX)))
            raise LayerError(
                f"model YAML layer {i}: unknown module {name!r}{_suggestion(name, namespace)}. ultra_ext modules: "
                f"{listed}; stock Ultralytics modules are those imported in ultralytics.nn.tasks, plus nn.* and "
                f"torchvision.ops.*; your own modules need ultra_ext.register (docs/custom-modules.md)"
            )
        uses_ours = uses_ours or name in ours
    scales = d.get("scales")
    if uses_ours and scales:
        scale = d.get("scale")
        source = d.get("yaml_file", "the model dict")
        if not scale:
            letters = ", ".join(scales)
            raise LayerError(
                f"{source}: no model scale given (scales: {letters}). Name the scale in the file name, "
                f"e.g. 'yolov12n.yaml' or '<family>-n.yaml', or set d['scale'] for a dict."
            )
        if scale not in scales:
            raise LayerError(f"{source}: scale {scale!r} is not one of this model's scales ({', '.join(scales)})")
