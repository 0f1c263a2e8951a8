"""Property-based fuzzing (hypothesis) of the Gold-YOLO modules: the EfficientRep blocks (``efficientrep.py``) and
the GD neck and head (``goldyolo.py``), called directly with generated arguments and inputs.

Properties (each a ``@given`` test; the ``ci`` profile runs 110 examples per test, 770 for this family,
``ULTRA_EXT_FUZZ_PROFILE=nightly`` 1100 per test):

1. EfficientRep blocks (RepVGGBlock, BiasConv, SimConv, BottleRep, BepC3, SimSPPF, SimCSPSPPF) with valid arguments,
   in train and eval mode: the documented output shape ``(B, c2, H/s, W/s)`` (``ceil``: "same" padding) or
   ``(B, c2, H, W)``, all values finite.
2. The same blocks with random BatchNorm statistics: the deploy form that ``DetectionModel.fuse()`` makes (RepVGG
   branches merged into one 3×3 conv with bias, every BN folded into its conv) gives the training form's output in
   eval mode.
3. GD-neck single-map modules and the head (LowStageFusion, ConvAttention, ConvMlp, ConvTransformerBlock,
   HighStageFusion, EfficientDecoupledDetect in train and eval mode): documented shapes, finite.
4. GD-neck gathers (LowStageAlign, LocalFusion3, Injection on its same-size / upsampling / pooling branches,
   HighStageAlign, PoolConcat) on pyramids with the exact size ratios: documented shape, finite, and the channel
   block that passes through unchanged (B4 in LowStageAlign, the coarser map in PoolConcat) is the input.
5. Invalid constructor arguments of the EfficientRep blocks and 6. of the GD-neck modules and the head: one argument
   replaced by a wrong type (str, float, bool, None, list where an int belongs; a name or an instance where a block
   class belongs; a non-list where a channel list belongs), by an out-of-range value (channels, repeats, strides,
   heads < 1; kernels even or < 1; RepVGGBlock kernel != 3; e, ratios <= 0 or not finite; drop_path outside
   [0, 1); empty or non-positive channel lists; unknown attention backend; end2end set), or an inconsistent
   combination (``int(c2·e) = 0``; ``attn_ratio·key_dim`` not a whole number; ``int(dim·mlp_ratio) = 0``). Only
   ``ValueError``/``TypeError`` may be raised, and the message must name the argument and its value.
7. Invalid forward inputs of the gathers: one map off the required size ratio by a few pixels on one axis, the
   wrong number of maps, a bare tensor instead of a list, a global input too narrow for Injection's channel slice.
   Only ``ValueError``/``TypeError`` (``MapSizeError`` for sizes), naming the offending size or count.

Valid ranges (every example tiny; the file takes about 10 s on one idle core, 25 s measured on a busy 2-core host):

* channels 1-64 (hidden widths and split entries 1-32, gathered maps 1-16), batch 1-3, in train mode 2-3 (BatchNorm
  needs more than one value per channel), maps 1-16 px per side (1-8 where attention runs: at most 64 tokens);
* kernels: RepVGGBlock 3, the other convs and the SPPF max-pools odd 1-9; conv strides 1-3; BepC3 repeats 1-4;
  ``e`` in ``[1.001/c2, 1.5]`` (hidden width >= 1); LowStageFusion ``n`` 0-3 blocks, 1-3 splits; SimSPPF
  ``c1 >= 2`` (hidden ``c1 // 2``); blocks RepVGGBlock or BiasConv;
* attention: key_dim 1-8, heads 1-4, attn_ratio from {0.25, 0.5, 0.75, 1, 1.5, 2, 4} with ``attn_ratio·key_dim``
  whole, backend None/sdpa/math; ``mlp_ratio`` in ``[1.001/dim, 2]``; drop_path 0-0.9; HighStageFusion depth 1-3;
* pyramids: LowStageAlign B5 1-2 px with B4, B3, B2 at ×2, ×4, ×8; LocalFusion3 coarser 1-4 px, middle ×2, finer
  ×4; Injection global slice at ``offset`` 0-8 of a global map with 0-8 spare channels, same size as the local
  map, smaller (bilinear upsampling) or an integer 2-4× larger (pooling); HighStageAlign 1-4 maps, each a whole
  multiple 1-16 of the last one (1-4 px), stride 1-3, output ``ceil(H/stride)``; PoolConcat ratio 1-16;
  EfficientDecoupledDetect 1-3 levels at strides 8, 16, 32 (exact ×2 ratios, coarsest 1-2 px), nc 1-8,
  reg_max 1-16.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from ultra_ext.nn.efficientrep import BepC3, BiasConv, BottleRep, RepVGGBlock, SimConv, SimCSPSPPF, SimSPPF
from ultra_ext.nn.goldyolo import (
    ConvAttention,
    ConvMlp,
    ConvTransformerBlock,
    EfficientDecoupledDetect,
    HighStageAlign,
    HighStageFusion,
    Injection,
    LocalFusion3,
    LowStageAlign,
    LowStageFusion,
    PoolConcat,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py, fuzzing.py (no package)
from fuzzing import (  # noqa: E402
    assert_finite,
    assert_fused_matches,
    assert_refused,
    bad_channel_list,
    bad_int,
    build,
    mode_and_batch,
    random_inputs,
    with_examples,
)

MODULES = {
    cls.__name__: cls
    for cls in (
        RepVGGBlock,
        BiasConv,
        SimConv,
        BottleRep,
        BepC3,
        SimSPPF,
        SimCSPSPPF,
        LowStageAlign,
        LowStageFusion,
        LocalFusion3,
        Injection,
        HighStageAlign,
        ConvAttention,
        ConvMlp,
        ConvTransformerBlock,
        HighStageFusion,
        PoolConcat,
        EfficientDecoupledDetect,
    )
}
EFFICIENTREP = ("RepVGGBlock", "BiasConv", "SimConv", "BottleRep", "BepC3", "SimSPPF", "SimCSPSPPF")
STRIDED = ("RepVGGBlock", "BiasConv", "SimConv")  # the blocks with a stride argument ``s``
NECK = ("LowStageFusion", "ConvAttention", "ConvMlp", "ConvTransformerBlock", "HighStageFusion")
GATHERS = ("LowStageAlign", "LocalFusion3", "Injection", "HighStageAlign", "PoolConcat")

# ------------------------------------------------------------------------------------------ valid arguments
CH = st.integers(1, 64)
HIDDEN = st.integers(1, 32)
SIDE = st.integers(1, 16)
ATTN_SIDE = st.integers(1, 8)
ODD_K = st.sampled_from([1, 3, 5, 7, 9])
STRIDE = st.integers(1, 3)
BLOCK = st.sampled_from([RepVGGBlock, BiasConv])
SPLITS = st.lists(HIDDEN, min_size=1, max_size=3)
ATTN_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)  # binary fractions: attn_ratio·key_dim is computed exactly


def hidden_ratio(c2: int, high: float = 1.5) -> st.SearchStrategy[float]:
    """``e`` (or ``mlp_ratio``) with ``int(c2 * e) >= 1``: the hidden width is at least one channel."""
    return st.floats(min_value=1.001 / c2, max_value=high)


@st.composite
def attention_args(draw) -> dict:
    key_dim = draw(st.integers(1, 8))
    ratio = draw(st.sampled_from([r for r in ATTN_RATIOS if (r * key_dim).is_integer()]))
    return dict(key_dim=key_dim, heads=draw(st.integers(1, 4)), attn_ratio=ratio)


@st.composite
def efficientrep_args(draw, kind: str) -> dict:
    """Valid constructor arguments of an EfficientRep block."""
    if kind == "SimSPPF":
        return dict(c1=draw(st.integers(2, 64)), c2=draw(CH), k=draw(ODD_K))
    c1, c2 = draw(CH), draw(CH)
    if kind == "RepVGGBlock":
        return dict(c1=c1, c2=c2, k=3, s=draw(STRIDE))
    if kind in ("BiasConv", "SimConv"):
        return dict(c1=c1, c2=c2, k=draw(ODD_K), s=draw(STRIDE))
    if kind == "BottleRep":
        return dict(c1=c1, c2=c2, block=draw(BLOCK), learnable_alpha=draw(st.booleans()))
    if kind == "BepC3":
        return dict(c1=c1, c2=c2, n=draw(st.integers(1, 4)), e=draw(hidden_ratio(c2)), block=draw(BLOCK))
    assert kind == "SimCSPSPPF", kind
    return dict(c1=c1, c2=c2, k=draw(ODD_K), e=draw(hidden_ratio(c2)))


@st.composite
def neck_args(draw, kind: str) -> dict:
    """Valid constructor arguments of a GD-neck module with one input map, or of the head."""
    if kind == "LowStageFusion":
        return dict(c1=draw(CH), hidden=draw(HIDDEN), splits=draw(SPLITS), n=draw(st.integers(0, 3)), block=draw(BLOCK))
    if kind == "ConvMlp":
        return dict(dim=draw(CH), hidden=draw(CH))
    if kind == "EfficientDecoupledDetect":
        ch = draw(st.lists(HIDDEN, min_size=1, max_size=3))
        return dict(nc=draw(st.integers(1, 8)), reg_max=draw(st.integers(1, 16)), end2end=False, ch=ch)
    dim = draw(CH)
    if kind == "ConvAttention":
        return dict(dim=dim, **draw(attention_args()), backend=draw(st.sampled_from([None, "sdpa", "math"])))
    tail = dict(mlp_ratio=draw(hidden_ratio(dim, 2.0)), drop_path=draw(st.floats(0.0, 0.9)))
    if kind == "ConvTransformerBlock":
        return dict(dim=dim, **draw(attention_args()), **tail)
    assert kind == "HighStageFusion", kind
    return dict(c1=dim, splits=draw(SPLITS), depth=draw(st.integers(1, 3)), **draw(attention_args()), **tail)


@st.composite
def efficientrep_cases(draw, train_modes: tuple[bool, ...] = (False, True)):
    """``(kind, kwargs, input shape, train)``."""
    kind = draw(st.sampled_from(EFFICIENTREP))
    kwargs = draw(efficientrep_args(kind))
    train, batch = draw(mode_and_batch())
    train = train and True in train_modes
    return kind, kwargs, (batch, kwargs["c1"], draw(SIDE), draw(SIDE)), train


@st.composite
def neck_cases(draw):
    """``(kind, kwargs, input shapes, train)``; one shape, or the head's pyramid at strides 8, 16, 32."""
    kind = draw(st.sampled_from(NECK + ("EfficientDecoupledDetect",)))
    kwargs = draw(neck_args(kind))
    train, b = draw(mode_and_batch())
    if kind == "EfficientDecoupledDetect":
        h, w, nl = draw(st.integers(1, 2)), draw(st.integers(1, 2)), len(kwargs["ch"])
        shapes = [(b, c, h * 2 ** (nl - 1 - i), w * 2 ** (nl - 1 - i)) for i, c in enumerate(kwargs["ch"])]
    else:
        side = ATTN_SIDE if kind in ("ConvAttention", "ConvTransformerBlock", "HighStageFusion") else SIDE
        c1 = kwargs.get("c1", kwargs.get("dim"))
        shapes = [(b, c1, draw(side), draw(side))]
    return kind, kwargs, shapes, train


@st.composite
def gather_cases(draw, kinds: tuple[str, ...] = GATHERS):
    """``(kind, kwargs, input shapes, train)``: a pyramid with exactly the size ratios the layer requires."""
    kind = draw(st.sampled_from(kinds))
    train, b = draw(mode_and_batch())
    c = st.integers(1, 16)
    if kind == "LowStageAlign":
        h, w = draw(st.integers(1, 2)), draw(st.integers(1, 2))  # B5; B2 = 8× (at most 16 px)
        return kind, {}, [(b, draw(c), h * r, w * r) for r in (8, 4, 2, 1)], train
    if kind == "LocalFusion3":
        kwargs = dict(c_mid=draw(HIDDEN), c2=draw(HIDDEN))
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # coarser; finer = 4×
        return (
            kind,
            kwargs,
            [(b, kwargs["c2"], 4 * h, 4 * w), (b, kwargs["c_mid"], 2 * h, 2 * w), (b, kwargs["c2"], h, w)],
            train,
        )
    if kind == "Injection":
        kwargs = dict(c_local=draw(HIDDEN), c_global=draw(HIDDEN), c2=draw(HIDDEN), offset=draw(st.integers(0, 8)))
        c_total = kwargs["offset"] + kwargs["c_global"] + draw(st.integers(0, 8))
        branch = draw(st.sampled_from(["same", "upsample", "pool"]))
        if branch == "same":
            h, w = draw(SIDE), draw(SIDE)
            local, glob = (h, w), (h, w)
        elif branch == "upsample":  # local map larger (or equal) on both axes: bilinear resize of the gate
            hg, wg = draw(st.integers(1, 8)), draw(st.integers(1, 8))
            local, glob = (draw(st.integers(hg, 16)), draw(st.integers(wg, 16))), (hg, wg)
        else:  # global map an integer multiple of the local one: average-pooled
            h, w, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(2, 4))
            local, glob = (h, w), (r * h, r * w)
        return kind, kwargs, [(b, kwargs["c_local"], *local), (b, c_total, *glob)], train
    if kind == "HighStageAlign":
        h, w, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
        ratios = [draw(st.integers(1, 16 // max(h, w))) for _ in range(n - 1)] + [1]
        return kind, dict(stride=draw(STRIDE)), [(b, draw(c), r * h, r * w) for r in ratios], train
    assert kind == "PoolConcat", kind
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    r = draw(st.integers(1, 16 // max(h, w)))
    return kind, {}, [(b, draw(c), r * h, r * w), (b, draw(c), h, w)], train


# ------------------------------------------------------------------------------------------------ helpers
def run(module: nn.Module, x, train: bool):
    module.train(train)
    with torch.no_grad():
        return module(x)


def size(shape) -> str:
    """A map's spatial size as the size checks print it (``"5×4"``)."""
    return f"{shape[-2]}×{shape[-1]}"


# ------------------------------------------------------------------------------------ valid: EfficientRep
@given(case=efficientrep_cases())
@example(case=("SimConv", dict(c1=3, c2=5, k=5, s=2), (1, 3, 5, 7), False))  # odd size, stride 2: ceil
@example(case=("SimSPPF", dict(c1=2, c2=1, k=9), (2, 2, 1, 1), True))  # pool kernel larger than the map
def test_efficientrep_blocks_valid_shape_and_finite(case):
    kind, kwargs, shape, train = case
    out = run(build(MODULES[kind], kwargs), random_inputs([shape])[0], train)
    b, _, h, w = shape
    s = kwargs["s"] if kind in STRIDED else 1
    assert out.shape == (b, kwargs["c2"], math.ceil(h / s), math.ceil(w / s))
    assert_finite(out)


@given(case=efficientrep_cases(train_modes=(False,)))
def test_efficientrep_blocks_fused_equal_training_form(case):
    kind, kwargs, shape, _ = case
    fused = assert_fused_matches(build(MODULES[kind], kwargs), random_inputs([shape])[0])
    if kind == "RepVGGBlock":  # the deployed RepVGG: one 3×3 conv with bias
        assert not hasattr(fused, "conv1") and fused.conv.kernel_size == (3, 3) and fused.conv.bias is not None


# ------------------------------------------------------------------------------------ valid: GD neck, head
@given(case=neck_cases())
@example(case=("HighStageFusion", dict(c1=1, splits=[1], depth=1, key_dim=1, heads=1, mlp_ratio=1.0,
                                       attn_ratio=1.0, drop_path=0.0), [(1, 1, 1, 1)], False))  # fmt: skip
def test_neck_modules_and_head_valid_shape_and_finite(case):
    kind, kwargs, shapes, train = case
    module = build(MODULES[kind], kwargs)
    xs = random_inputs(shapes)
    b, (_, _, h, w) = shapes[0][0], shapes[0]
    if kind == "EfficientDecoupledDetect":
        module.stride = torch.tensor([8.0 * 2**i for i in range(len(shapes))])
        out = run(module, xs, train)
        n_anchors = sum(s[2] * s[3] for s in shapes)
        raw = out if train else out[1]
        if not train:  # decoded xywh boxes (pixels) + sigmoid scores
            assert out[0].shape == (b, 4 + kwargs["nc"], n_anchors)
        assert raw["boxes"].shape == (b, 4 * kwargs["reg_max"], n_anchors)
        assert raw["scores"].shape == (b, kwargs["nc"], n_anchors)
    else:
        out = run(module, xs[0], train)
        c2 = sum(kwargs["splits"]) if "splits" in kwargs else kwargs["dim"]
        assert out.shape == (b, c2, h, w)
    assert_finite(out)


@given(case=gather_cases())
@example(case=("HighStageAlign", dict(stride=3), [(1, 2, 4, 2), (1, 3, 2, 1)], False))  # grid smaller than stride
@example(case=("Injection", dict(c_local=1, c_global=1, c2=1, offset=8), [(2, 1, 1, 1), (2, 9, 4, 4)], True))
def test_gathers_valid_shape_and_finite(case):
    kind, kwargs, shapes, train = case
    xs = random_inputs(shapes)
    out = run(build(MODULES[kind], kwargs), xs, train)
    b, (h, w) = shapes[0][0], shapes[-1][2:]
    channels = [s[1] for s in shapes]
    if kind == "LowStageAlign":  # B2, B3 pooled and B5 upsampled onto B4's grid; B4 itself passes unchanged
        assert out.shape == (b, sum(channels), 2 * h, 2 * w)
        assert torch.equal(out[:, channels[0] + channels[1] : sum(channels[:3])], xs[2])
    elif kind == "LocalFusion3":  # onto the middle level
        assert out.shape == (b, kwargs["c2"], 2 * h, 2 * w)
    elif kind == "Injection":  # the local map's size
        assert out.shape == (b, kwargs["c2"], *shapes[0][2:])
    elif kind == "HighStageAlign":  # ceil-mode pooling onto a grid `stride` times coarser than the last map
        assert out.shape == (b, sum(channels), math.ceil(h / kwargs["stride"]), math.ceil(w / kwargs["stride"]))
    else:  # PoolConcat: the finer map pooled onto the coarser one, which passes unchanged
        assert out.shape == (b, sum(channels), h, w)
        assert torch.equal(out[:, channels[0] :], xs[1])
    assert_finite(out)


# ------------------------------------------------------------------------------------ invalid arguments
# Bad values per rule (fuzzing.bad_int, bad_channel_list). None is drawn where a *valid* value exists (e.g. any
# int >= 1 is a valid channel count).
NOT_A_NUMBER = st.one_of(st.text(max_size=4), st.booleans(), st.none(), st.lists(st.floats(0.1, 2), max_size=2))


BAD = {
    "int>=0": bad_int(0),
    "int>=1": bad_int(1),
    "int>=2": bad_int(2),
    "odd": st.one_of(bad_int(1), st.integers(1, 8).map(lambda v: 2 * v)),
    "k=3": st.one_of(bad_int(1), st.integers(1, 9).filter(lambda v: v != 3)),
    "real>0": st.one_of(
        NOT_A_NUMBER, st.floats(max_value=0.0), st.integers(-10, 0), st.sampled_from([math.nan, math.inf])
    ),
    "[0,1)": st.one_of(
        NOT_A_NUMBER, st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.integers(1, 10), st.just(math.nan)
    ),
    "block": st.one_of(
        st.sampled_from(["RepVGGBlock", "BiasConv", 3, None, int, torch.relu]), st.builds(lambda: nn.ReLU())
    ),
    "channels": bad_channel_list(1),
    "backend": st.one_of(
        st.text(max_size=5).filter(lambda s: s.lower() not in ("sdpa", "math", "flash")), st.integers()
    ),
    "truthy": st.one_of(st.just(True), st.integers(1, 5), st.text(min_size=1, max_size=3)),  # end2end must be falsy
}
_ATTN = dict(dim="int>=1", key_dim="int>=1", heads="int>=1", attn_ratio="real>0")
RULES = {  # constructor argument -> rule of its valid values
    "RepVGGBlock": dict(c1="int>=1", c2="int>=1", k="k=3", s="int>=1"),
    "BiasConv": dict(c1="int>=1", c2="int>=1", k="odd", s="int>=1"),
    "SimConv": dict(c1="int>=1", c2="int>=1", k="odd", s="int>=1"),
    "BottleRep": dict(c1="int>=1", c2="int>=1", block="block"),
    "BepC3": dict(c1="int>=1", c2="int>=1", n="int>=1", e="real>0", block="block"),
    "SimSPPF": dict(c1="int>=2", c2="int>=1", k="odd"),
    "SimCSPSPPF": dict(c1="int>=1", c2="int>=1", k="odd", e="real>0"),
    "LowStageFusion": dict(c1="int>=1", hidden="int>=1", splits="channels", n="int>=0", block="block"),
    "LocalFusion3": dict(c_mid="int>=1", c2="int>=1"),
    "Injection": dict(c_local="int>=1", c_global="int>=1", c2="int>=1", offset="int>=0"),
    "HighStageAlign": dict(stride="int>=1"),
    "ConvAttention": dict(**_ATTN, backend="backend"),
    "ConvMlp": dict(dim="int>=1", hidden="int>=1"),
    "ConvTransformerBlock": dict(**_ATTN, mlp_ratio="real>0", drop_path="[0,1)"),
    "HighStageFusion": dict(
        c1="int>=1",
        splits="channels",
        depth="int>=1",
        **{k: v for k, v in _ATTN.items() if k != "dim"},
        mlp_ratio="real>0",
        drop_path="[0,1)",
    ),  # fmt: skip
    "EfficientDecoupledDetect": dict(nc="int>=1", reg_max="int>=1", ch="channels", end2end="truthy"),
}


@st.composite
def combination(draw, kind: str, kwargs: dict) -> tuple[dict, tuple[str, ...]]:
    """Each argument valid on its own, the combination not; returns the arguments and the names the error must give."""
    if kind in ("BepC3", "SimCSPSPPF"):  # hidden width int(c2*e) = 0
        return {**kwargs, "e": draw(st.floats(0.0, 0.999 / kwargs["c2"], exclude_min=True))}, ("c2", "e")
    if kind == "ConvAttention" or draw(st.booleans()):  # value width attn_ratio*key_dim not a whole number
        key_dim = kwargs["key_dim"]
        frac = draw(st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]))  # 0.1 or more off: exactly non-integral
        ratio = (draw(st.integers(0, 4 * key_dim)) + frac) / key_dim
        return {**kwargs, "attn_ratio": ratio}, ("attn_ratio", "key_dim")
    dim = kwargs.get("dim", kwargs.get("c1"))  # MLP width int(dim*mlp_ratio) = 0
    return {**kwargs, "mlp_ratio": draw(st.floats(0.0, 0.999 / dim, exclude_min=True))}, ("mlp_ratio",)


COMBINATIONS = ("BepC3", "SimCSPSPPF", "ConvAttention", "ConvTransformerBlock", "HighStageFusion")


@st.composite
def invalid_constructor_cases(draw, kinds: tuple[str, ...]):
    """``(kind, kwargs, names)``: valid arguments with one replaced by a bad value (or a bad combination)."""
    kind = draw(st.sampled_from(kinds))
    if kind in EFFICIENTREP:
        kwargs = draw(efficientrep_args(kind))
    elif kind in ("LocalFusion3", "Injection", "HighStageAlign"):
        kwargs = draw(gather_cases(kinds=(kind,)))[1]
    else:
        kwargs = draw(neck_args(kind))
    choices = list(RULES[kind]) + (["<combination>"] if kind in COMBINATIONS else [])
    name = draw(st.sampled_from(choices))
    if name == "<combination>":
        kwargs, names = draw(combination(kind, kwargs))
        return kind, kwargs, names
    return kind, {**kwargs, name: draw(BAD[RULES[kind][name]])}, (name,)


EFFICIENTREP_REGRESSIONS = [  # found by this test before the constructors checked their arguments
    ("RepVGGBlock", dict(c1=0, c2=8, k=3, s=1), ("c1",)),  # built a zero-channel conv
    ("RepVGGBlock", dict(c1=-1, c2=8, k=3, s=1), ("c1",)),  # RuntimeError: negative dimension
    ("RepVGGBlock", dict(c1=True, c2=8, k=3, s=1), ("c1",)),  # accepted as 1 channel
    ("RepVGGBlock", dict(c1=8, c2=8, k=3.0, s=1), ("k",)),  # accepted
    ("RepVGGBlock", dict(c1=8, c2=8, k=3, s=0), ("s",)),  # accepted, failed at forward
    ("SimConv", dict(c1=8, c2=8, k=2, s=1), ("k",)),  # even kernel: output one pixel larger than documented
    ("BiasConv", dict(c1=2.0, c2=8, k=3, s=1), ("c1",)),  # TypeError from torch.empty, argument not named
    ("BepC3", dict(c1=8, c2=8, n=0, e=0.5, block=RepVGGBlock), ("n",)),  # accepted (as n=1)
    ("BepC3", dict(c1=8, c2=8, n=1, e=0.5, block="RepVGGBlock"), ("block",)),  # "'str' object is not callable"
    ("SimSPPF", dict(c1=8, c2=8, k=4), ("k",)),  # RuntimeError at forward (concat of 8×8 and 9×9)
    ("SimSPPF", dict(c1=1, c2=8, k=5), ("c1",)),  # zero hidden width
    ("SimCSPSPPF", dict(c1=8, c2=8, k=5, e=0.01), ("c2", "e")),  # zero hidden width accepted
]
NECK_REGRESSIONS = [
    ("LowStageFusion", dict(c1=8, hidden=8, splits=[], n=1), ("splits",)),  # accepted: zero output channels
    ("LowStageFusion", dict(c1=8, hidden=8, splits=[4], n=-1), ("n",)),  # accepted
    ("LocalFusion3", dict(c_mid=8, c2=0), ("c2",)),  # accepted
    ("Injection", dict(c_local=8, c_global=4, c2=8, offset=-1), ("offset",)),  # RuntimeError at forward
    ("HighStageAlign", dict(stride=0), ("stride",)),  # RuntimeError at forward
    ("ConvAttention", dict(dim=8, key_dim=4, heads=2.0), ("heads",)),  # TypeError from torch, argument not named
    ("ConvAttention", dict(dim=0, key_dim=4, heads=2), ("dim",)),  # accepted
    ("ConvMlp", dict(dim=8, hidden=0), ("hidden",)),  # "groups must be a positive integer"
    ("ConvTransformerBlock", dict(dim=8, key_dim=4, heads=2, mlp_ratio=1.0, attn_ratio=2.0, drop_path=1.5),
     ("drop_path",)),  # accepted
    ("HighStageFusion", dict(c1=8, splits=[4], depth=0), ("depth",)),  # accepted: no transformer blocks
    ("HighStageFusion", dict(c1=8, splits=[4], depth=1, drop_path=-0.1), ("drop_path",)),  # accepted
    ("EfficientDecoupledDetect", dict(nc=0, reg_max=16, ch=(8,)), ("nc",)),  # accepted
    ("EfficientDecoupledDetect", dict(nc=2, reg_max=16, ch=[]), ("ch",)),  # accepted: a head without levels
]  # fmt: skip


@given(case=invalid_constructor_cases(EFFICIENTREP))
@with_examples(EFFICIENTREP_REGRESSIONS)
def test_efficientrep_invalid_arguments_raise_value_or_type_error(case):
    kind, kwargs, names = case
    assert_refused(MODULES[kind], kwargs, names)


@given(case=invalid_constructor_cases(tuple(k for k in RULES if k not in EFFICIENTREP)))
@with_examples(NECK_REGRESSIONS)
def test_neck_and_head_invalid_arguments_raise_value_or_type_error(case):
    kind, kwargs, names = case
    assert_refused(MODULES[kind], kwargs, names)


# --------------------------------------------------------------------------------------- invalid inputs
def _off_by(draw, n: int) -> int:
    """A non-zero change of a side of ``n`` px that keeps it >= 1 (-n+1 .. -1 or +1 .. +3, no rejection)."""
    d = draw(st.integers(1 - n, 2))
    return d + 1 if d >= 0 else d


@st.composite
def invalid_gather_inputs(draw):
    """``(kind, kwargs, inputs, needles)``: a valid gather case broken one way; ``needles`` must be in the error."""
    kind, kwargs, shapes, train = draw(gather_cases())
    shapes = [list(s) for s in shapes]
    how = draw(st.sampled_from(["size", "size", "count", "tensor"] + (["channels"] if kind == "Injection" else [])))
    if how == "size":
        if kind == "Injection":  # the pooling branch: the global map must be a whole multiple of the local one
            h, w, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(2, 4))
            shapes[0][2:], shapes[1][2:] = [h, w], [r * h, r * w + _off_by(draw, r * w)]
            return kind, kwargs, random_inputs(shapes), (size(shapes[1]),)
        if kind == "HighStageAlign" and len(shapes) == 1:
            shapes.insert(0, list(shapes[0]))  # a second map; the last one is the reference
        movable = {"HighStageAlign": len(shapes) - 1}.get(kind, len(shapes))  # HighStageAlign: not the reference
        i, axis = draw(st.integers(0, movable - 1)), draw(st.sampled_from([2, 3]))
        shapes[i][axis] += _off_by(draw, shapes[i][axis])  # a ratio that held exactly is now off
        return kind, kwargs, random_inputs(shapes), (size(shapes[i]),)
    if how == "count":
        expected = {"LowStageAlign": 4, "LocalFusion3": 3, "Injection": 2, "PoolConcat": 2, "HighStageAlign": None}[
            kind
        ]
        if expected is None:  # any number of maps, but at least one
            return kind, kwargs, [], ("empty",)
        n = draw(st.integers(0, 6).filter(lambda k: k != expected))
        return kind, kwargs, random_inputs([shapes[0]] * n), (f"got {n} maps",)
    if how == "tensor":  # a bare tensor would otherwise be unpacked along its batch axis
        return kind, kwargs, random_inputs(shapes[:1])[0], ("Tensor",)
    # Injection: the global input has fewer channels than offset + c_global
    kwargs = {**kwargs, "offset": max(kwargs["offset"], 1)}
    shapes[1][1] = draw(st.integers(1, kwargs["offset"] + kwargs["c_global"] - 1))
    return kind, kwargs, random_inputs(shapes), (f"has {shapes[1][1]} channels", "offset")


@given(case=invalid_gather_inputs())
@example(case=("HighStageAlign", dict(stride=2), [], ("empty",)))  # was IndexError
@example(case=("PoolConcat", {}, random_inputs([(1, 2, 4, 4)] * 3), ("got 3 maps",)))  # unpacking error, unnamed
@example(case=("Injection", dict(c_local=8, c_global=4, c2=8, offset=6), random_inputs([(1, 8, 4, 4), (1, 8, 2, 2)]),
               ("has 8 channels", "offset")))  # fmt: skip  # was a RuntimeError from the conv
def test_gathers_invalid_inputs_raise_value_or_type_error(case):
    kind, kwargs, xs, needles = case
    module = build(MODULES[kind], kwargs).eval()
    with pytest.raises(Exception) as info, torch.no_grad():
        module(xs)
    e = info.value
    assert isinstance(e, (ValueError, TypeError)), f"{kind} raised {type(e).__name__}: {e}"
    assert kind in str(e) and all(n in str(e) for n in needles), (needles, str(e))
