"""ultra_ext's startup hook, run by ``ultra_ext_hook.pth`` in site-packages at every interpreter start.

It only installs a ``sys.meta_path`` finder (about a millisecond; nothing heavy is imported). When one of
``_TARGETS`` is imported (``ultralytics.cfg``, where the CLI checks task names; ``ultralytics.nn.tasks``, the YAML
parser; ``ultralytics.models.yolo.model``, the ``YOLO`` task map), the finder lets it execute normally and then
imports ``ultra_ext`` (which registers our modules, YAMLs and the ``generalist`` task) or, once it is imported,
lets it register what the new module holds. So the stock ``yolo`` command, ``YOLO('yolov12n.yaml')``,
subprocesses and DDP workers see ultra_ext without any user code.

Opt out with ``ULTRA_EXT_DISABLE=1``. A failure here never breaks ``import ultralytics``: it becomes a
``RuntimeWarning`` and Ultralytics runs stock. (``importlib.abc`` is not imported on purpose: it alone costs
~20 ms at start-up; the finder and loader are duck-typed.)
"""

import os
import sys

_TARGETS = ("ultralytics.cfg", "ultralytics.nn.tasks", "ultralytics.models.yolo.model")


def _warn(e):
    import warnings

    warnings.warn(f"ultra_ext: startup hook skipped ({type(e).__name__}: {e}); Ultralytics runs stock", RuntimeWarning)


class _ActivatingLoader:
    """Wraps the real loader of ``ultralytics.nn.tasks``; activates ultra_ext right after the module runs."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)  # errors of Ultralytics itself propagate unchanged
        if all(t in sys.modules for t in _TARGETS):
            uninstall()
        try:
            if "ultra_ext" not in sys.modules:
                import ultra_ext  # noqa: F401  (importing activates)
            else:  # already active, or mid-activation (then activation itself registers what is loaded)
                register = getattr(getattr(sys.modules["ultra_ext"], "integration", None), "register_loaded", None)
                if register is not None:
                    register()
        except Exception as e:
            uninstall()  # one warning, then Ultralytics runs stock: no retry at the next target
            _warn(e)

    def __getattr__(self, name):  # get_source, get_code, is_package, ... (inspect and linecache use them)
        return getattr(self._loader, name)


class _TasksFinder:
    """A ``sys.meta_path`` finder that answers for ``_TARGETS`` only."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _TARGETS:
            return None
        try:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _ActivatingLoader(spec.loader)
                    return spec
        except Exception as e:
            _warn(e)
        return None


def install():
    """Install the finder once, unless ``ULTRA_EXT_DISABLE`` is set to a true value."""
    if os.environ.get("ULTRA_EXT_DISABLE", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    if all(t in sys.modules for t in _TARGETS) or any(isinstance(f, _TasksFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TasksFinder())


def uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TasksFinder)]
