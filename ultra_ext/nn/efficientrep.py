"""EfficientRep / CSPBep layers (YOLOv6 v3.0), the backbone and neck blocks of Gold-YOLO.

Built on Ultralytics' own layers wherever the maths is the same: ``RepVGGBlock`` is Ultralytics' ``RepConv``
with ReLU and the identity branch, ``SimConv`` is ``Conv`` with ReLU, ``SimSPPF`` is ``SPPF`` with ReLU.
Being subclasses, they are folded by the stock ``DetectionModel.fuse()`` (RepVGG branches → one 3×3 conv, BN
→ conv) with no extra code.

YAML rows (channels at width 1.0; the parser width-scales them with the stock formula)::

    [-1, 1, RepVGGBlock, [c2, 3, s]]          # n > 1 stacks n blocks (= YOLOv6 RepBlock when c1 == c2)
    [-1, 1, BiasConv, [c2, 3, s]]             # Gold-YOLO-L's "conv_silu" block
    [-1, 1, SimConv, [c2, k, s]]
    [-1, n, BepC3, [c2, e, RepVGGBlock]]      # CSP stage; consumes the repeats (max(1, n//2) BottleReps)
    [-1, 1, SimSPPF, [c2, 5]]
    [-1, 1, SimCSPSPPF, [c2, 5, 0.5]]
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.block import SPPF
from ultralytics.nn.modules.conv import Conv, RepConv, autopad

from .checks import EXPANSION, ODD_KERNEL, POSITIVE, check_block, check_int, check_odd_kernel, expanded_width

__all__ = [
    "BASIC_BLOCKS",
    "BepC3",
    "BiasConv",
    "BottleRep",
    "RepVGGBlock",
    "SimCSPSPPF",
    "SimConv",
    "SimSPPF",
    "basic_block",
]


def _parse_conv_row(ctx, default_k: int, allowed_k: tuple[int, ...] | None = None) -> dict:
    """Shared argument rule of the single-conv blocks: ``[c2, k=default_k, s=1]``, stackable with ``n``."""
    ctx.check_arity(3, "[c2, k, s]")
    c1 = ctx.c_in_single()
    c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
    k = ctx.arg(1, "k", int, default_k, check=ODD_KERNEL)
    if allowed_k and k not in allowed_k:
        raise ctx.error(f"kernel size k={k} is not supported (allowed: {allowed_k})")
    s = ctx.arg(2, "s", int, 1, check=POSITIVE)
    if ctx.n < 1:
        raise ctx.error(f"repeats must be >= 1, got {ctx.n}")
    if ctx.n > 1 and (c1 != c2 or s != 1):
        raise ctx.error(
            f"repeats={ctx.n} stacks identical blocks, which needs input channels == output channels and s == 1 "
            f"(got c1={c1}, c2={c2}, s={s}); put the downsampling block in its own row"
        )
    return {"args": [c1, c2, k, s], "c2": c2, "n": ctx.n}


def _check_conv_args(owner: str, c1, c2, k, s) -> None:
    """Channels and stride ints >= 1; ``k`` odd, so that the output is ``ceil(H / s)`` as documented."""
    for name, v in (("c1", c1), ("c2", c2), ("s", s)):
        check_int(owner, name, v)
    check_odd_kernel(owner, "k", k)


class RepVGGBlock(RepConv):
    """RepVGG block: ``ReLU(BN(conv3×3 x) + BN(conv1×1 x) + BN(x))``, re-parameterised to one 3×3 conv by ``fuse()``.

    The identity branch exists when ``c1 == c2`` and ``s == 1``. After the stock ``DetectionModel.fuse()``
    (``RepConv.fuse_convs``) the block is a single 3×3 conv with bias + ReLU, the deployed RepVGG.

    Args:
        c1: input channels. c2: output channels. k: kernel size, must be 3. s: stride.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H/s, W/s)`` (``ceil`` when ``s`` does not divide the size).

    Attributes:
        conv1 (Conv): 3×3 conv + BN. conv2 (Conv): 1×1 conv + BN. bn (nn.BatchNorm2d | None): identity branch.

    Example:
        >>> RepVGGBlock(16, 16)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    default_act = nn.ReLU()

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1):
        for name, v in (("c1", c1), ("c2", c2), ("s", s), ("k", k)):
            check_int("RepVGGBlock", name, v)
        if k != 3:
            raise ValueError(f"RepVGGBlock kernel must be 3, got k={k!r}")
        super().__init__(c1, c2, 3, s, p=1, act=True, bn=True)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, k=3, s=1]``; ``n`` > 1 stacks ``n`` blocks (needs ``c1 == c2``, ``s == 1``)."""
        return _parse_conv_row(ctx, 3, (3,))


class BiasConv(Conv):
    """Conv with bias + BN + SiLU: YOLOv6's ``ConvWrapper``, the basic block of Gold-YOLO-L ("conv_silu").

    Differs from Ultralytics ``Conv`` only by the conv bias (``c2`` more parameters before fusion, identical
    after BN folding); kept so that official L weights convert one to one.

    Args:
        c1: input channels. c2: output channels. k: kernel size (odd). s: stride.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H/s, W/s)`` (``ceil`` when ``s`` does not divide the size).

    Example:
        >>> BiasConv(16, 32, 3, 2)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1):
        _check_conv_args("BiasConv", c1, c2, k, s)
        super().__init__(c1, c2, k, s)
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k), bias=True)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, k=3, s=1]``; ``n`` > 1 stacks ``n`` blocks."""
        return _parse_conv_row(ctx, 3)


class SimConv(Conv):
    """Conv (no bias) + BN + **ReLU**, YOLOv6's ``SimConv``; padding ``k // 2``.

    Args:
        c1: input channels. c2: output channels. k: kernel size (odd). s: stride.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H/s, W/s)`` (``ceil`` when ``s`` does not divide the size).

    Example:
        >>> SimConv(16, 8, 1)(torch.randn(1, 16, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    default_act = nn.ReLU()

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1):
        _check_conv_args("SimConv", c1, c2, k, s)
        super().__init__(c1, c2, k, s)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, k=1, s=1]``; ``n`` > 1 stacks ``n`` convs."""
        return _parse_conv_row(ctx, 1)


BASIC_BLOCKS = {"RepVGGBlock": RepVGGBlock, "BiasConv": BiasConv}
"""Blocks a YAML may name as the basic block of ``BepC3`` / the GD neck's fusion stages."""


def basic_block(ctx, index: int, default: str = "RepVGGBlock") -> type:
    """Read a basic-block name argument (``RepVGGBlock`` or ``BiasConv``)."""
    name = ctx.arg(index, "block", str, default)
    if name not in BASIC_BLOCKS:
        raise ctx.error(f"argument {index} (block)={name!r} is not one of {sorted(BASIC_BLOCKS)}")
    return BASIC_BLOCKS[name]


class BottleRep(nn.Module):
    """Two basic blocks with a learnable-weight shortcut: ``y = block(block(x)) + alpha·x`` (shortcut if c1 == c2).

    Args:
        c1: input channels. c2: output channels. block: basic block class (``RepVGGBlock`` or ``BiasConv``).
        learnable_alpha: ``alpha`` is a learnable scalar initialised to 1 (YOLOv6 ``weight=True``), else 1.0.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Attributes:
        conv1, conv2 (nn.Module): the two blocks. alpha (nn.Parameter | float): shortcut weight.

    Example:
        >>> BottleRep(16, 16, RepVGGBlock)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, c1: int, c2: int, block: type = RepVGGBlock, learnable_alpha: bool = True):
        super().__init__()
        check_int("BottleRep", "c1", c1)
        check_int("BottleRep", "c2", c2)
        check_block("BottleRep", block)
        self.conv1 = block(c1, c2)
        self.conv2 = block(c2, c2)
        self.shortcut = c1 == c2
        self.alpha = nn.Parameter(torch.ones(1)) if learnable_alpha else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + self.alpha * x if self.shortcut else y


class BepC3(nn.Module):
    """CSP stage of CSPBep (YOLOv6 v3.0 M/L): ``cv3(cat[BottleReps(cv1 x), cv2 x])``.

    Args:
        c1: input channels. c2: output channels.
        n: the YAML repeats (>= 1); the stage holds ``max(1, n // 2)`` BottleReps (two blocks each), as YOLOv6's
            ``RepBlock(..., block=BottleRep)`` does.
        e: hidden width ``c_ = int(c2 * e)`` (Gold-YOLO-M: 2/3, L: 1/2).
        block: basic block class. The 1×1 convs use ReLU, or SiLU when the block is ``BiasConv`` (as YOLOv6).

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Attributes:
        cv1, cv2 (Conv): 1×1 ``c1 → c_``. cv3 (Conv): 1×1 ``2c_ → c2``. m (nn.Sequential): the BottleReps.

    Example:
        >>> BepC3(32, 32, n=4, e=0.5)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, block: type = RepVGGBlock):
        super().__init__()
        for name, v in (("c1", c1), ("c2", c2), ("n", n)):
            check_int("BepC3", name, v)
        check_block("BepC3", block)
        c_ = expanded_width("BepC3", c2, e)
        act = nn.SiLU() if block is BiasConv else nn.ReLU()
        self.cv1 = Conv(c1, c_, 1, act=act)
        self.cv2 = Conv(c1, c_, 1, act=act)
        self.cv3 = Conv(2 * c_, c2, 1, act=act)
        self.m = nn.Sequential(*(BottleRep(c_, c_, block) for _ in range(max(1, n // 2))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, e=0.5, block=RepVGGBlock]``; the row's (depth-scaled) repeats become ``n``."""
        ctx.check_arity(3, "[c2, e, block]")
        c1 = ctx.c_in_single()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        e = ctx.arg(1, "e", float, 0.5, check=EXPANSION)
        block = basic_block(ctx, 2)
        if ctx.n < 1:
            raise ctx.error(f"repeats must be >= 1, got {ctx.n}")
        expanded_width(cls.__name__, c2, e)  # parse_row names the layer
        return {"args": [c1, c2, ctx.n, e, block], "c2": c2, "n": 1}


class SimSPPF(SPPF):
    """SPPF with ReLU convs (YOLOv6 ``SimSPPF``, Gold-YOLO-M): 1×1 → three chained k×k max-pools → concat → 1×1.

    Args:
        c1: input channels (>= 2: the hidden width is ``c1 // 2``). c2: output channels. k: max-pool kernel (odd).

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Example:
        >>> SimSPPF(32, 32)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, c1: int, c2: int, k: int = 5):
        check_int("SimSPPF", "c1", c1, minimum=2)  # hidden width c1 // 2
        check_int("SimSPPF", "c2", c2)
        check_odd_kernel("SimSPPF", "k", k)
        super().__init__(c1, c2, k)
        self.cv1.act = nn.ReLU()
        self.cv2.act = nn.ReLU()

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, k=5]``."""
        ctx.check_arity(2, "[c2, k]")
        c1 = ctx.c_in_single()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        k = ctx.arg(1, "k", int, 5, check=ODD_KERNEL)
        return {"args": [c1, c2, k], "c2": c2, "n": 1}


class SimCSPSPPF(nn.Module):
    """CSP version of SimSPPF (YOLOv6 ``SimCSPSPPF``, Gold-YOLO-N/S). All convs are :class:`SimConv`.

    ``x1 = cv4(cv3(cv1 x))``; ``y3 = cv6(cv5(cat[x1, mp x1, mp² x1, mp³ x1]))``; ``out = cv7(cat[cv2 x, y3])``.

    Args:
        c1: input channels. c2: output channels. k: max-pool kernel (odd). e: hidden width ``c_ = int(c2 * e) >= 1``.

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Example:
        >>> SimCSPSPPF(32, 32)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, c1: int, c2: int, k: int = 5, e: float = 0.5):
        super().__init__()
        for name, v in (("c1", c1), ("c2", c2)):
            check_int("SimCSPSPPF", name, v)
        check_odd_kernel("SimCSPSPPF", "k", k)
        c_ = expanded_width("SimCSPSPPF", c2, e)
        self.cv1 = SimConv(c1, c_, 1)
        self.cv2 = SimConv(c1, c_, 1)
        self.cv3 = SimConv(c_, c_, 3)
        self.cv4 = SimConv(c_, c_, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.cv5 = SimConv(4 * c_, c_, 1)
        self.cv6 = SimConv(c_, c_, 3)
        self.cv7 = SimConv(2 * c_, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.m(x1)
        y2 = self.m(y1)
        y3 = self.cv6(self.cv5(torch.cat((x1, y1, y2, self.m(y2)), 1)))
        return self.cv7(torch.cat((self.cv2(x), y3), 1))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[c2, k=5, e=0.5]``."""
        ctx.check_arity(3, "[c2, k, e]")
        c1 = ctx.c_in_single()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        k = ctx.arg(1, "k", int, 5, check=ODD_KERNEL)
        e = ctx.arg(2, "e", float, 0.5, check=EXPANSION)
        expanded_width(cls.__name__, c2, e)  # parse_row names the layer
        return {"args": [c1, c2, k, e], "c2": c2, "n": 1}
