"""The whole coupling between ultra_ext and Ultralytics internals lives in this subpackage.

:func:`activate` (idempotent, called by ``import ultra_ext`` and by the startup hook) does thirteen things:

1. puts our YAML classes into ``ultralytics.nn.tasks``' globals (:mod:`.registry`);
2. installs the guarded parse_model with one protocol branch (:mod:`.patch`; on a parse_model source we have not
   tested, a probe model is built first and compared with pinned numbers, :mod:`.selfcheck`);
3. wraps ``check_yaml``/``guess_model_scale`` in the tasks namespace so our YAMLs resolve by name
   (:mod:`.yaml_lookup`);
4. allow-lists our classes for ``ULTRALYTICS_SAFE_LOAD=1`` checkpoint loading;
5. appends a no-op callback of ours to Ultralytics' default callbacks, so that the cloudpickled state Ultralytics
   sends to DDP workers imports ultra_ext there before the worker re-parses the YAML;
6. registers the ``generalist`` task in whatever Ultralytics modules are loaded (:mod:`.generalist_task`; the
   startup hook calls :func:`register_loaded` again as the others load; without the hook, activation loads the
   ``YOLO`` class itself so the task is complete whatever was imported first);
7. wraps ``torch_safe_load`` so a checkpoint whose bytes changed after saving is refused
   (:mod:`.checkpoint_integrity`);
8. serves the datasets we ship by name (``data=raccoon-mini.yaml``, :mod:`.datasets`);
9. puts users' modules (:func:`ultra_ext.register`, the ``ultra_ext.modules`` entry points, :mod:`.plugins`) into
   the parser's namespace, now and as they are registered;
10. serves the papers' training recipes by name (``cfg=yolov12-n-recipe.yaml``, :mod:`.recipes`);
11. lets Ultralytics' argument check accept ``distill_loss``, ``distill_tau`` and ``det_loss`` without adding them
    to its defaults (:mod:`.arguments`);
12. ``distill_loss=cwd``: channel-wise distillation as an option of the stock ``distill_model=`` training, and the
    detection levels as the distilled layers (:mod:`.distill`);
13. ``det_loss=goldyolo``: Gold-YOLO's detection loss as an option of the stock trainer (:mod:`.losses`).

:func:`deactivate` restores every original.
"""

from __future__ import annotations

import sys
import threading

from .patch import HOOK_NAME, UltralyticsIncompatibleError, build_patched_parse_model, check_semantics, parse_row
from .protocol import LayerError, ParseContext
from . import arguments, datasets, distill, losses, recipes
from .generalist_task import register_loaded as _register_tasks
from .yaml_lookup import find_model_yaml, model_yaml_names, register_yaml_dir

__all__ = [
    "LayerError",
    "ParseContext",
    "UltralyticsIncompatibleError",
    "activate",
    "ddp_anchor",
    "deactivate",
    "find_model_yaml",
    "is_active",
    "model_yaml_names",
    "register_loaded",
    "register_yaml_dir",
]

_lock = threading.Lock()
_state: dict = {}  # originals and what we added; empty while inactive


def ddp_anchor(trainer=None) -> None:
    """No-op ``on_pretrain_routine_start`` callback: its presence in pickled trainer state imports ultra_ext."""


def _rebind_package_exports(ul_nn, tasks) -> None:
    """``ultralytics.nn`` re-exports these names; point them at whatever tasks holds now.

    During the startup hook ``ultralytics.nn`` is still mid-import and binds them itself afterwards."""
    for name in ("parse_model", "guess_model_scale", "torch_safe_load"):
        if hasattr(ul_nn, name):
            setattr(ul_nn, name, getattr(tasks, name))


def is_active() -> bool:
    return bool(_state)


def activate() -> None:
    """Make Ultralytics see ultra_ext's modules and YAMLs (idempotent, thread-safe)."""
    with _lock:
        if _state:
            return
        import ultralytics.nn as ul_nn
        import ultralytics.nn.tasks as tasks
        from ultralytics.utils.callbacks.base import default_callbacks

        from . import plugins, registry
        from .checkpoint_integrity import wrap_torch_safe_load
        from .generalist_task import allow_model_class
        from .yaml_lookup import wrap_check_yaml, wrap_guess_model_scale

        added = registry.register_names(tasks.__dict__)

        def check_rows(d: dict) -> None:
            plugins.load_entry_points()  # users' modules, before the rows naming them are checked
            registry.check_model_dict(d, tasks.__dict__, added)

        try:
            original, patched = build_patched_parse_model(tasks, check_rows)
            tasks.__dict__[HOOK_NAME] = parse_row
            check_semantics(patched)  # untested parse_model source: build a probe before anything else changes
        except Exception:
            tasks.__dict__.pop(HOOK_NAME, None)
            registry.unregister_names(tasks.__dict__, added)
            raise
        saved = {
            "parse_model": original,
            "check_yaml": tasks.check_yaml,
            "guess_model_scale": tasks.guess_model_scale,
            "torch_safe_load": tasks.torch_safe_load,
        }
        tasks.parse_model = patched
        def before_loading() -> None:
            plugins.load_entry_points()  # users' modules: safe loading must allow their classes
            allow_model_class()  # ours, once ultra_ext.models.generalist has finished importing

        tasks.torch_safe_load = wrap_torch_safe_load(tasks.torch_safe_load, before=before_loading)
        tasks.check_yaml = wrap_check_yaml(tasks.check_yaml)
        tasks.guess_model_scale = wrap_guess_model_scale(tasks.guess_model_scale)
        _rebind_package_exports(ul_nn, tasks)
        registry.register_safe_globals()
        anchors = default_callbacks["on_pretrain_routine_start"]
        if ddp_anchor not in anchors:
            anchors.append(ddp_anchor)

        def add_user_module(name: str, cls: type) -> None:
            tasks.__dict__[name] = added[name] = cls

        plugins.add_listener(add_user_module)
        recipes.install()
        arguments.install()
        distill.install()
        losses.install()
        _state.update(tasks=tasks, nn=ul_nn, saved=saved, added=added, listener=add_user_module)
    if not _startup_hook_pending():
        import ultralytics.models.yolo.model  # noqa: F401  (nothing else would register the task with the YOLO class)
    register_loaded()


def _startup_hook_pending() -> bool:
    """Whether the startup hook is installed and still waiting for Ultralytics modules (it registers them as they
    load). Without it (an editable install, a vendored copy, ``import ultra_ext`` before ``ultralytics``) nothing
    would add the ``generalist`` task to a ``YOLO`` class loaded later, so :func:`activate` loads that class itself."""
    return any(type(finder).__name__ == "_TasksFinder" for finder in sys.meta_path)


def register_loaded() -> None:
    """Startup-hook entry: register the ``generalist`` task and our dataset names in Ultralytics modules loaded
    since activation."""
    if _state:
        _register_tasks()
        datasets.install()


def deactivate() -> None:
    """Restore every Ultralytics original that :func:`activate` replaced."""
    with _lock:
        if not _state:
            return
        from ultralytics.utils.callbacks.base import default_callbacks

        from . import plugins, registry
        from .generalist_task import unregister as unregister_tasks

        unregister_tasks()
        datasets.uninstall()
        recipes.uninstall()
        arguments.uninstall()
        distill.uninstall()
        losses.uninstall()
        plugins.remove_listener(_state["listener"])
        tasks = _state["tasks"]
        for k, v in _state["saved"].items():
            setattr(tasks, k, v)
        _rebind_package_exports(_state["nn"], tasks)
        tasks.__dict__.pop(HOOK_NAME, None)
        registry.unregister_names(tasks.__dict__, _state["added"])
        anchors = default_callbacks["on_pretrain_routine_start"]
        if ddp_anchor in anchors:
            anchors.remove(ddp_anchor)
        _state.clear()
