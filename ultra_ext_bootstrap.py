"""ultra_ext's startup hook, run by ``ultra_ext_hook.pth`` in site-packages at every interpreter start.

It only installs a ``sys.meta_path`` finder (about a millisecond; nothing heavy is imported). When
``ultralytics.nn.tasks`` is imported, the finder lets it execute normally and then imports ``ultra_ext``, which
registers our modules and YAMLs. So the stock ``yolo`` command, ``YOLO('yolov12n.yaml')``, subprocesses and
DDP workers see ultra_ext without any user code.

Opt out with ``ULTRA_EXT_DISABLE=1``. A failure here never breaks ``import ultralytics``: it becomes a
``RuntimeWarning`` and Ultralytics runs stock. (``importlib.abc`` is not imported on purpose: it alone costs
~20 ms at start-up; the finder and loader are duck-typed.)
"""

import os
import sys

_TARGET = "ultralytics.nn.tasks"


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
        uninstall()
        try:
            import ultra_ext  # noqa: F401  (importing activates)
        except Exception as e:
            _warn(e)

    def __getattr__(self, name):  # get_source, get_code, is_package, ... (inspect and linecache use them)
        return getattr(self._loader, name)


class _TasksFinder:
    """A ``sys.meta_path`` finder that answers for ``ultralytics.nn.tasks`` only."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
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
    if _TARGET in sys.modules or any(isinstance(f, _TasksFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TasksFinder())


def uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TasksFinder)]
