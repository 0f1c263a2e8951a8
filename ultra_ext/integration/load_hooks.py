"""One slot for code above the integration layer to take part in checkpoint loading.

The integration wraps Ultralytics' ``torch_safe_load`` (:mod:`.checkpoint_integrity`), but the code that recognises
and converts foreign checkpoints lives in :mod:`ultra_ext.convert`, a layer above. The package root installs that
code here (:func:`set_translator`), so the integration never imports upwards.

A translator is called as ``translator(weight, load, args, kwargs)``, where ``load`` is Ultralytics' original
``torch_safe_load`` and ``args``/``kwargs`` are the caller's; it returns ``(ckpt, file)`` like ``torch_safe_load``,
or ``None`` to let the original load run untouched.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["get_translator", "set_translator"]

_translator: Callable | None = None


def set_translator(translator: Callable | None) -> None:
    """Install (or with ``None`` remove) the checkpoint translator."""
    global _translator
    _translator = translator


def get_translator() -> Callable | None:
    return _translator
