"""Unpickle checkpoints of foreign code bases without that code: their classes become weight-holding stubs.

Released checkpoints pickle whole modules, so a plain ``torch.load`` needs every class the training code defined.
A converter only needs the state dict, and ``nn.Module`` restores itself from its ``__dict__``: a generated stub
class of the right name carries all parameters, buffers and submodules. Two policies choose which classes are
stubbed (see :class:`StubPickle`):

* ``always`` — packages whose classes are stubbed unconditionally, never imported (code we do not have or must
  not run, e.g. ``yolov6``, ``gold_yolo``, ``mmcv`` for Gold-YOLO);
* ``fallback`` — packages resolved normally, with a stub only for what the installed version lacks (e.g. an
  Ultralytics fork's extra classes such as ``ultralytics.nn.modules.block.PST`` under stock Ultralytics).

Everything else (torch, numpy, builtins) is resolved normally: this is full unpickling, so only load trusted files.
:func:`restricted_load` reads ``torch.save`` zip archives with the same stub policy under torch's ``weights_only``
unpickler instead: only classes of torch, Ultralytics and ultra_ext are real, everything else a stub,
and no function named by the file ever runs.

Example:
    >>> stubs = StubPickle(fallback=("ultralytics",), hint="convert it with ultra_ext.convert.pst")
    >>> ckpt = torch.load("pst-n.pt", map_location="cpu", pickle_module=stubs, weights_only=False)  # doctest: +SKIP
    >>> stubs.stubbed  # which classes did not resolve  # doctest: +SKIP
    ['ultralytics.nn.modules.block.PST', 'ultralytics.nn.modules.block.PSAttnBlock', ...]
"""

from __future__ import annotations

import importlib
import io
import pickle
import types
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

__all__ = ["OfficialStub", "StubPickle", "drop_stubbed_entries", "restricted_load", "stub_class"]

# packages whose nn.Module classes a restricted load may construct for real (everything else becomes a stub)
_TRUSTED_PACKAGES = ("torch", "ultralytics", "ultra_ext")


class OfficialStub(nn.Module):
    """Stand-in for a class of foreign code while unpickling; holds weights, has no ``forward``.

    Pickle restores an ``nn.Module`` by creating a bare instance and filling its ``__dict__`` (parameters, buffers,
    submodules), so a stub of the right name carries the whole state dict.

    Attributes:
        _stub_hint (str): class attribute, what to do instead of calling the stub (in its error message).
    """

    _stub_hint = "it holds weights only"

    def __init__(self, *args, **kwargs):  # accepts any constructor call a pickle might make
        super().__init__()

    def __setstate__(self, state) -> None:
        """Module state (a ``__dict__``) is restored as usual; anything else (e.g. a dict-like config class whose state
        is the object itself) is kept aside, so it never reaches the state dict."""
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):  # (dict, slots) form
            state = state[0]
        if isinstance(state, dict):
            super().__setstate__(state)
        else:
            super().__setstate__({})
            self.__dict__["_stub_state"] = state

    # dict- and list-like foreign classes (e.g. a config's ConfigDict kept on some modules) restore their items
    # through these; the items are kept aside
    def __setitem__(self, key, value) -> None:
        self.__dict__.setdefault("_stub_items", {})[key] = value

    def append(self, value) -> None:
        self.__dict__.setdefault("_stub_list", []).append(value)

    def extend(self, values) -> None:
        for v in values:
            self.append(v)

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__module__}.{type(self).__qualname__} is a stub: {self._stub_hint}")


_STUB_CLASSES: dict[tuple[str, str, str], type] = {}


def stub_class(module: str, name: str, hint: str = OfficialStub._stub_hint) -> type:
    """One generated :class:`OfficialStub` subclass per ``module.name`` (and hint); cached, so identity is stable."""
    key = (module, name, hint)
    if key not in _STUB_CLASSES:
        body = {"__module__": module, "__qualname__": name, "_stub_hint": hint}
        _STUB_CLASSES[key] = type(name, (OfficialStub,), body)
    return _STUB_CLASSES[key]


class StubPickle(types.ModuleType):
    """A pickle-module stand-in for ``torch.load(pickle_module=...)`` that stubs foreign classes.

    ``torch.load`` needs a module-like object (it reads ``__name__``) with ``Unpickler`` (subclassed for the zip
    format) and ``load`` (legacy format); both route class look-ups through :meth:`find_class`. Use one instance per
    load to read :attr:`stubbed` afterwards.

    Args:
        always: top-level packages stubbed without importing anything from them.
        fallback: top-level packages resolved normally; a class that fails to resolve (missing module or
            attribute) becomes a stub.
        hint: what a stub's ``forward`` error tells the user to do instead.

    Attributes:
        stubbed (list[str]): ``module.name`` of every class stubbed so far, in first-seen order.
    """

    def __init__(self, always: Iterable[str] = (), fallback: Iterable[str] = (), hint: str = OfficialStub._stub_hint):
        super().__init__("ultra_ext_stub_pickle")
        self.always, self.fallback, self.hint = frozenset(always), frozenset(fallback), hint
        self.stubbed: list[str] = []
        owner = self

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str):
                return owner.find_class(module, name, super().find_class)

        self.Unpickler = Unpickler

    def find_class(self, module: str, name: str, resolve):
        """The class ``module.name``: a stub for ``always`` packages, else ``resolve(module, name)`` with a stub
        fallback for ``fallback`` packages."""
        package = module.split(".", 1)[0]
        if package not in self.always:
            try:
                return resolve(module, name)
            except (ImportError, AttributeError):  # ModuleNotFoundError is an ImportError
                if package not in self.fallback:
                    raise
        if f"{module}.{name}" not in self.stubbed:
            self.stubbed.append(f"{module}.{name}")
        return stub_class(module, name, self.hint)

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs):
        return self.load(io.BytesIO(data), **kwargs)


def _trusted_class(module: str, name: str) -> type:
    """The real class ``module.name`` when it is a class of torch, Ultralytics or ultra_ext (modules, and what
    Ultralytics keeps on them: its argument namespace, loss objects); else raises ``AttributeError`` (so the caller
    stubs it). Functions and other objects never resolve: nothing named by the file runs."""
    if module.split(".", 1)[0] not in _TRUSTED_PACKAGES:
        raise AttributeError(f"{module}.{name} is not trusted")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise AttributeError(f"{module}.{name} is not a class")
    return obj


def restricted_load(path: str | Path, stubs: StubPickle):
    """``torch.load(weights_only=True)`` of a ``torch.save`` zip archive, with every global the file names allowed as
    a class: the real one for classes of torch, Ultralytics and ultra_ext that ``stubs`` would not stub,
    a weight-holding stub for everything else (``stubs.stubbed`` lists those). No function the file names is ever
    called, so this is safe for untrusted files (``ULTRALYTICS_SAFE_LOAD=1``).

    Raises:
        ValueError: not a zip archive (the legacy format can only be read by full unpickling).
        pickle.UnpicklingError: something torch's restricted unpickler refuses regardless (reported by torch).
    """
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    entries = []
    for qualified in names:
        module, _, name = qualified.rpartition(".")
        cls = None
        if module.split(".", 1)[0] in _TRUSTED_PACKAGES:
            try:
                cls = stubs.find_class(module, name, _trusted_class)
            except (ImportError, AttributeError):
                pass
        if cls is None:  # outside the trusted packages, or not resolvable there as a module class
            if qualified not in stubs.stubbed:
                stubs.stubbed.append(qualified)
            cls = stub_class(module, name, stubs.hint)
        entries.append((cls, qualified))
    with torch.serialization.safe_globals(entries):
        return torch.load(path, map_location="cpu", weights_only=True)


def _holds_stub(value) -> bool:
    if isinstance(value, OfficialStub):
        return True
    if isinstance(value, dict):
        return any(_holds_stub(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_stub(v) for v in value)
    return False


def drop_stubbed_entries(ckpt: dict) -> list[str]:
    """Set top-level checkpoint entries that are or hold stubs to ``None``, so the checkpoint can be
    written again (a stub pickles under its foreign name, which may clash with a real class); returns their keys.
    What a stub stands for here is training state (e.g. a numpy ``best_fitness``), never weights."""
    dropped = [k for k, v in ckpt.items() if _holds_stub(v)]  # a real model is never a stub
    for k in dropped:
        ckpt[k] = None
    return dropped
