"""Unpickle checkpoints of foreign code bases without that code: their classes become weight-holding stubs.

Released checkpoints pickle whole modules, so a plain ``torch.load`` needs every class the training code defined.
A converter only needs the state dict, and ``nn.Module`` restores itself from its ``__dict__``: a generated stub
class of the right name carries all parameters, buffers and submodules. Two policies choose which classes are
stubbed (see :class:`StubPickle`):

* ``always`` — packages whose classes are stubbed unconditionally, never imported (code we do not have or must
  not run, e.g. ``yolov6``, ``gold_yolo``, ``mmcv`` for Gold-YOLO);
* ``fallback`` — packages resolved normally, with a stub only for what the installed version lacks (e.g. an
  Ultralytics fork's extra classes such as ``ultralytics.nn.modules.block.PST`` under stock Ultralytics).

Everything else (torch, numpy, builtins) is resolved normally: that is full unpickling, for trusted files only.
:func:`restricted_load` is the mode for files from elsewhere: only torch's ``weights_only`` allow-list and vetted
model classes (:func:`vetted_global`) resolve, everything else becomes a stub, so no function the file names runs.

Example:
    >>> stubs = StubPickle(fallback=("ultralytics",), hint="convert it with ultra_ext.convert.pst")
    >>> ckpt = torch.load("pst-n.pt", map_location="cpu", pickle_module=stubs, weights_only=False)  # doctest: +SKIP
    >>> stubs.stubbed  # which classes did not resolve  # doctest: +SKIP
    ['ultralytics.nn.modules.block.PST', 'ultralytics.nn.modules.block.PSAttnBlock', ...]
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
import types
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

__all__ = ["OfficialStub", "StubPickle", "drop_stubbed_entries", "restricted_load", "stub_class", "vetted_global"]


class OfficialStub(nn.Module):
    """Stand-in for a class of foreign code while unpickling; holds weights, has no ``forward``.

    Pickle restores an ``nn.Module`` by creating a bare instance and filling its ``__dict__`` (parameters, buffers,
    submodules), so a stub of the right name carries the whole state dict.

    Attributes:
        _stub_hint (str): class attribute, what to do instead of calling the stub (in its error message).
    """

    _stub_hint = "it holds weights only"

    def __new__(cls, *args, **kwargs):  # pickle's NEWOBJ creates instances without __init__: initialise here
        obj = super().__new__(cls)
        nn.Module.__init__(obj)
        return obj

    def __init__(self, *args, **kwargs):  # accepts any constructor call a pickle might make
        pass

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
        restricted: resolve only what :func:`vetted_global` allows (torch's ``weights_only`` allow-list and
            vetted torch / Ultralytics / ultra_ext classes); everything else becomes a stub, so no function the file
            names can run. ``always`` still applies; ``fallback`` is implied for every package.

    Attributes:
        stubbed (list[str]): ``module.name`` of every class stubbed so far, in first-seen order.
    """

    def __init__(
        self,
        always: Iterable[str] = (),
        fallback: Iterable[str] = (),
        hint: str = OfficialStub._stub_hint,
        restricted: bool = False,
    ):
        super().__init__("ultra_ext_stub_pickle")
        self.always, self.fallback, self.hint = frozenset(always), frozenset(fallback), hint
        self.restricted = restricted
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
        if self.restricted:
            resolve = vetted_global
        if package not in self.always:
            try:
                return resolve(module, name)
            except (ImportError, AttributeError):  # ModuleNotFoundError is an ImportError
                if package not in self.fallback and not self.restricted:
                    raise
        if f"{module}.{name}" not in self.stubbed:
            self.stubbed.append(f"{module}.{name}")
        return stub_class(module, name, self.hint)

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs):
        return self.load(io.BytesIO(data), **kwargs)


# modules whose classes (not only nn.Modules) Ultralytics keeps on pickled models, as its own safe loading allows
_DATA_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal", "ultralytics.nn.distill_model")
_DATA_CLASSES = (
    "ultralytics.utils.IterableSimpleNamespace",
    # a classification model's preprocessing, kept on the model (model.transforms)
    *(f"torchvision.transforms.transforms.{n}" for n in ("Compose", "Normalize", "Resize", "CenterCrop", "ToTensor")),
    "torchvision.transforms.functional.InterpolationMode",
)
_MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.", "ultra_ext.nn.", "ultra_ext.models.")


def _torch_weights_only_globals() -> dict:
    """torch's own ``weights_only`` allow-list (tensor and storage rebuilding, dtypes, ``OrderedDict``, ...)."""
    from torch import _weights_only_unpickler

    return dict(_weights_only_unpickler._get_allowed_globals())


def vetted_global(module: str, name: str):
    """What a restricted load may resolve for real: torch's ``weights_only`` allow-list, ``nn.Module`` classes
    defined in torch.nn, Ultralytics' and ultra_ext's model modules, and the few data classes Ultralytics keeps on
    models. Anything else raises ``AttributeError`` (the caller stubs it): re-exports of other objects, functions,
    ``subprocess.Popen`` reachable through some torch submodule — nothing the file names outside this set runs."""
    if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as protocol 2 writes them (__builtin__.set)
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    qualified = f"{module}.{name}"
    allowed = _torch_weights_only_globals()
    if qualified in allowed:
        return allowed[qualified]
    if not module.startswith(("torch.", "torchvision.", "ultralytics.", "ultra_ext.")):
        raise AttributeError(f"{qualified} is not vetted")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    defined_here = isinstance(obj, type) and obj.__module__ == module and obj.__qualname__ == name  # no re-export
    if defined_here and issubclass(obj, nn.Module) and (module + ".").startswith(_MODULE_PACKAGES):
        return obj
    if defined_here and (module in _DATA_CLASS_MODULES or qualified in _DATA_CLASSES):
        return obj
    raise AttributeError(f"{qualified} is not vetted")


def restricted_load(path: str | Path, stubs: StubPickle):
    """``torch.load`` of a checkpoint (zip or legacy format) through ``stubs`` in restricted mode: every global the
    file names resolves through :func:`vetted_global` or becomes a weight-holding stub (``stubs.stubbed`` lists
    them). The standard restricted-unpickler pattern: pickle can only call what ``find_class`` returns, so no
    function named by the file runs, and no process-wide allow-list is touched. Safe for untrusted files.

    Raises:
        pickle.UnpicklingError, RuntimeError, EOFError, ...: an unreadable file (reported by torch/pickle).
    """
    restricted = stubs.restricted
    stubs.restricted = True
    try:
        return torch.load(path, map_location="cpu", pickle_module=stubs, weights_only=False)
    finally:
        stubs.restricted = restricted

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
