"""Process-wide feature switches for ultra_ext layers (the shape of timm's ``layers/config.py``).

The attention backend is chosen in three places, most specific first:

1. per module: ``module.attn_backend = "math"`` (``None``, the default, means "follow the process");
2. per process: :func:`set_attn_backend` / the :func:`attn_backend` context manager;
3. by environment: ``ULTRA_EXT_ATTN=sdpa|math|flash`` read once at import.

Unlike timm, modules do not copy the process flag at construction: checkpoints pickle modules whole, so a
copied flag would freeze the backend of the machine that trained the model into every later load.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

__all__ = ["ATTN_BACKENDS", "attn_backend", "get_attn_backend", "set_attn_backend", "validate_backend"]

ATTN_BACKENDS = ("sdpa", "math", "flash")
"""``sdpa``: torch ``scaled_dot_product_attention`` (default; picks PyTorch's flash / memory-efficient kernels);
``math``: explicit ``softmax(q kᵀ) v`` (reference and export path); ``flash``: the ``flash-attn`` package
(CUDA, compute capability >= 8, fp16/bf16; falls back to ``sdpa`` with one warning otherwise)."""

_ENV_VAR = "ULTRA_EXT_ATTN"


def validate_backend(name: str | None, allow_none: bool = False) -> str | None:
    """Return ``name`` lower-cased, or raise ``ValueError`` naming the valid choices."""
    if name is None and allow_none:
        return None
    if not isinstance(name, str) or name.lower() not in ATTN_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(ATTN_BACKENDS)}")
    return name.lower()


def _from_env() -> str:
    value = os.environ.get(_ENV_VAR, "").strip()
    if not value:
        return "sdpa"
    try:
        return validate_backend(value)
    except ValueError as e:
        raise ValueError(f"{_ENV_VAR}={value!r}: {e}") from None


_backend = _from_env()


def get_attn_backend() -> str:
    """The process-wide attention backend that modules without their own setting use."""
    return _backend


def set_attn_backend(name: str) -> None:
    """Set the process-wide attention backend (``"sdpa"``, ``"math"`` or ``"flash"``)."""
    global _backend
    _backend = validate_backend(name)


@contextmanager
def attn_backend(name: str):
    """Temporarily switch the process-wide backend: ``with attn_backend("math"): model(x)``."""
    previous = get_attn_backend()
    set_attn_backend(name)
    try:
        yield
    finally:
        set_attn_backend(previous)
