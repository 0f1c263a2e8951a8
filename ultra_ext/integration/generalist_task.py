"""The ``generalist`` task (Generalist YOLO's joint model) made known to Ultralytics.

Ultralytics knows its tasks in several places, each filled here as soon as its module is loaded (the startup hook
calls :func:`register_loaded` after each of ``ultralytics.cfg``, ``ultralytics.nn.tasks`` and
``ultralytics.models.yolo.model`` executes; :func:`~ultra_ext.integration.activate` calls it once too):

* ``ultralytics.cfg``: ``TASKS`` (the CLI rejects other ``task=`` values) and the default data/model/metric maps;
* ``guess_model_task`` (``ultralytics.nn.tasks`` and every module that imported it by name): a YAML or model
  whose last layer is our joint head is a ``generalist`` model;
* ``YOLO.task_map``: the task's model, trainer, validator and predictor (:mod:`ultra_ext.models.generalist`).

Once the ``YOLO`` class is loaded (so Ultralytics' trainers are too, and importing the pipeline and the exporter
costs milliseconds), the rest is installed in the same step:

* torch's safe-load allow-list gets ``GeneralistModel``, which checkpoints pickle;
* ONNX export (:func:`install_onnx_output_names`): the joint model's three outputs are named ``output0``
  (detections), ``output1`` (prototypes), ``output2`` (semantic logits), with dynamic axes; the stock exporter
  names only the first two tasks' outputs;
* the early export-format check of :mod:`.export_check`.

:func:`unregister` restores every original.
"""

from __future__ import annotations

import sys

import torch

from ..nn.generalist import TASK, GeneralistHead
from . import export_check

JOINT_HEAD = GeneralistHead.__name__
_DEFAULTS = {
    "TASK2DATA": "raccoon-mini-seg.yaml",  # shipped (integration/datasets.py): the default works offline
    "TASK2CALIBRATIONDATA": "raccoon-mini-seg.yaml",
    "TASK2MODEL": "gyolo-generalist-n.yaml",
    "TASK2METRIC": "metrics/mAP50-95(M)",
}
_saved: dict = {}  # what we replaced, to restore


def _is_joint_yaml(d: dict) -> bool:
    try:
        return str(d["head"][-1][2]).rsplit(".", 1)[-1] == JOINT_HEAD
    except (KeyError, IndexError, TypeError):
        return False


def wrap_guess_model_task(stock):
    """``guess_model_task`` that answers ``generalist`` for our joint head, else the stock answer."""

    def guess_model_task(model):
        if isinstance(model, dict) and _is_joint_yaml(model):
            return TASK
        if isinstance(model, torch.nn.Module):
            args = getattr(model, "args", None)
            if not (isinstance(args, dict) and args.get("task")) and _is_joint_yaml(getattr(model, "yaml", None)):
                return TASK
        return stock(model)

    guess_model_task.ultra_ext_stock = stock
    guess_model_task.__doc__ = stock.__doc__
    return guess_model_task


def _register_cfg(cfg) -> None:
    if "cfg" in _saved:
        return
    _saved["cfg"] = (cfg, cfg.TASKS)
    if TASK not in cfg.TASKS:
        cfg.TASKS = (*cfg.TASKS, TASK)
    for name, value in _DEFAULTS.items():
        table = getattr(cfg, name, None)
        if isinstance(table, dict):
            table.setdefault(TASK, value)


def _rebind_guess(tasks) -> None:
    """Wrap ``tasks.guess_model_task`` once; point every loaded Ultralytics module's copy of it at the wrapper."""
    current = tasks.guess_model_task
    if not hasattr(current, "ultra_ext_stock"):
        _saved["guess"] = (tasks, current)
        tasks.guess_model_task = current = wrap_guess_model_task(current)
    stock = current.ultra_ext_stock
    for name, module in list(sys.modules.items()):
        if name.startswith("ultralytics") and getattr(module, "guess_model_task", None) is stock:
            module.guess_model_task = current


def _task_entry() -> dict:
    from ..models import generalist  # Ultralytics' trainers are loaded with the YOLO class, so this is cheap now

    return {
        "model": generalist.GeneralistModel,
        "trainer": generalist.GeneralistTrainer,
        "validator": generalist.GeneralistValidator,
        "predictor": generalist.GeneralistPredictor,
    }


_model_class_allowed: list[bool] = []  # set once GeneralistModel is on torch's safe-load allow-list


def allow_model_class() -> None:
    """Put ``GeneralistModel`` (which checkpoints pickle) on torch's safe-load allow-list, once; a no-op while
    ``ultra_ext.models.generalist`` is still being imported (its own imports load the YOLO class, which reaches
    here through the startup hook): the next checkpoint load or ``task_map`` access does it then."""
    if _model_class_allowed:
        return
    module = sys.modules.get("ultra_ext.models.generalist")
    if module is not None and not hasattr(module, "GeneralistModel"):  # partially initialised: its import is running
        return
    from ..models.generalist import GeneralistModel

    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # ULTRALYTICS_SAFE_LOAD=1 must accept it
        add_safe_globals([GeneralistModel])
    _model_class_allowed.append(True)


def _register_task_map(yolo_cls) -> None:
    """Add the task to ``YOLO.task_map``; allow-list its model for safe loading; install the export hooks.

    The task's classes are looked up when ``task_map`` is read, not here: this runs from the startup hook, possibly
    in the middle of importing ``ultra_ext.models.generalist`` itself (whose imports load the YOLO class)."""
    if "task_map" in _saved:
        return
    stock = yolo_cls.__dict__["task_map"]

    def task_map(self):
        allow_model_class()
        return {**stock.fget(self), TASK: _task_entry()}

    task_map.__doc__ = stock.__doc__
    _saved["task_map"] = (yolo_cls, stock)
    yolo_cls.task_map = property(task_map)
    allow_model_class()
    install_onnx_output_names()
    export_check.install()


def wrap_torch2onnx(stock):
    """``torch2onnx`` that names the joint model's three outputs and their dynamic axes."""

    def torch2onnx(model, im, output_file, opset=14, input_names=None, output_names=None, dynamic=None):
        layers = getattr(model, "model", None)
        if isinstance(layers, torch.nn.Sequential) and type(layers[-1]).__name__ == JOINT_HEAD:
            output_names = ["output0", "output1", "output2"]
            if dynamic:
                dynamic = {
                    **dynamic,
                    "output1": {0: "batch", 2: "mask_height", 3: "mask_width"},
                    "output2": {0: "batch", 2: "semantic_height", 3: "semantic_width"},
                }
        return stock(model, im, output_file, opset, input_names, output_names, dynamic)

    torch2onnx.ultra_ext_stock = stock
    torch2onnx.__doc__ = stock.__doc__
    return torch2onnx


def install_onnx_output_names() -> None:
    """Wrap ``ultralytics.utils.export.engine.torch2onnx`` once (the exporter imports it at each export)."""
    if "torch2onnx" in _saved:
        return
    from ultralytics.utils.export import engine

    _saved["torch2onnx"] = (engine, engine.torch2onnx)
    engine.torch2onnx = wrap_torch2onnx(engine.torch2onnx)


def register_loaded() -> None:
    """Register the task in every Ultralytics module that is fully loaded now (idempotent)."""
    cfg = sys.modules.get("ultralytics.cfg")
    if cfg is not None and hasattr(cfg, "TASK2METRIC"):
        _register_cfg(cfg)
    tasks = sys.modules.get("ultralytics.nn.tasks")
    if tasks is not None and hasattr(tasks, "guess_model_task"):
        _rebind_guess(tasks)
    yolo_model = sys.modules.get("ultralytics.models.yolo.model")
    if yolo_model is not None and hasattr(yolo_model, "YOLO"):
        _register_task_map(yolo_model.YOLO)


def unregister() -> None:
    """Restore Ultralytics' task tables, ``guess_model_task`` and ``YOLO.task_map``."""
    if "cfg" in _saved:
        cfg, tasks_tuple = _saved.pop("cfg")
        cfg.TASKS = tasks_tuple
        for name in _DEFAULTS:
            table = getattr(cfg, name, None)
            if isinstance(table, dict):
                table.pop(TASK, None)
    if "guess" in _saved:
        tasks, stock = _saved.pop("guess")
        wrapper = tasks.guess_model_task
        for name, module in list(sys.modules.items()):
            if name.startswith("ultralytics") and getattr(module, "guess_model_task", None) is wrapper:
                module.guess_model_task = stock
    if "task_map" in _saved:
        yolo_cls, stock = _saved.pop("task_map")
        yolo_cls.task_map = stock
    if "torch2onnx" in _saved:
        engine, stock = _saved.pop("torch2onnx")
        engine.torch2onnx = stock
    export_check.uninstall()
