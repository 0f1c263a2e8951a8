"""YOLOv12 (arXiv 2502.12524): area attention, ABlock and R-ELAN (A2C2f), v1.0 and turbo layouts.

The v1.0 classes are state-dict compatible with stock Ultralytics ``AAttn``/``ABlock``/``A2C2f`` (same
parameter names and shapes), so stock ``yolo12*`` weights load unchanged. What differs is the attention:
one token-major area split shared by the SDPA (default), flash-attn and explicit math backends
(:mod:`ultra_ext.nn.attention`), instead of a materialised ``(B, h, N, N)`` score matrix.

The turbo layout (separate ``qk``/``v`` projections, 5×5 position perceiver on the ``v`` map) lives in its
own classes; the two layouts are not weight-convertible.

YAML rows (module names as registered: ``ultra_ext.A2C2f``, ``ultra_ext.A2C2fTurbo``)::

    [-1, 4, ultra_ext.A2C2f, [c2, a2, area, residual, mlp_ratio, e, g, shortcut]]

Scale-dependent values (L/X residual and MLP ratio) come from the YAML's ``scale_args`` tables, never from
a special case in the parser.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.block import C3k
from ultralytics.nn.modules.conv import Conv

from .attention import (
    HEAD_DIM,
    AreaSplitError,
    attend,
    channels_to_tokens,
    check_backend_arg,
    check_hidden_width,
    init_conv_weights,
    merge_areas,
    resolve_backend,
    split_areas,
    tokens_to_map,
)
from .checks import AT_LEAST_ONE, EXPANSION, POSITIVE, check_int, check_real, mlp_hidden_width

__all__ = [
    "A2C2f",
    "A2C2fTurbo",
    "AreaAttention",
    "AreaAttentionBlock",
    "AreaAttentionBlockTurbo",
    "AreaAttentionTurbo",
]

class _AreaAttentionBase(nn.Module):
    """What both attention layouts share: head split, area count and the backend switch (no parameters)."""

    def __init__(self, dim: int, num_heads: int, area: int, backend: str | None):
        super().__init__()
        owner = type(self).__name__
        dim, num_heads = check_int(owner, "dim", dim), check_int(owner, "num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"attention width dim={dim} is not divisible into num_heads={num_heads} heads")
        self.area = check_int(owner, "area", area)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_backend = check_backend_arg(backend)
        self.last_backend = None


class AreaAttention(_AreaAttentionBase):
    """Area attention, v1.0 layout (stock-compatible ``qkv``/``proj``/``pe``).

    Args:
        dim: channels ``C`` of the input and output.
        num_heads: heads ``h``; ``C % h == 0``.
        area: areas ``l`` the row-major token list is cut into; tokens attend only inside their area.
        backend: ``"sdpa"``, ``"math"``, ``"flash"`` or ``None`` (follow the process setting).

    Shapes: ``(B, C, H, W)`` → ``(B, C, H, W)``; ``H*W % area == 0``.

    Attributes:
        qkv (Conv): 1×1 conv + BN to ``3C``, per-head interleaved ``[q_j | k_j | v_j]`` blocks of ``3d``.
        proj (Conv): 1×1 conv + BN output projection.
        pe (Conv): 7×7 depthwise conv + BN on the value map (the position perceiver), over the whole map.
        attn_backend (str | None): this module's backend override.
        last_backend (str | None): the backend the last forward pass used.

    Example:
        >>> m = AreaAttention(64, 2, area=4)
        >>> m(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, dim: int, num_heads: int, area: int = 1, backend: str | None = None):
        super().__init__(dim, num_heads, area, backend)
        self.qkv = Conv(dim, 3 * dim, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 7, 1, 3, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        backend = resolve_backend(self.attn_backend, x)
        y = self.qkv(x).reshape(b, self.num_heads, 3 * self.head_dim, h * w)  # per-head [q|k|v] channel blocks
        tokens = channels_to_tokens(y, backend)  # (B, N, h, 3d), row-major tokens
        q, k, v = split_areas(tokens, self.area).split(self.head_dim, dim=-1)  # (B·l, N/l, h, d) each
        out, self.last_backend = attend(q, k, v, backend)
        out = tokens_to_map(merge_areas(out, self.area), h, w)
        v_map = y[:, :, 2 * self.head_dim :].reshape(b, -1, h, w)  # v before the split, NCHW for the depthwise pe
        return self.proj(out + self.pe(v_map))


class AreaAttentionTurbo(_AreaAttentionBase):
    """Area attention, turbo layout: ``qk`` and ``v`` projections, 5×5 position perceiver on the v map.

    Args:
        dim: channels ``C``. num_heads: heads ``h``. area: areas ``l``. backend: see :class:`AreaAttention`.

    Shapes: ``(B, C, H, W)`` → ``(B, C, H, W)``.

    Attributes:
        qk (Conv): 1×1 conv + BN to ``2C``: q = channels ``[0, C)``, k = ``[C, 2C)``, each head-major.
        v (Conv): 1×1 conv + BN, head-major values.
        proj (Conv): 1×1 conv + BN. pe (Conv): 5×5 depthwise conv + BN applied to the ``v`` map.

    Example:
        >>> AreaAttentionTurbo(64, 2, area=4)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    @property
    def unsupported_export_formats(self) -> frozenset:
        """ncnn, with ``area > 1``: PNNX writes a Reshape without its target shape for the 5-D area split of ``qk``
        and ncnn refuses to load the model; ``area == 1`` (YOLOv12-cls) and AreaAttention convert and match
        (measured with pnnx 20260526, ncnn 1.0.20261020). Read by the export check."""
        return frozenset({"ncnn"}) if self.area > 1 else frozenset()

    def __init__(self, dim: int, num_heads: int, area: int = 1, backend: str | None = None):
        super().__init__(dim, num_heads, area, backend)
        self.qk = Conv(dim, 2 * dim, 1, act=False)
        self.v = Conv(dim, dim, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 5, 1, 2, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        backend = resolve_backend(self.attn_backend, x)
        qk = self.qk(x).reshape(b, 2, self.num_heads, self.head_dim, h * w)
        qk = channels_to_tokens(qk, backend)  # (B, N, 2, h, d)
        v_map = self.v(x)
        v = channels_to_tokens(v_map.reshape(b, self.num_heads, self.head_dim, h * w), backend)  # (B, N, h, d)
        qk, v = split_areas(qk, self.area), split_areas(v, self.area)  # token-major split for both
        out, self.last_backend = attend(qk[:, :, 0], qk[:, :, 1], v, backend)
        return self.proj(tokens_to_map(merge_areas(out, self.area), h, w) + self.pe(v_map))


class AreaAttentionBlock(nn.Module):
    """ABlock: ``x + attn(x)`` then ``x + mlp(x)``; no norm layers (Conv+BN instead of Linear+LN).

    Args:
        dim: channels. num_heads: attention heads. mlp_ratio: MLP hidden width / dim. area: attention areas.

    Shapes: ``(B, dim, H, W)`` → ``(B, dim, H, W)``.

    Attributes:
        attn (AreaAttention): area attention. mlp (nn.Sequential): 1×1 Conv+BN+SiLU → 1×1 Conv+BN.

    Example:
        >>> AreaAttentionBlock(64, 2, 2.0, area=1)(torch.randn(1, 64, 4, 4)).shape
        torch.Size([1, 64, 4, 4])
    """

    attention_cls = AreaAttention

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.2, area: int = 1):
        super().__init__()
        self.attn = self.attention_cls(dim, num_heads, area)
        hidden = mlp_hidden_width(type(self).__name__, dim, mlp_ratio)
        self.mlp = nn.Sequential(Conv(dim, hidden, 1), Conv(hidden, dim, 1, act=False))
        self.apply(init_conv_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class AreaAttentionBlockTurbo(AreaAttentionBlock):
    """ABlock with the turbo attention layout (:class:`AreaAttentionTurbo`)."""

    attention_cls = AreaAttentionTurbo


class A2C2f(nn.Module):
    """R-ELAN (A2C2f), v1.0 layout: one transition conv, ELAN-chained units, optional scaled residual.

    Args:
        c1: input channels. c2: output channels.
        n: units; each unit is two ABlocks (``a2``) or one ``C3k`` (neck rows, ``a2=False``).
        a2: use area attention. area: attention areas. residual: add ``x + gamma * out`` (needs c1 == c2).
        mlp_ratio: ABlock MLP ratio. e: hidden width ``c_ = int(c2 * e)``, a multiple of 32.
        g: C3k groups. shortcut: C3k shortcuts.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Attributes:
        cv1 (Conv): ``c1 → c_`` 1×1. m (nn.ModuleList): the units. cv2 (Conv): ``(1+n)·c_ → c2`` 1×1.
        gamma (nn.Parameter | None): per-channel residual scale, initialised to 0.01 (only ``a2 and residual``).

    Example:
        >>> A2C2f(64, 128, n=1, a2=True, area=4)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 128, 8, 8])
    """

    block_cls = AreaAttentionBlock

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        a2: bool = True,
        area: int = 1,
        residual: bool = False,
        mlp_ratio: float = 2.0,
        e: float = 0.5,
        g: int = 1,
        shortcut: bool = True,
    ):
        super().__init__()
        owner = type(self).__name__
        c1, c2, n, g = (check_int(owner, name, v) for name, v in (("c1", c1), ("c2", c2), ("n", n), ("g", g)))
        c_ = self.check_args(owner, c1, c2, a2, area, residual, mlp_ratio, e, g)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv((1 + n) * c_, c2, 1)
        self.gamma = nn.Parameter(0.01 * torch.ones(c2)) if a2 and residual else None
        self.m = nn.ModuleList(
            nn.Sequential(*(self.block_cls(c_, c_ // HEAD_DIM, mlp_ratio, area) for _ in range(2)))
            if a2
            else C3k(c_, c_, 2, shortcut, g)
            for _ in range(n)
        )

    @staticmethod
    def check_args(owner: str, c1: int, c2: int, a2, area, residual, mlp_ratio, e, g) -> int:
        """The rules that relate the arguments, for the constructor and the YAML row alike; the hidden width.

        Raises:
            ValueError: naming the argument and its value.
        """
        e = check_real(owner, "e", e, EXPANSION)
        check_real(owner, "mlp_ratio", mlp_ratio, POSITIVE)  # the blocks check it too, but a2=False builds none
        if a2:
            check_int(owner, "area", area)
        c_ = check_hidden_width(owner, c2, e)
        if a2 and residual and c1 != c2:
            raise ValueError(f"{owner} residual needs c1 == c2, got c1={c1}, c2={c2}")
        if not a2 and (c_ // 2) % g:  # C3k's bottleneck convs are grouped at half the hidden width
            raise ValueError(f"{owner} groups g={g} do not divide the C3k bottleneck width {c_ // 2} (c_/2, c_ = {c_})")
        return c_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            y = [self.cv1(x)]
            y.extend(unit(y[-1]) for unit in self.m)
        except AreaSplitError as e:  # name the YAML layer: the split is only checkable once H×W is known
            raise AreaSplitError(
                f"layer {getattr(self, 'i', '?')} ({type(self).__name__}), map {tuple(x.shape[2:])}: {e}"
            ) from None
        out = self.cv2(torch.cat(y, 1))
        return out if self.gamma is None else x + self.gamma.view(1, -1, 1, 1) * out

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, a2=True, area=1, residual=False, mlp_ratio=2.0, e=0.5, g=1, shortcut=True]``;
        ``c2`` is width-scaled with the stock formula and the row's repeats become ``n``."""
        ctx.check_arity(8, "[c2, a2, area, residual, mlp_ratio, e, g, shortcut]")
        c1 = ctx.c_in_single()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        a2 = ctx.arg(1, "a2", bool, True)
        area = ctx.arg(2, "area", int, 1)
        residual = ctx.arg(3, "residual", bool, False)
        mlp_ratio = ctx.arg(4, "mlp_ratio", float, 2.0, check=POSITIVE)
        e = ctx.arg(5, "e", float, 0.5, check=EXPANSION)
        g = ctx.arg(6, "g", int, 1, check=AT_LEAST_ONE)
        shortcut = ctx.arg(7, "shortcut", bool, True)
        if ctx.n < 1:
            raise ctx.error(f"repeats must be >= 1, got {ctx.n}")
        try:
            check_hidden_width(cls.__name__, c2, e)
        except ValueError as err:  # say where c2 came from: the YAML's value, width-scaled
            raise ctx.error(f"{err} (c2 {c2} is the YAML's {ctx.args[0]} at width {ctx.width_multiple})") from None
        cls.check_args(cls.__name__, c1, c2, a2, area, residual, mlp_ratio, e, g)  # parse_row names the layer
        args = [c1, c2, ctx.n, a2, area, residual, mlp_ratio, e, g, shortcut]
        return {"args": args, "c2": c2, "n": 1, "legacy": False}


class A2C2fTurbo(A2C2f):
    """R-ELAN with turbo-layout area attention (:class:`AreaAttentionBlockTurbo`); arguments as :class:`A2C2f`."""

    block_cls = AreaAttentionBlockTurbo
