"""Helpers shared by the property-based tests of the module families (``tests/nn/test_fuzz_*.py``, hypothesis).

Every family's fuzz file checks the same kinds of property: valid calls give the documented shapes and finite
values, the ``sdpa`` and ``math`` attention backends agree, and invalid constructor arguments raise only
``ValueError``/``TypeError`` with a message that names the argument and its value. The machinery of those checks
is the same whatever the module, so it lives here once:

* reproducible examples: :func:`build` (module init under a fixed seed) and :func:`random_inputs`;
* output checks: :func:`assert_finite` (every tensor of a nested output), :func:`assert_backends_close`, and
  :func:`assert_fused_matches` (re-parameterisation parity, on ``helpers.fused_copy``);
* refusals: :func:`assert_refused`, :func:`value_text`, the :class:`Fault` record of an invalid constructor call
  and its builder :func:`fault`, and :func:`with_examples` to pin a list of regression cases as explicit examples;
* bad values, in the two vocabularies the files draw from: strategies per rule (:func:`bad_int`,
  :func:`bad_channel_list`; Gold-YOLO, Generalist) and fixed samples (``NOT_INTS``, ``NOT_NUMBERS``,
  ``NON_FINITE``, ``BAD_BACKENDS``, :func:`bad_positive_int`, :func:`bad_positive_real`, :func:`bad_hidden_e`,
  :func:`bad_ratio`; YOLOv12, PST). They are kept apart, not merged: merging would change the values each
  family's tests draw;
* common draws: batch, eval/training mode (:func:`mode_and_batch`, ``batches``), input magnitudes, seeds, and the
  ``(c2, e)`` pairs whose hidden width is a whole number of attention heads (:func:`c2_e_pairs`).

What differs per family (the strategies of valid arguments, the rule tables, the case records of valid calls and
of bad inputs) stays in the family's file. A plain module, not a conftest plugin: the test files import it the way
they import ``helpers.py``, ``sys.path.insert(0, <tests dir>)`` then ``from fuzzing import ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import example
from hypothesis import strategies as st

from ultra_ext.bench.measure import iter_tensors

from helpers import fused_copy, nudge  # tests/ is on sys.path wherever this module is importable


# ------------------------------------------------------------------------------------- building and running
def build(cls: type, kwargs: dict) -> torch.nn.Module:
    """``cls(**kwargs)`` with the global RNG seeded first: module init draws from it, so every example (and its
    shrunk replay) builds the same weights."""
    torch.manual_seed(0)
    return cls(**kwargs)


def random_inputs(shapes) -> list[torch.Tensor]:
    """One standard-normal tensor per shape, from a private generator seeded at 0 (reproducible, and independent of
    the global RNG that module init and dropout draw from)."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g) for shape in shapes]


def mode(case) -> str:
    """``"training"`` or ``"eval"``, for hypothesis events; ``case`` has a ``training`` flag."""
    return "training" if case.training else "eval"


# ----------------------------------------------------------------------------------------------- outputs
def assert_fused_matches(module: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """``module`` with random BatchNorm statistics (so that folding is not a no-op) and its deploy form from
    :func:`helpers.fused_copy` (RepConv branches merged, every BN folded) give the same output in eval mode, to 1e-4
    relative to the output's magnitude; no BatchNorm is left. Returns the fused copy, for structural checks."""
    module = nudge(module, seed=1)
    fused = fused_copy(module).eval()
    with torch.no_grad():
        ref, out = module(x), fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 1e-4 * (1 + ref.abs().max().item())
    return fused


def assert_finite(out) -> None:
    """Every floating-point tensor in a nested output (tensors, tuples, lists, dicts) is finite; integer tensors
    (class maps) are finite by construction."""
    for t in iter_tensors(out):
        assert not t.is_floating_point() or torch.isfinite(t).all(), f"non-finite values in {tuple(t.shape)}"


def assert_backends_close(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """``out["math"]`` and ``out["sdpa"]`` (the same call on each backend) agree to 1e-4, absolutely scaled by the
    larger of 1 and the output's magnitude (float32 sums in a different order); returns sdpa's output."""
    scale = out["sdpa"].abs().max().clamp(min=1.0).item()
    torch.testing.assert_close(out["math"], out["sdpa"], rtol=1e-4, atol=1e-4 * scale)
    return out["sdpa"]


# ---------------------------------------------------------------------------------------------- refusals
def value_text(value) -> tuple[str, ...]:
    """How a message may spell ``value``: ``repr`` (strings quoted) or ``str``."""
    return (repr(value), str(value))


def assert_refused(cls: type, kwargs: dict, names: tuple[str, ...], valued: tuple[str, ...] | None = None) -> None:
    """``cls(**kwargs)`` raises only ``ValueError``/``TypeError``, with a message that contains every one of
    ``names`` and the value (:func:`value_text`) of every argument in ``valued`` (by default ``names``)."""
    with pytest.raises(Exception) as info:
        cls(**kwargs)
    e = info.value
    assert isinstance(e, (ValueError, TypeError)), f"{cls.__name__}({kwargs}) raised {type(e).__name__}: {e}"
    message = str(e)
    assert message.strip(), f"{type(e).__name__} without a message"
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    for name in names if valued is None else valued:
        value = kwargs[name]
        assert any(text in message for text in value_text(value)), f"{name}={value!r} not named in: {message}"


@dataclass
class Fault:
    """An invalid constructor call ``cls(**kwargs)``: argument ``param`` is at fault; the error message must name
    its value and every one of ``tokens`` (by default ``param`` itself)."""

    cls: type
    kwargs: dict
    param: str
    tokens: tuple = field(default=())

    def __post_init__(self):
        self.tokens = self.tokens or (self.param,)

    def assert_refused(self) -> None:
        assert_refused(self.cls, self.kwargs, self.tokens, valued=(self.param,))


def fault(cls: type, param: str, value, base: dict, *tokens: str) -> Fault:
    """``base`` with ``param`` replaced by ``value``; the message must name ``value`` and ``param`` (or ``tokens``)."""
    return Fault(cls, {**base, param: value}, param, tokens)


def with_examples(cases):
    """Decorator: each of ``cases`` as an explicit ``@example(case=...)`` (regressions the search once found); put
    it under ``@given(case=...)``."""

    def decorate(test):
        for case in cases:
            test = example(case=case)(test)
        return test

    return decorate


# ---------------------------------------------------------------------------- bad values: strategies per rule
NOT_AN_INT = st.one_of(
    st.text(max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),  # 8.0 too: a float is refused where an int belongs
    st.booleans(),  # True is an int to Python; never a channel count
    st.none(),
    st.lists(st.integers(1, 8), min_size=1, max_size=2),
)


def bad_int(minimum: int) -> st.SearchStrategy:
    """Not an int >= ``minimum``: another type, or an int below it."""
    return st.one_of(NOT_AN_INT, st.integers(minimum - 1000, minimum - 1))


def bad_channel_list(min_len: int) -> st.SearchStrategy:
    """Not a list of at least ``min_len`` channel counts >= 1: too short (possibly empty), one bad entry among good
    ones, or not a list at all."""
    ok = st.lists(st.integers(1, 8), min_size=min_len, max_size=min_len + 2)
    bad_entry = st.one_of(st.integers(-8, 0), st.floats(0.5, 8), st.text(max_size=2), st.booleans(), st.none())
    return st.one_of(
        st.lists(st.integers(1, 8), max_size=min_len - 1),  # too few entries
        st.tuples(ok, bad_entry, st.integers(0, 3)).map(lambda t: t[0][: t[2]] + [t[1]] + t[0][t[2] :]),
        st.one_of(st.integers(1, 8), st.text(max_size=3), st.none()),  # not a list
    )


# ------------------------------------------------------------------------------ bad values: fixed samples
# values that are not ints (bools included: Python's True is an int, but never a channel count)
NOT_INTS = ("4", "", "x", 2.0, 0.5, float("nan"), True, False, None, [2], (1,))
NOT_NUMBERS = ("2", "", None, True, False, [1.0], (2.0,))
NON_FINITE = (float("nan"), float("inf"), float("-inf"))
BAD_BACKENDS = ("cuda", "fast", "", "sdpa2", "flash-attn", " math", 1, 0.5, True, False, ["sdpa"])


def bad_positive_int(draw) -> object:
    """Something that is not an int >= 1: zero, a negative int, or another type."""
    return draw(st.integers(-64, 0) | st.sampled_from(NOT_INTS))


def bad_positive_real(draw) -> object:
    """Not a positive finite number: <= 0, non-finite, or not a number at all."""
    return draw(st.floats(max_value=0.0) | st.sampled_from(NON_FINITE + NOT_NUMBERS))


def bad_hidden_e(draw, c2: int, head_dim: int) -> float:
    """A positive expansion ``e`` whose hidden width ``int(c2*e)`` is 0 or not a whole number of ``head_dim`` heads."""
    return draw(st.floats(0.001, 4.0).filter(lambda v: int(c2 * v) % head_dim or int(c2 * v) == 0))


def bad_ratio(draw, width: int) -> object:
    """Not an MLP ratio for ``width`` channels: <= 0, non-finite, too small for one hidden channel, not a number."""
    return draw(
        st.floats(max_value=0.0, allow_nan=False)
        | st.sampled_from(NON_FINITE + NOT_NUMBERS)
        | st.floats(0.0, 1.0 / width, exclude_min=True, exclude_max=True).filter(lambda r: int(width * r) < 1)
    )


# ------------------------------------------------------------------------------------------- common draws
batches = st.integers(1, 3)
magnitudes = st.sampled_from([1e-3, 1.0, 10.0])
seeds = st.integers(0, 2**16)


@st.composite
def mode_and_batch(draw) -> tuple[bool, int]:
    """``(train, batch)``: batch 1-3, in training 2-3 (train-mode BatchNorm needs > 1 value per channel)."""
    train = draw(st.booleans())
    return train, draw(st.integers(2 if train else 1, 3))


E_CHOICES = (0.25, 0.5, 2 / 3, 0.75, 0.8, 1.0, 1.25, 1.5, 2.0, 4.0)


def c2_e_pairs(head_dim: int) -> tuple[tuple[int, float], ...]:
    """``(c2, e)`` pairs, ``c2 <= 64``, whose hidden width ``int(c2*e)`` (computed the way A2C2f and PST compute it)
    is one or two heads of ``head_dim`` channels."""
    return tuple((c2, e) for c2 in range(1, 65) for e in E_CHOICES if int(c2 * e) in (head_dim, 2 * head_dim))
