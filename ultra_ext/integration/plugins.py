"""Users' own modules in model YAMLs: :func:`register` and the ``ultra_ext.modules`` entry-point group.

A registered ``nn.Module`` class is usable by name in model YAMLs everywhere Ultralytics builds models: the stock
``yolo`` CLI, ``YOLO()``, the trainer, DDP workers, checkpoint reloads in fresh processes and
``ULTRALYTICS_SAFE_LOAD=1`` (the class joins torch's safe-load allow-list). How a YAML row becomes constructor
arguments is the class's ``ul_parse`` (the protocol of :mod:`.protocol`) or, for a class without one, one of two
documented rules (``docs/custom-modules.md``):

* ``"channels"`` (default): ``[from, n, Name, [c_out, *rest]]`` → ``Name(c_in, c_out·width, *rest)``; the output
  has ``c_out·width`` channels (scaled as the stock ``Conv`` rows are);
* ``"same"``: ``[from, n, Name, [*args]]`` → ``Name(*args)``; the output keeps the input's channels.

Other processes (DDP workers, a fresh ``yolo val``) learn about user modules through the package entry-point group
``ultra_ext.modules``: each entry names a module that registers its classes when imported, a class, or a list of
classes. They are loaded once per process, the first time Ultralytics builds a model or loads a checkpoint; one
that fails to import gives a warning naming its package, and everything else keeps working.
"""

from __future__ import annotations

import inspect
import re
import threading
import warnings

import torch

from ..nn.checks import AT_LEAST_ONE
from .protocol import ParseContext

__all__ = ["ENTRY_POINT_GROUP", "RULES", "RegistrationError", "load_entry_points", "register", "registered_modules"]

ENTRY_POINT_GROUP = "ultra_ext.modules"
RULES = ("channels", "same")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

_lock = threading.RLock()
_registered: dict[str, type] = {}  # YAML name → class
_listeners: list = []  # callbacks (name, cls) of the active integration, which puts classes into the parser
_entry_points_loaded = False


class RegistrationError(ValueError):
    """A class that cannot be registered under the name asked for."""


def registered_modules() -> dict[str, type]:
    """``{YAML name: class}`` of every user module registered in this process."""
    return dict(_registered)


def _channels_rule(cls, ctx: ParseContext) -> dict:
    c_in = ctx.c_in_single()
    c_out = ctx.arg(0, "c_out (output channels; the default 'channels' rule)", int, check=AT_LEAST_ONE)
    c2 = ctx.width(c_out)
    if ctx.n > 1 and c_in != c2:
        raise ctx.error(
            f"repeats {ctx.n} stack copies of {cls.__name__}, which needs input channels == output channels, got "
            f"{c_in} → {c2}; use repeats 1, or give the class a ul_parse that consumes the repeats"
        )
    return {"args": [c_in, c2, *ctx.args[1:]], "c2": c2}


def _same_rule(cls, ctx: ParseContext) -> dict:
    return {"args": list(ctx.args), "c2": ctx.c_in_single()}


_RULE_FUNCTIONS = {"channels": _channels_rule, "same": _same_rule}


def _stock_names() -> dict:
    import ultralytics.nn.tasks as tasks

    return tasks.__dict__


def _check(cls, name: str) -> None:
    if not inspect.isclass(cls) or not issubclass(cls, torch.nn.Module):
        raise RegistrationError(f"ultra_ext.register: {cls!r} is not an nn.Module class")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith(("nn.", "torchvision.ops.")):
        raise RegistrationError(
            f"ultra_ext.register: name {name!r} for {cls.__qualname__} is not a usable YAML module name (letters, "
            f"digits, '_' and '.', not starting with 'nn.' or 'torchvision.ops.')"
        )
    from .registry import ALIAS_PREFIX, yaml_classes

    if name.startswith(ALIAS_PREFIX) or name in {c.__name__ for c in yaml_classes()}:
        raise RegistrationError(
            f"ultra_ext.register: {name!r} is an ultra_ext module name; register {cls.__module__}.{cls.__qualname__} "
            f"under another name (register(cls, name='...'))"
        )
    current = _registered.get(name)
    if current is not None and current is not cls:
        raise RegistrationError(
            f"ultra_ext.register: {name!r} is already registered for {current.__module__}.{current.__qualname__}; "
            f"choose another name for {cls.__module__}.{cls.__qualname__}"
        )
    stock = _stock_names().get(name)
    if current is None and stock is not None and stock is not cls:
        raise RegistrationError(
            f"ultra_ext.register: {name!r} is already a name in Ultralytics' model parser ({stock!r}); a model YAML "
            f"could not tell the two apart. Register {cls.__qualname__} under another name (register(cls, name='...'))"
        )


def register(cls: type | None = None, *, name: str | None = None, rule: str = "channels"):
    """Make an ``nn.Module`` class usable in model YAMLs under ``name`` (default: the class name).

    Usable as ``register(MyBlock)`` or as a decorator, ``@register`` / ``@register(name="MyBlock", rule="same")``.
    Registering the same class under the same name again does nothing.

    Args:
        cls: the module class.
        name: the name YAML rows use.
        rule: how a row becomes constructor arguments when the class has no ``ul_parse``: ``"channels"`` or
            ``"same"`` (see the module docstring). Ignored, and must stay default, for a class with ``ul_parse``.

    Returns:
        ``cls`` itself (so the decorator leaves the class unchanged apart from a ``ul_parse`` for the rule).

    Raises:
        RegistrationError: not an ``nn.Module`` class, an unusable name, a name that is stock Ultralytics', ours or
            another registered class's, or an unknown rule.
    """
    if cls is None:
        return lambda c: register(c, name=name, rule=rule)
    if rule not in RULES:
        raise RegistrationError(f"ultra_ext.register: rule must be one of {', '.join(RULES)}, got rule={rule!r}")
    name = cls.__name__ if name is None and inspect.isclass(cls) else name
    with _lock:
        _check(cls, name)
        if _registered.get(name) is cls:
            return cls
        if not hasattr(cls, "ul_parse"):
            cls.ul_parse = classmethod(_RULE_FUNCTIONS[rule])
            cls.ul_parse_rule = rule
        elif rule != "channels":
            raise RegistrationError(
                f"ultra_ext.register: {cls.__qualname__} defines ul_parse, so rule={rule!r} would be ignored"
            )
        _registered[name] = cls
        add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
        if add_safe_globals is not None:
            add_safe_globals([cls])
        for listener in list(_listeners):
            listener(name, cls)
    return cls


def add_listener(callback) -> None:
    """Call ``callback(name, cls)`` for every registered module now and for each one registered later."""
    with _lock:
        _listeners.append(callback)
        for name, cls in _registered.items():
            callback(name, cls)


def remove_listener(callback) -> None:
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def load_entry_points() -> None:
    """Import every ``ultra_ext.modules`` entry point once per process; a failure is a warning naming its package."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True  # first: a plugin importing ultra_ext must not come back here
        from importlib.metadata import entry_points

        try:
            found = entry_points(group=ENTRY_POINT_GROUP)
        except TypeError:  # Python 3.9: entry_points() returns a dict of groups
            found = entry_points().get(ENTRY_POINT_GROUP, [])
        for ep in found:
            package = getattr(getattr(ep, "dist", None), "name", None) or ep.value.split(":")[0].split(".")[0]
            try:
                loaded = ep.load()
                classes = [loaded] if inspect.isclass(loaded) else loaded if isinstance(loaded, (list, tuple)) else []
                for cls in classes:
                    register(cls)
            except Exception as e:
                message = (
                    f"ultra_ext: the '{ENTRY_POINT_GROUP}' entry point {ep.name!r} = {ep.value!r} of package "
                    f"{package!r} failed ({type(e).__name__}: {e}); its modules are not available in model YAMLs"
                )
                warnings.warn(message, RuntimeWarning, stacklevel=2)
