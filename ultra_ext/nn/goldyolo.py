"""Gold-YOLO (arXiv 2309.11331): the Gather-and-Distribute (GD) neck and the Efficient Decoupled Head.

The GD neck gathers all backbone levels into one global feature per branch and injects slices of it back into
each level:

* **low branch** — :class:`LowStageAlign` (B2..B5 → B4 grid, concat) → :class:`LowStageFusion`
  (1×1 → blocks → 1×1, output split in two) → slices injected into P4 and P3;
* **high branch** — :class:`HighStageAlign` (P3, P4, B5 → stride-64 grid, concat) → :class:`HighStageFusion`
  (conv transformer blocks → 1×1, output split in two) → slices injected into N4 and N5;
* :class:`LocalFusion3` (LAF: three adjacent levels onto the middle one) and :class:`PoolConcat` (parameter-free)
  prepare each level's local input; :class:`Injection` gates it with the global slice.

A module that produces a global feature exposes ``splits`` (its output channel split, width-scaled); an
``Injection`` row names its global source in ``from`` and picks a split by index, so the YAML says exactly which
slice goes where and the parser checks it.

**Dynamic shapes.** Every resize uses a fixed integer pool ratio (``avg_pool2d`` with kernel = stride = the ratio of
the input strides) or a bilinear resize to a reference map's size, never adaptive pooling with a size taken
from one traced shape; exported graphs therefore work at every input size. This equals the published adaptive
pooling whenever the stride-32 map has an even size (imgsz a multiple of 64). When it is odd, the stride-64 grid
uses ``ceil_mode`` pooling (mean of the valid cells), while the published code's adaptive windows overlap; see
``docs/goldyolo.md``.

**Kept from the published code:** no ``1/sqrt(d)`` scale in the attention (TopFormer's), zero-initialised
attention output BN, SiLU in the low-stage 1×1 convs, the BN defaults of the official SyncBN layers (see
:class:`NeckBatchNorm2d`). **Changed, documented:** the (never used) pooling branch of :class:`Injection` also
applies the hard-sigmoid gate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules.block import DFL
from ultralytics.nn.modules.conv import Conv
from ultralytics.nn.modules.head import Detect

from .attention import attend, channels_to_tokens, check_backend_arg, resolve_backend, tokens_to_map
from .checks import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    check_block,
    check_channel_list,
    check_int,
    check_real,
    mlp_hidden_width,
)
from .efficientrep import RepVGGBlock, SimConv, basic_block
from .shapes import checking_sizes, integer_ratio, layer_name, require_ratio, structural_sizes

__all__ = [
    "ConvAttention",
    "ConvBN",
    "ConvMlp",
    "ConvTransformerBlock",
    "DropPath",
    "EfficientDecoupledDetect",
    "HighStageAlign",
    "HighStageFusion",
    "Injection",
    "LocalFusion3",
    "LowStageAlign",
    "LowStageFusion",
    "NeckBatchNorm2d",
    "PoolConcat",
]


def _resize(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to ``ref``'s spatial size (size read from ``ref``: dynamic in exported graphs)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _maps(module: nn.Module, xs, names: tuple[str, ...]) -> list[torch.Tensor]:
    """The list of input maps of a multi-input layer, one per name (clearer than Python's unpacking error; a bare
    tensor would otherwise be unpacked along its batch axis)."""
    expected = f"{len(names)} maps [{', '.join(names)}]"
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{layer_name(module)} takes a list of {expected}, got {type(xs).__name__}")
    if len(xs) != len(names):
        raise ValueError(f"{layer_name(module)} takes {expected}, got {len(xs)} maps")
    return list(xs)


def _split_source(ctx, f: int, index: int) -> tuple[int, int]:
    """``(offset, channels)`` of split ``index`` of the global-feature layer ``f`` (checked against its splits)."""
    source = ctx.layer(f)
    splits = getattr(source, "splits", None)
    if splits is None:
        raise ctx.error(
            f"the global input (layer {f}, {type(source).__name__}) has no channel splits; "
            f"it must be a LowStageFusion or HighStageFusion layer"
        )
    if not -len(splits) <= index < len(splits) or isinstance(index, bool):
        raise ctx.error(f"global split index {index} is out of range: layer {f} has {len(splits)} splits {splits}")
    index %= len(splits)
    return sum(splits[:index]), splits[index]


def _parse_concat(ctx, n_inputs: int, requirement: str) -> dict:
    """Row rule of the parameter-free gathers: no arguments, ``n_inputs`` maps, output channels = their sum."""
    ctx.check_arity(0, "[]")
    c = ctx.c_in_list()
    if not isinstance(ctx.f, list) or len(c) != n_inputs:
        raise ctx.error(f"{requirement}; 'from' is {ctx.f}")
    return {"args": [], "c2": sum(c), "n": 1}


class NeckBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1), the norm of the official SyncBN layers.

    Ultralytics' post-build init sets eps 1e-3 / momentum 0.03 on every *exact* ``nn.BatchNorm2d`` (as YOLOv6 does);
    the official GD neck's SyncBN layers (injection, transformer) escape that init and keep the defaults. A
    subclass escapes it the same way, so converted official weights give the same numbers.
    """


class ConvBN(Conv):
    """Conv (no bias) + BN, no activation (TopFormer ``Conv2d_BN`` / mmcv ``ConvModule`` without act).

    A ``Conv`` subclass, so the stock ``fuse()`` folds the BN.

    Args:
        c1: input channels. c2: output channels. k: kernel size. bn_weight_init: initial BN scale (0 makes a
            residual branch start as identity).

    Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.

    Example:
        >>> ConvBN(8, 16)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, c1: int, c2: int, k: int = 1, bn_weight_init: float = 1.0):
        super().__init__(c1, c2, k, act=False)
        self.bn = NeckBatchNorm2d(c2)
        nn.init.constant_(self.bn.weight, bn_weight_init)


# ---------------------------------------------------------------------------------------------------- low branch
class LowStageAlign(nn.Module):
    """Low-stage alignment (Low-FAM): B2, B3, B4, B5 brought to the B4 grid and concatenated. No parameters.

    B2 and B3 are average-pooled by 4 and 2, B5 is bilinearly upsampled to B4's size.

    Shapes: ``[(B, c2, 4H, 4W), (B, c3, 2H, 2W), (B, c4, H, W), (B, c5, H/2, W/2)]`` → ``(B, c2+c3+c4+c5, H, W)``.

    Example:
        >>> xs = [torch.randn(1, 4, 32, 32), torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
        >>> LowStageAlign()(xs).shape
        torch.Size([1, 60, 8, 8])
    """

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        b2, b3, b4, b5 = _maps(self, xs, ("B2", "B3", "B4", "B5"))
        require_ratio(self, "input 0 (stride 4)", b2, b4, 4)
        require_ratio(self, "input 1 (stride 8)", b3, b4, 2)
        require_ratio(self, "input 3 (stride 32)", b5, b4, 0.5)
        return torch.cat((F.avg_pool2d(b2, 4), F.avg_pool2d(b3, 2), b4, _resize(b5, b4)), 1)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[B2, B3, B4, B5], 1, LowStageAlign, []]``; output channels = the sum of the inputs'."""
        return _parse_concat(ctx, 4, "gathers exactly four maps at strides 4/8/16/32 (B2, B3, B4, B5)")


class LowStageFusion(nn.Module):
    """Low-stage fusion (Low-IFM): 1×1 conv → ``n`` basic blocks → 1×1 conv, output split into global slices.

    Args:
        c1: input channels (Low-FAM output). hidden: block width ``E_p`` (a per-scale literal: 96/128/192/192).
        splits: output channel split, e.g. ``[64, 32]`` for N: slice 0 goes to P4, slice 1 to P3.
        n: number of basic blocks. block: basic block class (``RepVGGBlock``, or ``BiasConv`` for L).

    Shapes: ``(B, c1, H, W)`` → ``(B, sum(splits), H, W)``.

    Attributes:
        reduce (Conv): 1×1 ``c1 → hidden``, SiLU. blocks (nn.Sequential): ``n`` blocks.
        expand (Conv): 1×1 ``hidden → sum(splits)``, SiLU. splits (list[int]): the output split.

    Example:
        >>> LowStageFusion(60, 16, [16, 8], 1)(torch.randn(1, 60, 8, 8)).shape
        torch.Size([1, 24, 8, 8])
    """

    def __init__(self, c1: int, hidden: int, splits: list[int], n: int = 3, block: type = RepVGGBlock):
        super().__init__()
        check_int("LowStageFusion", "c1", c1)
        check_int("LowStageFusion", "hidden", hidden)
        check_int("LowStageFusion", "n", n, minimum=0)
        check_block("LowStageFusion", block)
        self.splits = check_channel_list("LowStageFusion", "splits", splits)
        self.reduce = Conv(c1, hidden, 1)
        self.blocks = nn.Sequential(*(block(hidden, hidden) for _ in range(n)))
        self.expand = Conv(hidden, sum(self.splits), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.blocks(self.reduce(x)))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[hidden, [c_p4, c_p3], n_blocks=3, block=RepVGGBlock]``; the split list is width-scaled,
        ``hidden`` is taken literally (the published per-scale value)."""
        ctx.check_arity(4, "[hidden, splits, n_blocks, block]")
        c1 = ctx.c_in_single()
        hidden = ctx.arg(0, "hidden", int, check=POSITIVE)
        splits = _width_list(ctx, 1, "splits")
        n = ctx.arg(2, "n_blocks", int, 3, check=NON_NEGATIVE)
        block = basic_block(ctx, 3)
        if ctx.n != 1:
            raise ctx.error(f"repeats must be 1 (the block count is argument 2), got {ctx.n}")
        return {"args": [c1, hidden, splits, n, block], "c2": sum(splits), "n": 1}


def _width_list(ctx, index: int, what: str) -> list[int]:
    """A list-of-channels argument, each entry width-scaled with the stock formula."""
    raw = ctx.arg(index, what, list)
    if not raw or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in raw):
        raise ctx.error(f"argument {index} ({what}) must be a non-empty list of positive ints, got {raw!r}")
    return [ctx.width(c) for c in raw]


class LocalFusion3(nn.Module):
    """Lightweight adjacent-layer fusion (LAF, 3 inputs): the finer and coarser neighbours onto the middle level.

    ``cv_fuse(cat[avgpool2(x_fine), cv1(x_mid), up(x_coarse)])``; only the middle input has a conv (as published),
    so the outer inputs must already have ``c2`` channels.

    Args:
        c_mid: channels of the middle input. c2: output channels (and of the fine and coarse inputs).

    Shapes: ``[(B, c2, 2H, 2W), (B, c_mid, H, W), (B, c2, H/2, W/2)]`` → ``(B, c2, H, W)``.

    Attributes:
        cv1 (SimConv): 1×1 on the middle input. cv_fuse (SimConv): 1×1 ``3·c2 → c2``.

    Example:
        >>> xs = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 8, 4, 4)]
        >>> LocalFusion3(16, 8)(xs).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(self, c_mid: int, c2: int):
        super().__init__()
        check_int("LocalFusion3", "c_mid", c_mid)
        check_int("LocalFusion3", "c2", c2)
        self.cv1 = SimConv(c_mid, c2, 1)
        self.cv_fuse = SimConv(3 * c2, c2, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        fine, mid, coarse = _maps(self, xs, ("finer", "middle", "coarser"))
        require_ratio(self, "input 0 (finer level)", fine, mid, 2)
        require_ratio(self, "input 2 (coarser level)", coarse, mid, 0.5)
        return self.cv_fuse(torch.cat((F.avg_pool2d(fine, 2), self.cv1(mid), _resize(coarse, mid)), 1))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[finer, middle, coarser], 1, LocalFusion3, [c2]]``."""
        ctx.check_arity(1, "[c2]")
        c = ctx.c_in_list()
        if not isinstance(ctx.f, list) or len(c) != 3:
            raise ctx.error(f"fuses exactly three adjacent levels [finer, middle, coarser]; 'from' is {ctx.f}")
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        if c[0] != c2 or c[2] != c2:
            raise ctx.error(
                f"the finer and coarser inputs enter without a conv, so they need c2={c2} channels; "
                f"got {c[0]} (layer {ctx.f[0]}) and {c[2]} (layer {ctx.f[2]})"
            )
        return {"args": [c[1], c2], "c2": c2, "n": 1}


class Injection(nn.Module):
    """Information injection: ``local_embedding(x_l) · hsigmoid(global_act(g)) + global_embedding(g)``.

    ``g`` is one channel slice of a global feature (the ``LowStageFusion``/``HighStageFusion`` output). Both global
    convs run at the global resolution; their outputs are then resized to the local map (bilinear up, or average
    pooling by an integer ratio when the local map is smaller — a case no published config uses, where this
    implementation also applies the gate, unlike the published code).

    Args:
        c_local: local input channels. c_global: global slice channels. c2: output channels.
        offset: first channel of the slice in the global input (which needs ``>= offset + c_global`` channels).

    Shapes: ``[(B, c_local, H, W), (B, C_global_total, h, w)]`` → ``(B, c2, H, W)``.

    Attributes:
        local_embedding, global_embedding, global_act (ConvBN): the three 1×1 conv + BN.

    Example:
        >>> Injection(8, 4, 8, offset=2)([torch.randn(1, 8, 8, 8), torch.randn(1, 6, 4, 4)]).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(self, c_local: int, c_global: int, c2: int, offset: int = 0):
        super().__init__()
        for name, v in (("c_local", c_local), ("c_global", c_global), ("c2", c2)):
            check_int("Injection", name, v)
        check_int("Injection", "offset", offset, minimum=0)
        self.offset, self.c_global = offset, c_global
        self.local_embedding = ConvBN(c_local, c2)
        self.global_embedding = ConvBN(c_global, c2)
        self.global_act = ConvBN(c_global, c2)
        self.gate = nn.Hardsigmoid()  # ReLU6(x + 3) / 6, the published "h_sigmoid"

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        x_local, x_global = _maps(self, xs, ("local", "global"))
        if checking_sizes() and x_global.shape[1] < self.offset + self.c_global:  # slicing would silently narrow it
            raise ValueError(
                f"{layer_name(self)}: the global input has {x_global.shape[1]} channels, but the slice "
                f"offset={self.offset} + c_global={self.c_global} needs {self.offset + self.c_global}"
            )
        g = x_global[:, self.offset : self.offset + self.c_global]
        local, act, emb = self.local_embedding(x_local), self.global_act(g), self.global_embedding(g)
        (h, w), (hg, wg) = x_local.shape[-2:], g.shape[-2:]
        with structural_sizes():  # which branch is fixed by the two inputs' strides, not by the image size
            same_size, local_larger = (h, w) == (hg, wg), bool(h >= hg)
        if same_size:
            gate = self.gate(act)
        elif local_larger:  # the published path: gate at the global resolution, then upsample
            gate, emb = _resize(self.gate(act), local), _resize(emb, local)
        else:
            r = integer_ratio(self, "the global input", g, x_local)
            gate, emb = self.gate(F.avg_pool2d(act, r)), F.avg_pool2d(emb, r)
        return local * gate + emb

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[local, global], 1, Injection, [c2, split_index]]``: the global input is a layer with ``splits``."""
        ctx.check_arity(2, "[c2, split_index]")
        if not isinstance(ctx.f, list) or len(ctx.f) != 2:
            raise ctx.error(f"takes [local, global] inputs; 'from' is {ctx.f}")
        c_local, c_global_total = ctx.c_in_list()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        index = ctx.arg(1, "split_index", int)
        offset, c_global = _split_source(ctx, ctx.f[1], index)
        if offset + c_global > c_global_total:  # cannot happen unless the source layer lies about its splits
            raise ctx.error(f"split {index} ({offset}+{c_global}) exceeds the global input's {c_global_total} channels")
        return {"args": [c_local, c_global, c2, offset], "c2": c2, "n": 1}


# --------------------------------------------------------------------------------------------------- high branch
class HighStageAlign(nn.Module):
    """High-stage alignment (High-FAM): every input average-pooled onto a grid ``stride`` × coarser than the last.

    Each input is pooled with kernel = stride = ``stride × (its size / last input's size)`` and ``ceil_mode``, so the
    output grid is ``ceil(H_last / stride)`` (10×10 from P3 80², P4 40², B5 20² at 640). No parameters.

    Args:
        stride: pooling stride relative to the last input.

    Shapes: ``[(B, c_i, r_i·H, r_i·W), ..., (B, c_last, H, W)]`` → ``(B, Σc_i, ceil(H/stride), ceil(W/stride))``.

    Example:
        >>> xs = [torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
        >>> HighStageAlign(2)(xs).shape
        torch.Size([1, 28, 2, 2])
    """

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = check_int("HighStageAlign", "stride", stride)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{layer_name(self)} takes a list of maps, got {type(xs).__name__}")
        if not xs:
            raise ValueError(f"{layer_name(self)} takes a non-empty list of maps, got an empty {type(xs).__name__}")
        last = xs[-1]
        pooled = []
        for j, x in enumerate(xs):
            k = self.stride * integer_ratio(self, f"input {j}", x, last)
            pooled.append(F.avg_pool2d(x, k, k, ceil_mode=True) if k > 1 else x)
        return torch.cat(pooled, 1)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[P3, P4, B5], 1, HighStageAlign, [stride=2]]``; output channels = the sum of the inputs'."""
        ctx.check_arity(1, "[stride]")
        c = ctx.c_in_list()
        stride = ctx.arg(0, "stride", int, 2, check=AT_LEAST_ONE)
        return {"args": [stride], "c2": sum(c), "n": 1}


def value_width(owner: str, key_dim: int, attn_ratio) -> int:
    """The per-head value width ``attn_ratio * key_dim`` of :class:`ConvAttention`: a whole number >= 1."""
    d_v = check_real(owner, "attn_ratio", attn_ratio, POSITIVE) * key_dim
    if d_v != int(d_v) or d_v < 1:
        raise ValueError(
            f"{owner} value width attn_ratio*key_dim = {attn_ratio}*{key_dim} must be a whole number >= 1, got "
            f"attn_ratio={attn_ratio!r}, key_dim={key_dim}"
        )
    return int(d_v)


class ConvAttention(nn.Module):
    """Multi-head attention with conv+BN projections (TopFormer), run through the ultra_ext attention backends.

    ``q, k = ConvBN(dim → heads·key_dim)``; ``v = ConvBN(dim → heads·d_v)``, ``d_v = attn_ratio·key_dim``;
    ``out = proj(ReLU6(softmax(q kᵀ) v))`` — **no** ``1/sqrt(key_dim)`` scale, as published. ``proj``'s BN starts at
    zero, so a residual block starts as the identity.

    Args:
        dim: channels. key_dim: query/key width per head. heads: number of heads. attn_ratio: ``d_v / key_dim``.
        backend: ``"sdpa"``, ``"math"``, ``"flash"`` or ``None`` (process setting).

    Shapes: ``(B, dim, H, W)`` → ``(B, dim, H, W)``.

    Example:
        >>> ConvAttention(32, 8, 2, 2)(torch.randn(1, 32, 4, 4)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, dim: int, key_dim: int, heads: int, attn_ratio: float = 2.0, backend: str | None = None):
        super().__init__()
        for name, v in (("dim", dim), ("key_dim", key_dim), ("heads", heads)):
            check_int("ConvAttention", name, v)
        self.heads, self.key_dim, self.d_v = heads, key_dim, value_width("ConvAttention", key_dim, attn_ratio)
        self.attn_backend = check_backend_arg(backend)
        self.last_backend = None
        self.to_q = ConvBN(dim, heads * key_dim)
        self.to_k = ConvBN(dim, heads * key_dim)
        self.to_v = ConvBN(dim, heads * self.d_v)
        self.proj = nn.Sequential(nn.ReLU6(), ConvBN(heads * self.d_v, dim, bn_weight_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        backend = resolve_backend(self.attn_backend, x)
        q, k = (
            channels_to_tokens(t(x).reshape(b, self.heads, self.key_dim, h * w), backend)
            for t in (self.to_q, self.to_k)
        )
        v = channels_to_tokens(self.to_v(x).reshape(b, self.heads, self.d_v, h * w), backend)
        out, self.last_backend = attend(q, k, v, backend, scale=1.0)  # (B, N, heads, d_v)
        return self.proj(tokens_to_map(out, h, w))


class ConvMlp(nn.Module):
    """Conv MLP: ``ConvBN(dim → hidden)`` → depthwise 3×3 (bias) → ReLU6 → ``ConvBN(hidden → dim)``.

    Shapes: ``(B, dim, H, W)`` → ``(B, dim, H, W)``.

    Example:
        >>> ConvMlp(16, 32)(torch.randn(1, 16, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        check_int("ConvMlp", "dim", dim)
        check_int("ConvMlp", "hidden", hidden)
        self.fc1 = ConvBN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=True)
        self.act = nn.ReLU6()
        self.fc2 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth per sample: in training, zero each sample's residual branch with probability ``p`` and
    scale the kept ones by ``1 / (1 - p)``; the identity in eval.

    torchvision's ``StochasticDepth(p, "row")`` computes the same (same random draws, bit for bit), but importing
    ``torchvision.ops`` costs seconds at start-up, and the startup hook imports this module in every process that
    imports Ultralytics.

    Shapes: ``(B, ...)`` → ``(B, ...)``.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = check_real("DropPath", "p", p, PROBABILITY)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvTransformerBlock(nn.Module):
    """``x + drop_path(attn(x))``, then ``x + drop_path(mlp(x))``; no LayerNorm (the BNs live in the convs).

    Args:
        dim: channels. key_dim, heads, attn_ratio: see :class:`ConvAttention`. mlp_ratio: MLP hidden / dim.
        drop_path: stochastic-depth probability (per sample, training only).

    Shapes: ``(B, dim, H, W)`` → ``(B, dim, H, W)``.
    """

    def __init__(self, dim: int, key_dim: int, heads: int, mlp_ratio: float, attn_ratio: float, drop_path: float):
        super().__init__()
        self.attn = ConvAttention(dim, key_dim, heads, attn_ratio)
        hidden = mlp_hidden_width("ConvTransformerBlock", dim, mlp_ratio)
        check_real("ConvTransformerBlock", "drop_path", drop_path, PROBABILITY)
        self.mlp = ConvMlp(dim, hidden)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class HighStageFusion(nn.Module):
    """High-stage fusion (High-IFM): conv transformer blocks, then a 1×1 conv (bias) to the global slices.

    Args:
        c1: input channels (High-FAM output). splits: output split, e.g. ``[64, 128]`` for N (N4, N5).
        depth: transformer blocks. key_dim, heads, mlp_ratio, attn_ratio: per block.
        drop_path: the last block's stochastic depth; block ``i`` gets ``linspace(0, drop_path, depth)[i]``.

    Shapes: ``(B, c1, H, W)`` → ``(B, sum(splits), H, W)``.

    Attributes:
        blocks (nn.Sequential): the transformer blocks. out (nn.Conv2d): 1×1 with bias, no BN/activation.
        splits (list[int]): the output split.

    Example:
        >>> HighStageFusion(32, [8, 16], 1, 8, 2)(torch.randn(1, 32, 4, 4)).shape
        torch.Size([1, 24, 4, 4])
    """

    def __init__(
        self,
        c1: int,
        splits: list[int],
        depth: int = 2,
        key_dim: int = 8,
        heads: int = 4,
        mlp_ratio: float = 1.0,
        attn_ratio: float = 2.0,
        drop_path: float = 0.1,
    ):
        super().__init__()
        check_int("HighStageFusion", "c1", c1)
        check_int("HighStageFusion", "depth", depth)
        # checked here too: with depth 1 the only block gets rate 0 and would never see the value
        check_real("HighStageFusion", "drop_path", drop_path, PROBABILITY)
        self.splits = check_channel_list("HighStageFusion", "splits", splits)
        rates = torch.linspace(0, drop_path, depth, device="cpu").tolist()  # one block: [0.0]; cpu: meta-safe
        self.blocks = nn.Sequential(
            *(ConvTransformerBlock(c1, key_dim, heads, mlp_ratio, attn_ratio, p) for p in rates)
        )
        self.out = nn.Conv2d(c1, sum(self.splits), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML args ``[[c_n4, c_n5], depth, key_dim, heads, mlp_ratio=1, attn_ratio=2, drop_path=0.1]``;
        the split list is width-scaled."""
        ctx.check_arity(7, "[splits, depth, key_dim, heads, mlp_ratio, attn_ratio, drop_path]")
        c1 = ctx.c_in_single()
        splits = _width_list(ctx, 0, "splits")
        depth = ctx.arg(1, "depth", int, check=AT_LEAST_ONE)
        key_dim = ctx.arg(2, "key_dim", int, check=AT_LEAST_ONE)
        heads = ctx.arg(3, "heads", int, check=AT_LEAST_ONE)
        mlp_ratio = ctx.arg(4, "mlp_ratio", float, 1.0, check=POSITIVE)
        attn_ratio = ctx.arg(5, "attn_ratio", float, 2.0, check=POSITIVE)
        drop_path = ctx.arg(6, "drop_path", float, 0.1, check=PROBABILITY)
        value_width(cls.__name__, key_dim, attn_ratio)  # the constructors' rules; parse_row names the layer
        mlp_hidden_width(cls.__name__, c1, mlp_ratio)
        if ctx.n != 1:
            raise ctx.error(f"repeats must be 1 (the block count is argument 1, depth), got {ctx.n}")
        return {
            "args": [c1, splits, depth, key_dim, heads, mlp_ratio, attn_ratio, drop_path],
            "c2": sum(splits),
            "n": 1,
        }


class PoolConcat(nn.Module):
    """Parameter-free fusion: ``cat[avgpool_r(x_fine), x_coarse]``, ``r`` the integer size ratio (2 in Gold-YOLO).

    Shapes: ``[(B, c1, rH, rW), (B, c2, H, W)]`` → ``(B, c1 + c2, H, W)``.

    Example:
        >>> PoolConcat()([torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4)]).shape
        torch.Size([1, 10, 4, 4])
    """

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        fine, coarse = _maps(self, xs, ("finer", "coarser"))
        r = integer_ratio(self, "input 0", fine, coarse)
        return torch.cat((F.avg_pool2d(fine, r) if r > 1 else fine, coarse), 1)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[finer, coarser], 1, PoolConcat, []]``."""
        return _parse_concat(ctx, 2, "takes [finer, coarser] inputs")


# ---------------------------------------------------------------------------------------------------------- head
class EfficientDecoupledDetect(Detect):
    """Efficient Decoupled Head (YOLOv6 v3.0 / Gold-YOLO) as a drop-in Ultralytics ``Detect``.

    Per level: ``stem`` 1×1 Conv (SiLU), then a classification branch (3×3 Conv → 1×1 to ``nc``) and a box branch
    (3×3 Conv → 1×1 to ``4·reg_max``, side-major bins). Training and inference outputs, decoding, DFL, loss,
    NMS and export are Ultralytics' own. ``reg_max`` comes from the YAML: 17 bins for the published S/M/L,
    1 (direct distances, no DFL) for N; the stock default is 16.

    Args:
        nc: classes. reg_max: box bins per side. end2end: must be False (no one-to-one branch). ch: input channels.

    Shapes: ``[(B, ch_i, H_i, W_i)]`` → training: dict of ``boxes (B, 4·reg_max, A)``, ``scores (B, nc, A)``;
    inference: ``(B, 4 + nc, A)`` decoded boxes (xywh, pixels) and sigmoid scores.

    Attributes:
        stems (nn.ModuleList): per-level 1×1 Conv. cv2 (nn.ModuleList): box branches. cv3 (nn.ModuleList): class
            branches (Ultralytics' names, so stock code that walks a Detect head finds them).

    Initialisation is Ultralytics' ``Detect.bias_init`` (inherited), not the published one (zero prediction weights,
    class bias −log 99, box bias 1): under Ultralytics' trainer, which has no anchor-aided branch to carry gradients
    while the prediction convs are zero, the published init left goldyolo-n at mAP 0 for its first five epochs
    (docs/training.md, "Gold-YOLO-N's slow start"). Loaded weights are unaffected.

    Example:
        >>> head = EfficientDecoupledDetect(nc=2, reg_max=16, ch=(16, 32))
        >>> head.stride = torch.tensor([8.0, 16.0])
        >>> head.eval()([torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)])[0].shape
        torch.Size([1, 6, 80])
    """

    def __init__(self, nc: int = 80, reg_max: int = 16, end2end: bool = False, ch: tuple[int, ...] = ()):
        if end2end:
            raise ValueError(
                "EfficientDecoupledDetect has no one-to-one (end2end) branch; set end2end=False, "
                f"got end2end={end2end!r}"
            )
        check_int("EfficientDecoupledDetect", "nc", nc)
        check_int("EfficientDecoupledDetect", "reg_max", reg_max)
        ch = check_channel_list("EfficientDecoupledDetect", "ch", ch)
        # Detect.__init__ would build (and we would discard) the stock branches; set its attributes directly
        nn.Module.__init__(self)
        self.nc, self.nl, self.reg_max = nc, len(ch), reg_max
        self.no = nc + 4 * reg_max
        self.stride = torch.zeros(self.nl)
        self.stems = nn.ModuleList(Conv(c, c, 1) for c in ch)
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c, 3), nn.Conv2d(c, 4 * reg_max, 1)) for c in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c, 3), nn.Conv2d(c, nc, 1)) for c in ch)
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()

    def forward_head(self, x, box_head=None, cls_head=None) -> dict:
        """The shared per-level stem, then Ultralytics' box/class concatenation."""
        if box_head is None or cls_head is None:
            return {}
        return super().forward_head([stem(xi) for stem, xi in zip(self.stems, x)], box_head, cls_head)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[P3, N4, N5], 1, EfficientDecoupledDetect, [nc]]``; ``reg_max`` is the YAML's top-level key."""
        ctx.check_arity(1, "[nc]")
        ch = ctx.c_in_list()
        nc = ctx.arg(0, "nc", int, check=AT_LEAST_ONE)
        if not isinstance(ctx.reg_max, int) or ctx.reg_max < 1:
            raise ctx.error(f"the YAML's reg_max must be an int >= 1 (bins per box side), got {ctx.reg_max!r}")
        if ctx.end2end:
            raise ctx.error("this head has no one-to-one (end2end) branch; set end2end: False in the YAML")
        return {"args": [nc, ctx.reg_max, False, ch], "c2": ch[0], "n": 1}
