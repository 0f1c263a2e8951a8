"""An early, clear error for export formats a model's layers cannot support.

A layer class that cannot be exported to some format declares it with a class attribute, or with a property when
the limit depends on the module's settings::

    class SomeBlock(nn.Module):
        unsupported_export_formats = frozenset({"ncnn"})  # why: e.g. an op the converter lacks

:func:`check_export` walks a model before the exporter touches it and raises a ``ValueError`` that names the
blocking class, its YAML layer index (``module.i`` of the enclosing top-level layer) and the format, instead of a
converter traceback deep inside a third-party tool, or worse, an export that "succeeds" and then does not load.

:func:`install` wraps ``ultralytics.engine.exporter.Exporter.__call__`` (the single entry of ``YOLO.export``, the
``yolo export`` CLI and Ultralytics' benchmarks) so the check runs first; :func:`uninstall` restores the stock
method. The exporter module is imported lazily by Ultralytics, so :func:`install` runs once the ``YOLO`` class is
loaded (:mod:`.generalist_task`): Ultralytics' trainers are loaded by then and importing the exporter costs about
2 ms.

Declared today (measured with ultralytics 8.4.190, pnnx 20260526, ncnn 1.0.20261020; ``tests/test_export_matrix.py``
checks ONNX, TorchScript and OpenVINO parity for every family): ``ncnn`` for ``AreaAttentionTurbo`` with
``area > 1`` (YOLOv12-turbo and -seg: the converted model does not load) and for ``PyramidSparseAttention`` with
``topk > 0`` (no TopK layer in ncnn; after ``set_pst_options(model, topk=0)`` it converts).
"""

from __future__ import annotations

import functools

import torch

__all__ = ["FORMAT_ALIASES", "blocking_layers", "check_export", "install", "normalize_format", "uninstall"]

ATTRIBUTE = "unsupported_export_formats"
# The aliases Exporter.__call__ rewrites before dispatching (ultralytics 8.4.190), so a class declaring "engine"
# also blocks format="trt", etc.
FORMAT_ALIASES = {
    "tensorrt": "engine",
    "trt": "engine",
    "mlmodel": "coreml",
    "mlpackage": "coreml",
    "mlprogram": "coreml",
    "apple": "coreml",
    "ios": "coreml",
    "huawei": "ascend",
    "cann": "ascend",
    "om": "ascend",
    "vitis": "xilinx",
    "vitisai": "xilinx",
    "versal": "xilinx",
    "tflite": "litert",
    "tfjs": "litert",
}
_saved: dict = {}  # the stock Exporter.__call__ while installed


def normalize_format(fmt) -> str:
    """Lower-case ``fmt`` and resolve the exporter's aliases (``"TRT"`` → ``"engine"``)."""
    fmt = str(fmt).strip().lower()
    return FORMAT_ALIASES.get(fmt, fmt)


def _unsupported(module: torch.nn.Module) -> frozenset:
    """The formats ``module`` declares unsupported (its class attribute, or a property read on the instance)."""
    return frozenset(normalize_format(f) for f in getattr(module, ATTRIBUTE, None) or ())


def blocking_layers(model: torch.nn.Module, fmt: str) -> list[tuple[int | None, str, str]]:
    """``(layer index, layer class, blocking class)`` for each module of ``model`` that cannot export to ``fmt``.

    The layer index is the YAML row (``module.i``, set by ``parse_model`` on top-level layers) enclosing the
    blocking module; ``None`` for a model without a YAML layer list (then every module is searched)."""
    fmt = normalize_format(fmt)
    layers = getattr(getattr(model, "student_model", model), "model", None)  # distillation wraps the student
    if isinstance(layers, torch.nn.Sequential):
        tops = [(getattr(layer, "i", index), layer) for index, layer in enumerate(layers)]
    else:
        tops = [(None, model)]
    found = []
    for index, top in tops:
        for module in top.modules():
            if fmt in _unsupported(module):
                found.append((index, type(top).__name__, type(module).__name__))
    return found


def check_export(model: torch.nn.Module, fmt: str) -> None:
    """Raise ``ValueError`` naming every layer whose modules declare ``fmt`` unsupported; else return.

    Args:
        model: the PyTorch model about to be exported (a ``DetectionModel`` etc. with a ``model`` layer list).
        fmt: the export format as given to the exporter (aliases and case are normalised).
    """
    found = blocking_layers(model, fmt)
    if not found:
        return
    fmt = normalize_format(fmt)
    places: dict[str, list[str]] = {}  # blocking class → the layers holding it, in order, each once
    for index, layer, blocker in found:
        place = f"layer {index}" if layer == blocker else f"layer {index} ({layer})"
        if place not in places.setdefault(blocker, []):
            places[blocker].append(place)
    where = "; ".join(f"{blocker} in {', '.join(layers)}" for blocker, layers in places.items())
    raise ValueError(
        f"format='{fmt}' cannot export this model: {where} does not support '{fmt}' export (see the class's "
        f"{ATTRIBUTE}). Export to another format, e.g. 'onnx'."
    )


def wrap_exporter_call(stock):
    """``Exporter.__call__`` that runs :func:`check_export` on the model before the stock export."""

    @functools.wraps(stock)
    def __call__(self, model=None, *args, **kwargs):
        if isinstance(model, torch.nn.Module):
            check_export(model, self.args.format)
        return stock(self, model, *args, **kwargs)

    __call__.ultra_ext_stock = stock
    return __call__


def install() -> None:
    """Wrap ``Exporter.__call__`` once (idempotent)."""
    if "call" in _saved:
        return
    from ultralytics.engine.exporter import Exporter

    stock = Exporter.__dict__["__call__"]
    if hasattr(stock, "ultra_ext_stock"):  # wrapped by an earlier copy of this module (e.g. after a reload)
        return
    _saved["call"] = (Exporter, stock)
    Exporter.__call__ = wrap_exporter_call(stock)


def uninstall() -> None:
    """Restore the stock ``Exporter.__call__``."""
    if "call" in _saved:
        exporter_cls, stock = _saved.pop("call")
        exporter_cls.__call__ = stock
