"""Property-based fuzzing (hypothesis) of the PST family: ``ultra_ext.nn.pst``.

What is fuzzed, and over which valid ranges (kept tiny so that one example costs milliseconds on one core):

* ``PyramidSparseAttention`` and ``PyramidSparseBlock``: ``dim`` 32 or 64 (a multiple of the head width 32, so 1-2
  heads), coarse map ``Hc×Wc`` 1-8 × 1-8 and the fine map exactly twice that (up to 16×16), ``topk`` and
  ``train_topk`` 0..``Hc·Wc`` (0 = coarse only), every gate policy, with and without a trained gate, Gumbel
  selection on/off, the block's MLP ratio with ``int(dim · mlp_ratio) >= 1`` up to 4.
* ``PST``: fine channels ``c1`` and coarse channels ``c_up`` 1-64, ``c2`` <= 64 and ``e`` such that the hidden width
  ``int(c2·e)`` is 32 or 64, 1-2 blocks, MLP ratio 0.1-3, ``topk``/``train_topk`` 0..``Hc·Wc``.

Every valid example draws batch 1-3 and eval or training mode (training needs more than one value per BatchNorm
channel on the coarse map, ``B·Hc·Wc > 1``), and input magnitudes 1e-3 to 10. Properties:

1. valid inputs give the documented shape (``(B, dim, H, W)`` for the attention and the block, ``(B, c2, H, W)``
   for PST), finite values, and the ``sdpa`` and ``math`` backends agree. The top-k selection is recorded on the
   first (math) run and replayed on the second: a near-tie between two coarse saliencies may rank differently under
   a different float summation order, and Gumbel noise is random; both would compare different functions;
2. invalid constructor arguments (non-positive or non-int sizes, bools where ints belong, widths that are not
   multiples of 32, hidden width ``int(c2·e)`` not a positive multiple of 32, negative or non-int top-k, ``None``
   switches, unknown gate policies and backends, non-bool ``gumbel``, MLP ratios that are not a finite number giving
   >= 1 hidden channel) raise only ``ValueError``/``TypeError``, with a message naming the parameter and the value;
3. at forward: a coarse map that is not exactly half the fine map, or an active ``topk`` (eval) / ``train_topk``
   (training) above the coarse token count, raises ``ValueError`` naming the sizes, or the switch and its value.

The ``ci`` hypothesis profile (tests/conftest.py) runs 110 examples per property, 440 for the family;
``ULTRA_EXT_FUZZ_PROFILE=nightly`` ten times as many. Runtime on one core: ci about 6 s of tests (11 s with
imports), nightly about 2 min.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import event, example, given
from hypothesis import strategies as st

from ultra_ext.nn.pst import GATE_MODES, PST, PyramidSparseAttention, PyramidSparseBlock

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

HEAD_DIM = 32
ATTENTION_CLASSES = (PyramidSparseAttention, PyramidSparseBlock)
C2_E_PAIRS = c2_e_pairs(HEAD_DIM)  # (c2, e), c2 <= 64, whose hidden width int(c2*e) is 32 or 64

BAD_GATES = ("Auto", "learn", "", "none", "0.5", 0, 0.5, True, ["auto"])  # None is its own fault (see below)
BAD_TOPKS = (-1, -8, 1.0, 2.5, "8", True, False, float("nan"), [8])


@dataclass
class Case:
    """A valid call: ``cls(**kwargs)`` on a fine ``(batch, c_fine, 2·hc, 2·wc)`` and a coarse ``(batch, c_coarse,
    hc, wc)`` map; ``gate_trained`` sets the attention's gate flag before the call."""

    cls: type
    kwargs: dict
    batch: int
    c_fine: int
    c_coarse: int
    hc: int
    wc: int
    training: bool
    gate_trained: bool
    magnitude: float
    seed: int


@dataclass
class MapFault:
    """A valid module fed a fine ``(h, w)`` and a coarse ``(hc, wc)`` map; ``tokens`` must appear in the error."""

    cls: type
    kwargs: dict
    batch: int
    channels: int
    h: int
    w: int
    hc: int
    wc: int
    training: bool
    tokens: tuple


def sparse_attentions(model: torch.nn.Module) -> list[PyramidSparseAttention]:
    return [m for m in model.modules() if isinstance(m, PyramidSparseAttention)]


def pin_selection(model: torch.nn.Module) -> callable:
    """Make every PST attention in ``model`` record its top-k indices; returns ``replay()``, after which each call
    hands back the recorded indices in order instead of selecting again."""
    replaying = []
    for m in sparse_attentions(model):
        recorded, select = [], m.select

        def pinned(q, k, topk, recorded=recorded, select=select):
            if replaying:
                return recorded.pop(0)
            recorded.append(select(q, k, topk))
            return recorded[-1]

        m.select = pinned  # an instance attribute: forward's self.select(...) finds it first
    return lambda: replaying.append(True)


def call(model: torch.nn.Module, x: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    return model([x, upper]) if isinstance(model, PST) else model(x, upper)


def assert_backends_agree(model: torch.nn.Module, x: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``math`` then ``sdpa`` on every attention, the same top-k selection for both; returns sdpa's output."""
    replay = pin_selection(model)
    out = {}
    with torch.no_grad():
        for backend in ("math", "sdpa"):
            for m in sparse_attentions(model):
                m.attn_backend = backend
            out[backend] = call(model, x, upper)
            assert all(m.last_backend == backend for m in sparse_attentions(model))
            replay()
    return assert_backends_close(out)


# --------------------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------------------
coarse_sides = st.integers(1, 8)


@st.composite
def attention_cases(draw) -> Case:
    """A valid PyramidSparseAttention / PyramidSparseBlock configuration and input pair."""
    cls = draw(st.sampled_from(ATTENTION_CLASSES))
    dim = draw(st.sampled_from([32, 64]))
    hc, wc = draw(coarse_sides), draw(coarse_sides)
    m = hc * wc
    kwargs = dict(
        topk=draw(st.integers(0, m)),
        train_topk=draw(st.integers(0, m)),
        gate=draw(st.sampled_from(GATE_MODES)),
        gumbel=draw(st.booleans()),
    )
    if cls is PyramidSparseBlock:
        kwargs["mlp_ratio"] = draw(st.floats(1.01 / dim, 4.0))  # >= 1 hidden MLP channel
    b = draw(batches)
    training = draw(st.booleans()) and b * m > 1
    return Case(cls, {"dim": dim, **kwargs}, b, dim, dim, hc, wc, training, draw(st.booleans()), draw(magnitudes),
                draw(seeds))  # fmt: skip


@st.composite
def pst_cases(draw) -> Case:
    """A valid PST configuration and [fine, coarse] input pair."""
    c2, e = draw(st.sampled_from(C2_E_PAIRS))
    hc, wc = draw(coarse_sides), draw(coarse_sides)
    m = hc * wc
    c1, c_up = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    kwargs = dict(
        c1=c1,
        c_up=c_up,
        c2=c2,
        n=draw(st.integers(1, 2)),
        mlp_ratio=draw(st.floats(0.1, 3.0)),
        e=e,
        topk=draw(st.integers(0, m)),
        train_topk=draw(st.integers(0, m)),
    )
    b = draw(batches)
    training = draw(st.booleans()) and b * m > 1
    return Case(PST, kwargs, b, c1, c_up, hc, wc, training, draw(st.booleans()), draw(magnitudes), draw(seeds))


_ATTENTION_FAULTS = ("dim", "dim width", "topk", "train_topk", "switch=None", "gate", "gumbel", "backend")
_PST_FAULTS = ("c1", "c_up", "c2", "n", "mlp_ratio", "e", "c2*e", "c2 width", "topk", "train_topk")
CONSTRUCTOR_FAULT_KINDS = (
    *((PyramidSparseAttention, k) for k in _ATTENTION_FAULTS),
    *((PyramidSparseBlock, k) for k in (*_ATTENTION_FAULTS, "mlp_ratio")),
    *((PST, k) for k in _PST_FAULTS),
)


@st.composite
def constructor_faults(draw) -> Fault:
    """One invalid argument on an otherwise valid constructor call of any PST module (kinds drawn evenly)."""
    cls, kind = draw(st.sampled_from(CONSTRUCTOR_FAULT_KINDS))
    event(f"{cls.__name__}: {kind}")
    if cls is PST:
        c2, e = draw(st.sampled_from(C2_E_PAIRS))
        base = dict(c1=16, c_up=24, c2=c2, n=1, mlp_ratio=1.0, e=e, topk=2, train_topk=0)
        if kind in ("c1", "c_up", "c2", "n"):
            return fault(cls, kind, bad_positive_int(draw), base)
        if kind == "mlp_ratio":
            return fault(cls, kind, bad_ratio(draw, int(c2 * e)), base)
        if kind == "e":  # not a positive finite number
            return fault(cls, "e", bad_positive_real(draw), base)
        if kind == "c2*e":  # a positive e whose hidden width int(c2*e) is 0 or not a multiple of 32
            return fault(cls, "e", bad_hidden_e(draw, c2, HEAD_DIM), base, "c2*e")
        if kind == "c2 width":  # a positive c2 whose hidden width is not a positive multiple of 32
            bad_c2 = draw(st.integers(1, 128).filter(lambda v: int(v * e) % HEAD_DIM or int(v * e) == 0))
            return fault(cls, "c2", bad_c2, base, "c2*e")
        return fault(cls, kind, draw(st.sampled_from(BAD_TOPKS)), base)
    base = dict(dim=draw(st.sampled_from([32, 64])), topk=2, train_topk=0, gate="auto", gumbel=False)
    if cls is PyramidSparseBlock:
        base["mlp_ratio"] = 1.0
    if kind == "dim":
        return fault(cls, "dim", bad_positive_int(draw), base)
    if kind == "dim width":  # a positive width that is not a multiple of the head width 32
        return fault(cls, "dim", draw(st.integers(1, 100).filter(lambda v: v % HEAD_DIM)), base)
    if kind in ("topk", "train_topk"):
        return fault(cls, kind, draw(st.sampled_from(BAD_TOPKS)), base)
    if kind == "switch=None":  # configure() reads None as "unchanged"; a constructor has nothing to keep
        return fault(cls, draw(st.sampled_from(["topk", "train_topk", "gate", "gumbel"])), None, base)
    if kind == "gate":
        return fault(cls, "gate", draw(st.sampled_from(BAD_GATES)), base)
    if kind == "gumbel":
        return fault(cls, "gumbel", draw(st.sampled_from(["yes", "", 0, 1, 1.0, [True]])), base)
    if kind == "backend":  # (the block hands its attention keywords on)
        return fault(cls, "backend", draw(st.sampled_from(BAD_BACKENDS)), base)
    return fault(cls, "mlp_ratio", bad_ratio(draw, base["dim"]), base)


@st.composite
def map_faults(draw) -> MapFault:
    """A valid PST module and an input pair it must refuse: a coarse map that is not exactly half the fine map, or
    an active top-k above the coarse token count."""
    cls = draw(st.sampled_from((PyramidSparseAttention, PyramidSparseBlock, PST)))
    kind = draw(st.sampled_from(["map sizes", "topk", "train_topk"]))
    event(f"{cls.__name__}: {kind}")
    b = draw(st.integers(2, 3) if kind == "train_topk" else batches)
    hc, wc = draw(coarse_sides), draw(coarse_sides)
    # BatchNorm on the coarse map needs > 1 value per channel in training; train_topk is only active in training
    training = kind == "train_topk" or (kind == "map sizes" and draw(st.booleans()) and b * hc * wc > 1)
    if kind == "map sizes":  # fine map not exactly twice the coarse map (any other size up to 16×16)
        h, w = draw(st.tuples(st.integers(1, 16), st.integers(1, 16)).filter(lambda hw: hw != (2 * hc, 2 * wc)))
        switches = dict(topk=0, train_topk=0)
        tokens = (f"{h}×{w}", f"{hc}×{wc}")
    else:  # the active switch (topk in eval, train_topk in training) above the hc·wc coarse tokens
        h, w = 2 * hc, 2 * wc
        too_many = draw(st.integers(hc * wc + 1, hc * wc + 16))
        active, other = ("train_topk", "topk") if training else ("topk", "train_topk")
        switches = {active: too_many, other: draw(st.integers(0, hc * wc + 16))}  # the inactive one may be anything
        tokens = (f"{active}={too_many}", f"{hc * wc} coarse tokens")
    if cls is PST:
        kwargs, channels = dict(c1=32, c_up=32, c2=64, n=draw(st.integers(1, 2)), **switches), 32
    else:
        kwargs, channels = dict(dim=32, **switches), 32
    return MapFault(cls, kwargs, b, channels, h, w, hc, wc, training, tokens)


# --------------------------------------------------------------------------------------------------------
# properties: valid inputs
# --------------------------------------------------------------------------------------------------------
def inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(case.batch, case.c_fine, 2 * case.hc, 2 * case.wc) * case.magnitude
    upper = torch.randn(case.batch, case.c_coarse, case.hc, case.wc) * case.magnitude
    return x, upper


def prepare(case: Case) -> torch.nn.Module:
    torch.manual_seed(case.seed)
    model = case.cls(**case.kwargs).train(case.training)
    for m in sparse_attentions(model):
        m.gate_trained.fill_(float(case.gate_trained))
    return model


def valid_output(case: Case) -> torch.Tensor:
    """``case``'s module (seeded, in its mode, gate flag set) on its input pair with both backends, which must agree;
    returns sdpa's output. The fine pair is drawn after the build, from the same seeded global RNG."""
    model = prepare(case)
    x, upper = inputs(case)
    return assert_backends_agree(model, x, upper)


def stage(case: Case) -> str:
    """The path the call takes: an active top-k (``train_topk`` in training, ``topk`` in eval) of 0 skips the fine
    stage."""
    active = case.kwargs["train_topk"] if case.training else case.kwargs["topk"]
    return "fine stage" if active else "coarse only"


@given(case=attention_cases())
@example(case=Case(PyramidSparseAttention, dict(dim=32, topk=1, train_topk=1), 1, 32, 32, 1, 1, False, True, 1.0, 0))
@example(case=Case(PyramidSparseBlock, dict(dim=64, topk=4, train_topk=4, gumbel=True), 2, 64, 64, 1, 4, True, False,
                   10.0, 1))  # fmt: skip
def test_sparse_attention_and_block_valid(case):
    """PyramidSparseAttention / Block: ``(B, C, H, W), (B, C, H/2, W/2)`` → ``(B, C, H, W)``, finite, sdpa == math."""
    event(f"{case.cls.__name__}, {mode(case)}, {stage(case)}")
    out = valid_output(case)
    assert out.shape == (case.batch, case.kwargs["dim"], 2 * case.hc, 2 * case.wc)
    assert torch.isfinite(out).all()


@given(case=pst_cases())
@example(case=Case(PST, dict(c1=1, c_up=1, c2=8, e=4.0, topk=1, train_topk=0), 1, 1, 1, 1, 1, False, False, 1.0, 0))
def test_pst_valid(case):
    """PST: ``[(B, c1, H, W), (B, c_up, H/2, W/2)]`` → ``(B, c2, H, W)``, finite, sdpa == math."""
    event(f"PST, n={case.kwargs.get('n', 1)}, {mode(case)}, {stage(case)}")
    out = valid_output(case)
    assert out.shape == (case.batch, case.kwargs["c2"], 2 * case.hc, 2 * case.wc)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------------------
# properties: invalid inputs
# --------------------------------------------------------------------------------------------------------
@given(case=constructor_faults())
# what fuzzing found before the argument checks (first run of this file):
@example(case=Fault(PyramidSparseAttention, dict(dim="64"), "dim"))  # bare TypeError from `<`
@example(case=Fault(PyramidSparseAttention, dict(dim=64.0), "dim"))  # torch's TypeError from empty(), no name
@example(case=Fault(PyramidSparseAttention, dict(dim=64, topk=None), "topk"))  # built; AttributeError at forward
@example(case=Fault(PyramidSparseAttention, dict(dim=64, gate=None), "gate"))  # built; AttributeError, fine stage
@example(case=Fault(PyramidSparseAttention, dict(dim=64, gumbel="no"), "gumbel"))  # accepted as bool("no") = True
@example(case=Fault(PyramidSparseBlock, dict(dim=64, mlp_ratio=0.0), "mlp_ratio"))  # built; RuntimeError at forward
@example(case=Fault(PST, dict(c1=64, c_up=-1, c2=64), "c_up"))  # RuntimeError: negative dimension
@example(case=Fault(PST, dict(c1=64, c_up=64, c2=64, n=0), "n"))  # accepted: a layer without blocks
@example(case=Fault(PST, dict(c1=64, c_up=64, c2=64, e="0.5"), "e"))  # int("0.5" * 64): ValueError naming nothing
@example(case=Fault(PST, dict(c1=64.0, c_up=64, c2=64), "c1"))  # torch's TypeError from empty(), no name
def test_constructors_reject_invalid_arguments(case):
    """Only ValueError/TypeError, and the message names the parameter and the offending value."""
    case.assert_refused()


@given(case=map_faults())
# training mode with train_topk above the coarse tokens: the message named "topk=5", a switch set to 0
@example(case=MapFault(PyramidSparseAttention, dict(dim=32, topk=0, train_topk=5), 2, 32, 4, 4, 2, 2, True,
                       ("train_topk=5", "4 coarse tokens")))  # fmt: skip
def test_forward_rejects_bad_pairs_and_topk(case):
    """Coarse map not half the fine map, or the active top-k above the coarse tokens: ValueError naming them."""
    torch.manual_seed(0)
    model = case.cls(**case.kwargs).train(case.training)
    x = torch.randn(case.batch, case.channels, case.h, case.w)
    upper = torch.randn(case.batch, case.channels, case.hc, case.wc)
    with torch.no_grad(), pytest.raises((ValueError, TypeError)) as info:
        call(model, x, upper)
    message = str(info.value)
    for token in case.tokens:
        assert token in message, f"{token!r} not named in: {message}"
