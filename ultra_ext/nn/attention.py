"""Attention pieces shared by every ultra_ext family: the area split and the backend dispatch.

All backends take and return **token-major** tensors ``(B, N, heads, head_dim)``, so the area split is
one reshape done once, before the backend is chosen: flash, SDPA and the explicit math path therefore
compute the same function by construction (the upstream turbo bug split a channel-major tensor instead).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .config import get_attn_backend, validate_backend

__all__ = [
    "HEAD_DIM",
    "AreaSplitError",
    "attend",
    "backend_report",
    "check_hidden_width",
    "channels_to_tokens",
    "init_conv_weights",
    "merge_areas",
    "resolve_backend",
    "split_areas",
    "tokens_to_map",
]

HEAD_DIM = 32  # YOLOv12's area attention and PST fix the head width: heads = channels // 32
INIT_STD = 0.02  # the published init of their convs: truncated normal


def check_hidden_width(owner: str, c2: int, e: float) -> int:
    """The attention width ``int(c2 * e)`` of an R-ELAN-style block, which must be a positive multiple of
    :data:`HEAD_DIM`; the one rule for a YAML row and a direct constructor call.

    Raises:
        ValueError: naming the owner, ``c2``, ``e`` and the width they give.
    """
    hidden = int(c2 * e)
    if hidden < HEAD_DIM or hidden % HEAD_DIM:
        raise ValueError(
            f"{owner} hidden width int(c2*e) = int({c2}*{e}) = {hidden} must be a positive multiple of the head width "
            f"{HEAD_DIM}, got c2={c2}, e={e}"
        )
    return hidden


def init_conv_weights(m: nn.Module) -> None:
    """The published init of attention blocks' ``Conv2d`` layers: truncated normal (std :data:`INIT_STD`), zero bias."""
    if isinstance(m, nn.Conv2d):
        nn.init.trunc_normal_(m.weight, std=INIT_STD)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


try:  # optional extra `ultra-ext[flash]`; builds only on CUDA machines
    from flash_attn import flash_attn_func
except Exception:  # ImportError, or a broken CUDA build raising at import
    flash_attn_func = None

_warned: set[str] = set()


class AreaSplitError(ValueError):
    """The token count of a map is not divisible by the number of attention areas."""


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"ultra_ext: flash attention unavailable ({reason}); using torch SDPA instead", RuntimeWarning)


def split_areas(t: torch.Tensor, area: int) -> torch.Tensor:
    """Cut each sample's row-major token list into ``area`` contiguous chunks.

    Args:
        t: ``(B, N, ...)`` token-major tensor, tokens ordered ``y * W + x``.
        area: number of areas ``l``; ``N % l`` must be 0.

    Returns:
        ``(B * l, N / l, ...)``; batch ``b`` owns chunks ``b*l .. b*l + l - 1``.
    """
    if area == 1:
        return t
    b, n = t.shape[:2]
    if n % area:
        raise AreaSplitError(f"{n} tokens cannot be split into area={area} equal areas (N % area = {n % area})")
    return t.reshape(b * area, n // area, *t.shape[2:])


def merge_areas(t: torch.Tensor, area: int) -> torch.Tensor:
    """Inverse of :func:`split_areas`: ``(B * l, N / l, ...)`` → ``(B, N, ...)``."""
    if area == 1:
        return t
    return t.reshape(t.shape[0] // area, t.shape[1] * area, *t.shape[2:])


def channels_to_tokens(t: torch.Tensor, backend: str) -> torch.Tensor:
    """Channel-major ``(B, ..., N)`` conv output → token-major ``(B, N, ...)``, copied only where it pays.

    SDPA's CPU flash kernel (and flash-attn) need a unit stride on ``head_dim``; handed the strided view of an
    NCHW conv output, CPU SDPA silently drops to its slow math kernel that stores the ``N×N`` matrix (4-5× slower
    at the P4 shape). The explicit math path reads the strided view at no cost, so it skips the copy.
    """
    t = t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))  # not movedim(-1, 1): ONNX export writes a negative perm
    return t if backend == "math" else t.contiguous()


def tokens_to_map(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, N, heads, head_dim)`` tokens → ``(B, heads*head_dim, H, W)`` map (channel = head*d + j)."""
    b, n = t.shape[:2]
    return t.reshape(b, n, -1).transpose(1, 2).reshape(b, -1, h, w)


def _flash_problem(q: torch.Tensor) -> str | None:
    """Why the flash-attn kernel cannot run on ``q``, or ``None`` when it can."""
    if flash_attn_func is None:
        return "the flash-attn package is not installed (pip install 'ultra-ext[flash]')"
    if not q.is_cuda:
        return "tensors are not on a CUDA device"
    if torch.cuda.get_device_capability(q.device)[0] < 8:
        return "it needs compute capability >= 8.0 (Ampere or newer)"
    if q.dtype not in (torch.float16, torch.bfloat16) and not torch.is_autocast_enabled():
        return "it needs fp16/bf16 inputs or autocast; fp32 without autocast"
    if q.shape[-1] % 8 or q.shape[-1] > 256:
        return f"head_dim {q.shape[-1]} is not a multiple of 8 up to 256"
    return None


def resolve_backend(requested: str | None, q: torch.Tensor) -> str:
    """The backend that will actually run for ``q`` given a module's own setting (``None`` = process-wide).

    Export (ONNX or tracing) always takes the explicit math path: it lowers to plain MatMul/Softmax that
    every runtime understands.
    """
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return "math"
    name = validate_backend(requested) if requested is not None else get_attn_backend()  # a module attr may be anything
    if name == "flash":
        problem = _flash_problem(q)
        if problem:
            _warn_once(problem)
            return "sdpa"
    return name


def _math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """``softmax(scale · q kᵀ) v`` on ``(B, N, h, d)`` (``scale`` defaults to ``d**-0.5``); materialises the
    ``(B, h, N, N)`` score tensor."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, h, N, d)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q if scale == 1.0 else q * scale) @ k.transpose(-2, -1)
    return (scores.softmax(dim=-1) @ v).transpose(1, 2)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    # (B, h, N, d): SDPA's layout. The fused kernels (CPU flash included) need a unit stride on d; without it
    # SDPA silently takes its math kernel, which is slower and stores the (B, h, N, N) matrix for backward.
    q, k, v = (t.transpose(1, 2) if t.stride(-1) == 1 else t.transpose(1, 2).contiguous() for t in (q, k, v))
    if q.is_cuda and torch.are_deterministic_algorithms_enabled():
        # the fused CUDA kernels' backward is not deterministic; the math kernel is
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    dtype = q.dtype
    if dtype not in (torch.float16, torch.bfloat16):  # fp32 under autocast: run in the autocast dtype
        run_dtype = torch.get_autocast_dtype("cuda")
        q, k, v = (t.to(run_dtype) for t in (q, k, v))
    out = flash_attn_func(q, k, v, softmax_scale=scale, deterministic=torch.are_deterministic_algorithms_enabled())
    return out.to(dtype)


_KERNELS = {"math": _math, "sdpa": _sdpa, "flash": _flash}


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None = None, scale: float | None = None
) -> tuple[torch.Tensor, str]:
    """Scaled dot-product attention over token-major inputs.

    Args:
        q, k: ``(B, N, heads, d)`` and ``(B, M, heads, d)``. v: ``(B, M, heads, d_v)`` (``d_v`` may differ from ``d``).
        backend: ``"sdpa"``, ``"math"``, ``"flash"`` or ``None`` for the process-wide setting.
        scale: logit scale; ``None`` = ``d**-0.5``. (Gold-YOLO's TopFormer attention uses 1.0.)

    Returns:
        ``(B, N, heads, d_v)`` output and the name of the backend that ran.
    """
    name = resolve_backend(backend, q)
    if name == "flash" and v.shape[-1] != q.shape[-1]:
        _warn_once(f"value head_dim {v.shape[-1]} differs from query head_dim {q.shape[-1]}")
        name = "sdpa"
    return _KERNELS[name](q, k, v, scale), name


def backend_report(model: torch.nn.Module) -> dict[str, str]:
    """``{module path: backend}`` for every attention module in ``model``.

    The value is the backend the last forward pass really used (``"flash→sdpa"``-style fallbacks show up as
    ``"sdpa"``), or ``"<setting> (not run yet)"`` before the first forward.
    """
    report = {}
    for name, m in model.named_modules():
        if hasattr(m, "attn_backend"):
            ran = getattr(m, "last_backend", None)
            report[name] = ran or f"{m.attn_backend or get_attn_backend()} (not run yet)"
    return report


def check_backend_arg(name: str | None) -> str | None:
    """Validate a module's ``attn_backend`` argument (``None`` allowed)."""
    return validate_backend(name, allow_none=True)


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext backends``: which attention backends can run here, and the process default."""
    import argparse

    import torch

    argparse.ArgumentParser(prog="ultra-ext backends", description=main.__doc__.split(": ", 1)[1]).parse_args(argv)
    print(f"process default: {get_attn_backend()}  (ULTRA_EXT_ATTN=sdpa|math|flash)")
    print("sdpa : available (torch.nn.functional.scaled_dot_product_attention)")
    print("math : available (explicit softmax(q k^T) v; used for export)")
    if flash_attn_func is None:
        print("flash: not installed (pip install 'ultra-ext[flash]' on a CUDA machine)")
    elif not torch.cuda.is_available():
        print("flash: installed, but no CUDA device")
    else:
        cap = torch.cuda.get_device_capability()
        print(f"flash: installed; GPU capability {cap[0]}.{cap[1]} ({'usable' if cap[0] >= 8 else 'needs >= 8.0'})")
    return 0
