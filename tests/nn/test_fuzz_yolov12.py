"""Property-based fuzzing (hypothesis) of the YOLOv12 family: ``ultra_ext.nn.attention`` and ``ultra_ext.nn.yolov12``.

What is fuzzed, and over which valid ranges (kept tiny so that one example costs milliseconds on one core):

* ``attend`` with ``split_areas``/``merge_areas`` (the attention core): batch 1-3, query tokens ``N`` 1-32, key
  tokens ``M`` 1-32, heads 1-4, head widths ``d``/``d_v`` 1-16, scale ``None`` or 0.1-2, areas dividing ``N``,
  query and key magnitudes 1e-3 to 3 (logits up to ~100, where float32 backends still agree closely).
* ``AreaAttention``, ``AreaAttentionTurbo``, ``AreaAttentionBlock``, ``AreaAttentionBlockTurbo``: ``dim = heads ·
  head_dim`` <= 64 (heads 1-4, any head width), area 1-8, MLP ratio with ``int(dim · mlp_ratio) >= 1`` up to 4,
  maps up to 16×16 whose token count the area divides.
* ``A2C2f``, ``A2C2fTurbo``: ``c1`` 1-64 (``= c2`` with the residual), ``c2`` <= 64 and ``e`` such that the hidden
  width ``int(c2·e)`` is 32 or 64, 1-2 units, ``a2`` on/off, area 1-4, residual on/off, MLP ratio 0.1-3, groups
  ``g`` dividing the C3k bottleneck width ``int(c2·e) / 2`` (``a2=False``), shortcut on/off.

Every valid example draws batch 1-3 and eval or training mode (training needs more than one value per BatchNorm
channel, ``B·H·W > 1``), and input magnitudes 1e-3 to 10. Properties:

1. valid inputs give the documented shape (``(B, N, heads, d_v)`` for ``attend``, ``(B, C, H, W)`` for the
   attention layers and blocks, ``(B, c2, H, W)`` for A2C2f), finite values, and the ``sdpa`` and ``math`` backends
   agree (the ``last_backend`` attribute names the one that ran);
2. invalid constructor arguments (non-positive or non-int sizes, bools where ints belong, heads not dividing the
   width, hidden width not a multiple of 32, MLP ratio that is not a finite number giving >= 1 hidden channel,
   residual with ``c1 != c2``, groups not dividing the bottleneck width, unknown attention backends) raise only
   ``ValueError``/``TypeError``, with a message that names the parameter and the offending value;
3. a map whose token count the area does not divide raises ``AreaSplitError`` (a ``ValueError``) naming the area
   and the token count, for every module that splits areas.

The ``ci`` hypothesis profile (tests/conftest.py) runs 110 examples per property, 550 for the family;
``ULTRA_EXT_FUZZ_PROFILE=nightly`` ten times as many. Runtime on one core: ci about 6 s of tests (11 s with
imports), nightly about 2 min.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import event, example, given
from hypothesis import strategies as st

from ultra_ext.nn.attention import AreaSplitError, attend, merge_areas, split_areas
from ultra_ext.nn.yolov12 import (
    A2C2f,
    A2C2fTurbo,
    AreaAttention,
    AreaAttentionBlock,
    AreaAttentionBlockTurbo,
    AreaAttentionTurbo,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds fuzzing.py (no package)
from fuzzing import (  # noqa: E402
    BAD_BACKENDS,
    Fault,
    assert_backends_close,
    bad_hidden_e,
    bad_positive_int,
    bad_positive_real,
    bad_ratio,
    batches,
    c2_e_pairs,
    fault,
    magnitudes,
    mode,
    seeds,
)

ATTENTION_CLASSES = (AreaAttention, AreaAttentionTurbo)
BLOCK_CLASSES = (AreaAttentionBlock, AreaAttentionBlockTurbo)
R_ELAN_CLASSES = (A2C2f, A2C2fTurbo)
HEAD_DIM = 32  # A2C2f's fixed head width: the hidden width must be a multiple of it
MAX_SIDE = 16
C2_E_PAIRS = c2_e_pairs(HEAD_DIM)  # (c2, e), c2 <= 64, whose hidden width int(c2*e) is 32 or 64


@dataclass
class Case:
    """A valid module call: ``cls(**kwargs)`` on a ``(batch, c_in, h, w)`` input."""

    cls: type
    kwargs: dict
    batch: int
    c_in: int
    h: int
    w: int
    training: bool
    magnitude: float
    seed: int


@dataclass
class MapFault:
    """A valid module fed a ``(batch, c_in, h, w)`` map whose ``h·w`` tokens ``area`` does not divide."""

    cls: type
    kwargs: dict
    batch: int
    c_in: int
    h: int
    w: int
    area: int
    training: bool


def set_backend(model: torch.nn.Module, backend: str) -> None:
    for m in model.modules():
        if hasattr(m, "attn_backend"):
            m.attn_backend = backend


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "attn_backend")]


def assert_backends_agree(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` with every attention module on ``math`` then ``sdpa``; outputs must agree. Returns sdpa's.

    Training mode is fine twice: BatchNorm normalises with the batch statistics either way (the running averages
    it updates are not read in training).
    """
    out = {}
    with torch.no_grad():
        for backend in ("math", "sdpa"):
            set_backend(model, backend)
            out[backend] = model(x)
            assert all(m.last_backend == backend for m in attention_modules(model))
    return assert_backends_close(out)


def valid_output(case: Case) -> torch.Tensor:
    """Build ``case``'s module under its seed and mode, and run it on its input with both backends (which must
    agree); returns sdpa's output."""
    torch.manual_seed(case.seed)
    model = case.cls(**case.kwargs).train(case.training)
    x = torch.randn(case.batch, case.c_in, case.h, case.w) * case.magnitude
    return assert_backends_agree(model, x)


# --------------------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------------------
@st.composite
def map_divisible_by(draw, area: int) -> tuple[int, int]:
    """``(h, w)`` up to 16×16 with ``h·w % area == 0`` (for area <= 16 some ``w`` always works)."""
    h = draw(st.integers(1, MAX_SIDE))
    w = draw(st.sampled_from([w for w in range(1, MAX_SIDE + 1) if (h * w) % area == 0]))
    return h, w


@st.composite
def attend_cases(draw) -> dict:
    n = draw(st.integers(1, 32))
    return dict(
        b=draw(batches),
        n=n,
        m=draw(st.integers(1, 32)),
        heads=draw(st.integers(1, 4)),
        d=draw(st.integers(1, 16)),
        d_v=draw(st.integers(1, 16)),
        scale=draw(st.none() | st.floats(0.1, 2.0)),
        area=draw(st.sampled_from([a for a in range(1, n + 1) if n % a == 0])),
        magnitude=draw(st.sampled_from([1e-3, 1.0, 3.0])),  # q·k logits up to ~100: float32 backends agree
        seed=draw(seeds),
    )


@st.composite
def attention_cases(draw) -> Case:
    """A valid AreaAttention(/Turbo/Block/BlockTurbo) configuration and input."""
    cls = draw(st.sampled_from(ATTENTION_CLASSES + BLOCK_CLASSES))
    heads = draw(st.integers(1, 4))
    dim = heads * draw(st.integers(1, 64 // heads))
    area = draw(st.integers(1, 8))
    kwargs = dict(dim=dim, num_heads=heads, area=area)
    if cls in BLOCK_CLASSES:
        kwargs["mlp_ratio"] = draw(st.floats(1.01 / dim, 4.0))  # >= 1 hidden MLP channel
    h, w = draw(map_divisible_by(area))
    b = draw(batches)
    training = draw(st.booleans()) and b * h * w > 1
    return Case(cls, kwargs, b, dim, h, w, training, draw(magnitudes), draw(seeds))


@st.composite
def r_elan_cases(draw) -> Case:
    """A valid A2C2f(/Turbo) configuration and input."""
    cls = draw(st.sampled_from(R_ELAN_CLASSES))
    c2, e = draw(st.sampled_from(C2_E_PAIRS))
    hidden = int(c2 * e)
    a2, residual = draw(st.booleans()), draw(st.booleans())
    c1 = c2 if a2 and residual else draw(st.integers(1, 64))
    area = draw(st.integers(1, 4))
    # C3k's bottleneck convs run at width hidden/2 with g groups; g is unused with a2
    g = draw(
        st.integers(1, 4) if a2 else st.sampled_from([g for g in range(1, hidden // 2 + 1) if hidden // 2 % g == 0])
    )
    kwargs = dict(
        c1=c1,
        c2=c2,
        n=draw(st.integers(1, 2)),
        a2=a2,
        area=area,
        residual=residual,
        mlp_ratio=draw(st.floats(0.1, 3.0)),
        e=e,
        g=g,
        shortcut=draw(st.booleans()),
    )
    h, w = draw(map_divisible_by(area if a2 else 1))
    b = draw(batches)
    training = draw(st.booleans()) and b * h * w > 1
    return Case(cls, kwargs, b, c1, h, w, training, draw(magnitudes), draw(seeds))


_R_ELAN_FAULTS = ("c1", "c2", "n", "area", "g", "mlp_ratio", "e", "c2*e", "residual", "groups")
CONSTRUCTOR_FAULT_KINDS = (
    *((cls, k) for cls in ATTENTION_CLASSES for k in ("dim", "num_heads", "area", "heads∤dim", "backend")),
    *((cls, k) for cls in BLOCK_CLASSES for k in ("dim", "num_heads", "area", "heads∤dim", "mlp_ratio")),
    *((cls, k) for cls in R_ELAN_CLASSES for k in _R_ELAN_FAULTS),
)


@st.composite
def constructor_faults(draw) -> Fault:
    """One invalid argument on an otherwise valid constructor call of any YOLOv12 module (kinds drawn evenly)."""
    cls, kind = draw(st.sampled_from(CONSTRUCTOR_FAULT_KINDS))
    event(f"{cls.__name__}: {kind}")
    if cls in R_ELAN_CLASSES:
        c2, e = draw(st.sampled_from(C2_E_PAIRS))
        hidden = int(c2 * e)
        base = dict(c1=c2, c2=c2, n=1, a2=True, area=1, residual=False, mlp_ratio=1.0, e=e, g=1, shortcut=True)
        if kind in ("c1", "c2", "n", "area", "g"):
            return fault(cls, kind, bad_positive_int(draw), base)
        if kind == "mlp_ratio":
            return fault(cls, kind, bad_ratio(draw, hidden), base)
        if kind == "e":  # not a positive finite number
            return fault(cls, "e", bad_positive_real(draw), base)
        if kind == "c2*e":  # a positive e whose hidden width int(c2*e) is 0 or not a multiple of 32
            return fault(cls, "e", bad_hidden_e(draw, c2, HEAD_DIM), base, "c2*e")
        if kind == "residual":  # residual with a2 needs c1 == c2
            c1 = draw(st.integers(1, 64).filter(lambda v: v != c2))
            return fault(cls, "c1", c1, {**base, "residual": True}, "c1", "c2")
        # groups not dividing C3k's bottleneck width hidden/2 (a2=False)
        g = draw(st.sampled_from([g for g in range(2, hidden + 2) if (hidden // 2) % g]))
        return fault(cls, "g", g, {**base, "a2": False})
    heads = draw(st.integers(1, 4))
    dim = heads * draw(st.integers(1, 64 // heads))
    base = dict(dim=dim, num_heads=heads, area=1)
    if cls in BLOCK_CLASSES:
        base["mlp_ratio"] = 1.0
    if kind in ("dim", "num_heads", "area"):
        return fault(cls, kind, bad_positive_int(draw), base)
    if kind == "heads∤dim":  # a head count that does not divide the width (dim + 1 never does)
        heads = draw(st.sampled_from([h for h in range(2, dim + 2) if dim % h]))
        return fault(cls, "num_heads", heads, base, "num_heads", "dim")
    if kind == "mlp_ratio":
        return fault(cls, kind, bad_ratio(draw, dim), base)
    return fault(cls, "backend", draw(st.sampled_from(BAD_BACKENDS)), base)


@st.composite
def map_faults(draw) -> MapFault:
    """A valid area-splitting module and a map whose token count its area does not divide (area may exceed it)."""
    cls = draw(st.sampled_from(ATTENTION_CLASSES + BLOCK_CLASSES + R_ELAN_CLASSES))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    area = draw(st.sampled_from([a for a in range(2, h * w + 2) if (h * w) % a]))
    if cls in R_ELAN_CLASSES:
        kwargs, c_in = dict(c1=32, c2=64, n=1, a2=True, area=area), 32
    else:
        heads = draw(st.integers(1, 2))
        c_in = heads * draw(st.integers(1, 32))
        kwargs = dict(dim=c_in, num_heads=heads, area=area)
    b = draw(batches)
    return MapFault(cls, kwargs, b, c_in, h, w, area, draw(st.booleans()) and b * h * w > 1)


# --------------------------------------------------------------------------------------------------------
# properties: valid inputs
# --------------------------------------------------------------------------------------------------------
@given(case=attend_cases())
def test_attend_and_area_split_valid(case):
    """``attend``: shape ``(B, N, heads, d_v)``, finite, sdpa == math; the area split is a lossless reshape."""
    g = torch.Generator().manual_seed(case["seed"])
    b, n, m, heads = case["b"], case["n"], case["m"], case["heads"]
    q = torch.randn(b, n, heads, case["d"], generator=g) * case["magnitude"]
    k = torch.randn(b, m, heads, case["d"], generator=g) * case["magnitude"]
    v = torch.randn(b, m, heads, case["d_v"], generator=g) * case["magnitude"]
    out = {}
    for backend in ("math", "sdpa"):
        out[backend], ran = attend(q, k, v, backend, scale=case["scale"])
        assert ran == backend
        assert out[backend].shape == (b, n, heads, case["d_v"])
        assert torch.isfinite(out[backend]).all()
    torch.testing.assert_close(out["math"], out["sdpa"], rtol=1e-4, atol=1e-4 * case["magnitude"])

    area = case["area"]
    chunks = split_areas(q, area)
    assert chunks.shape == (b * area, n // area, heads, case["d"])
    assert torch.equal(chunks[area - 1], q[0, (area - 1) * (n // area) :])  # sample 0's last area: its last N/l
    assert torch.equal(merge_areas(chunks, area), q)


@given(case=attention_cases())
@example(case=Case(AreaAttentionBlock, dict(dim=3, num_heads=3, area=1, mlp_ratio=0.34), 1, 3, 1, 1, False, 1.0, 0))
def test_attention_layers_and_blocks_valid(case):
    """AreaAttention(/Turbo) and ABlock(/Turbo): ``(B, C, H, W)`` → ``(B, C, H, W)``, finite, sdpa == math."""
    event(f"{case.cls.__name__}, {mode(case)}, {'area > 1' if case.kwargs['area'] > 1 else 'area 1'}")
    out = valid_output(case)
    assert out.shape == (case.batch, case.kwargs["dim"], case.h, case.w)
    assert torch.isfinite(out).all()


@given(case=r_elan_cases())
@example(case=Case(A2C2f, dict(c1=8, c2=64, a2=False, g=16), 1, 8, 4, 4, False, 1.0, 0))  # g | c_/2: 16 | 16
def test_a2c2f_valid(case):
    """A2C2f(/Turbo): ``(B, c1, H, W)`` → ``(B, c2, H, W)``, finite, sdpa == math (with ``a2``)."""
    kw = case.kwargs
    layout = f"a2, area {kw['area']}" + (", residual" if kw["residual"] else "") if kw["a2"] else "C3k units"
    event(f"{case.cls.__name__}, {layout}, {mode(case)}")
    out = valid_output(case)
    assert out.shape == (case.batch, case.kwargs["c2"], case.h, case.w)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------------------
# properties: invalid inputs
# --------------------------------------------------------------------------------------------------------
@given(case=constructor_faults())
# what fuzzing found before the argument checks (ultra_ext 2025-xx, first run of this file):
@example(case=Fault(AreaAttention, dict(dim=64, num_heads="4", area=1), "num_heads"))  # bare TypeError from `<`
@example(case=Fault(AreaAttention, dict(dim=64, num_heads=True, area=1), "num_heads"))  # accepted as one head
@example(case=Fault(AreaAttentionTurbo, dict(dim=64, num_heads=2, area=2.0), "area"))  # built; torch TypeError later
@example(case=Fault(AreaAttention, dict(dim=0, num_heads=1, area=1), "dim"))  # torch: "groups must be a positive..."
@example(case=Fault(AreaAttention, dict(dim=-1, num_heads=1, area=1), "dim"))  # RuntimeError: negative dimension
@example(case=Fault(AreaAttentionBlock, dict(dim=32, num_heads=1, mlp_ratio=float("inf")), "mlp_ratio"))  # Overflow
@example(case=Fault(AreaAttentionBlock, dict(dim=4, num_heads=1, mlp_ratio="2"), "mlp_ratio"))  # a "2"*4 = 2222 MLP
@example(case=Fault(AreaAttentionBlock, dict(dim=32, num_heads=1, mlp_ratio=0.01), "mlp_ratio"))  # 0-channel MLP
@example(case=Fault(A2C2f, dict(c1=64, c2=64, e=0.0), "e"))  # "attention width 0 ... 0 heads" (names neither)
@example(case=Fault(A2C2f, dict(c1=64, c2=64, e=0.01), "e", ("c2*e",)))  # hidden width 0
@example(case=Fault(A2C2f, dict(c1=64, c2=64, n=0), "n"))  # accepted: a layer without units
@example(case=Fault(A2C2f, dict(c1=64, c2=64, n=-1), "n"))  # built; RuntimeError at forward (0-channel cv2)
@example(case=Fault(A2C2f, dict(c1=64, c2=64, a2=False, g=32), "g"))  # torch: "in_channels must be divisible..."
def test_constructors_reject_invalid_arguments(case):
    """Only ValueError/TypeError, and the message names the parameter and the offending value."""
    case.assert_refused()


@given(case=map_faults())
def test_forward_rejects_maps_the_area_does_not_divide(case):
    """``H·W % area != 0`` (or ``area > H·W``) raises AreaSplitError naming the area and the token count."""
    event(f"{case.cls.__name__}, {mode(case)}, area {'>' if case.area > case.h * case.w else '<'} tokens")
    torch.manual_seed(0)
    model = case.cls(**case.kwargs).train(case.training)
    x = torch.randn(case.batch, case.c_in, case.h, case.w)
    with torch.no_grad(), pytest.raises((ValueError, TypeError)) as info:
        model(x)
    assert isinstance(info.value, AreaSplitError)
    message = str(info.value)
    assert f"area={case.area}" in message and f"{case.h * case.w} tokens" in message, message
    if case.cls in R_ELAN_CLASSES:  # the layer wrapper adds the map size
        assert f"({case.h}, {case.w})" in message, message


def test_valid_pairs_cover_both_hidden_widths():
    """The (c2, e) table the strategies draw from is not degenerate."""
    assert {int(c2 * e) for c2, e in C2_E_PAIRS} == {32, 64}
    assert len(C2_E_PAIRS) >= 10 and all(not math.isnan(e) for _, e in C2_E_PAIRS)
