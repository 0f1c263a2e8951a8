"""Argument checks shared by every family: one rule per argument, for YAML rows and constructors alike.

A numeric requirement is declared once, as a :class:`Bound` (``EXPANSION = Bound(0, 4, low_open=True)``), and used
twice: a module's ``ul_parse`` passes it to :meth:`ParseContext.arg <ultra_ext.integration.protocol.ParseContext.arg>`
(the error names the YAML layer) and its constructor to :func:`check_int` / :func:`check_real` (direct Python
calls). Checks that relate several arguments (a hidden width that must be a multiple of the head width) live in
one function per module that both paths call; :mod:`~ultra_ext.integration.patch` prefixes what it raises from
``ul_parse`` with the layer.

Without these, torch would accept some bad values silently (0 channels, ``True`` as a width, stride 0 until forward,
a string ``mlp_ratio`` repeated as a sequence) and reject others with messages that name neither the argument nor its
value. Every message reads ``"<owner> <name> must be …, got <name>=<value>"``; only ``TypeError`` (wrong kind of
value) and ``ValueError`` (right kind, bad value) are raised, which ``tests/nn/test_fuzz_*.py`` check over generated
arguments.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from torch import nn

__all__ = [
    "AT_LEAST_ONE",
    "EXPANSION",
    "NON_NEGATIVE",
    "ODD_KERNEL",
    "POSITIVE",
    "PROBABILITY",
    "Bound",
    "check_block",
    "check_channel_list",
    "check_int",
    "check_odd_kernel",
    "check_real",
    "expanded_width",
    "mlp_hidden_width",
]


@dataclass(frozen=True)
class Bound:
    """The values a numeric argument may take: an interval, optionally odd integers only.

    Attributes:
        low, high: the ends (``±inf`` for none). low_open, high_open: whether an end is excluded.
        odd: integers must be odd (a "same"-padded kernel).
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    odd: bool = False

    def accepts(self, value) -> bool:
        if not math.isfinite(value):
            return False
        low_ok = self.low < value if self.low_open else self.low <= value
        high_ok = value < self.high if self.high_open else value <= self.high
        return low_ok and high_ok and (not self.odd or value % 2 == 1)

    def __str__(self) -> str:
        if self.high == math.inf:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return f"odd and {text}" if self.odd else text


POSITIVE = Bound(0, low_open=True)  # widths, strides, ratios
AT_LEAST_ONE = Bound(1)  # counts: blocks, heads, groups, classes
NON_NEGATIVE = Bound(0)  # counts that may be zero (top-k 0 switches a stage off)
EXPANSION = Bound(0, 4, low_open=True)  # hidden width ratio e: c_ = int(c2 * e)
PROBABILITY = Bound(0, 1, high_open=True)  # drop-path rates
ODD_KERNEL = Bound(1, odd=True)  # "same" padding k // 2 keeps the map size only for odd k


def check_int(owner: str, name: str, value, minimum: int | Bound = 1) -> int:
    """``value`` as an int ``>= minimum`` (or within a :class:`Bound`); bools and floats are refused (``True`` is an
    int to Python).

    Raises:
        TypeError: not an integer. ValueError: out of bounds. Both name ``owner``, the argument and the value.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be an int, got {name}={value!r}")
    bound = minimum if isinstance(minimum, Bound) else Bound(minimum)
    if not bound.accepts(value):
        raise ValueError(f"{owner} {name} must be {bound}, got {name}={value!r}")
    return int(value)


def check_odd_kernel(owner: str, name: str, value) -> int:
    """A positive odd kernel size: "same" padding ``k // 2`` keeps the map size only for odd ``k``."""
    return check_int(owner, name, value, ODD_KERNEL)


def check_real(owner: str, name: str, value, bound: Bound) -> float:
    """A finite real number within ``bound``; ints allowed, bools not.

    Raises:
        TypeError: not a number. ValueError: out of bounds (or not finite).
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be a number, got {name}={value!r}")
    if not bound.accepts(value):
        raise ValueError(f"{owner} {name} must be {bound}, got {name}={value!r}")
    return float(value)


def check_channel_list(owner: str, name: str, value, min_len: int = 1) -> list[int]:
    """A list/tuple of at least ``min_len`` channel counts, each an int ``>= 1``."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{owner} {name} must be a list of channel counts, got {name}={value!r}")
    if len(value) < min_len:
        entries = "entry" if min_len == 1 else "entries"
        raise ValueError(f"{owner} {name} needs at least {min_len} {entries}, got {name}={list(value)!r}")
    if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in value):
        raise TypeError(f"{owner} {name} must hold ints, got {name}={list(value)!r}")
    if min(value) < 1:
        raise ValueError(f"{owner} {name} entries must be >= 1, got {name}={list(value)!r}")
    return [int(c) for c in value]


def check_block(owner: str, block) -> type:
    """A basic-block class (called as ``block(c1, c2)``), not an instance or its name."""
    if not (isinstance(block, type) and issubclass(block, nn.Module)):
        raise TypeError(f"{owner} block must be an nn.Module class such as RepVGGBlock, got block={block!r}")
    return block


def expanded_width(owner: str, c2: int, e) -> int:
    """A CSP block's hidden width ``int(c2 * e)``, with ``e`` within :data:`EXPANSION` and the width at least 1."""
    e = check_real(owner, "e", e, EXPANSION)
    hidden = int(c2 * e)
    if hidden < 1:
        raise ValueError(f"{owner} hidden width int(c2*e) = int({c2}*{e}) must be >= 1, got c2={c2}, e={e}")
    return hidden


def mlp_hidden_width(owner: str, dim: int, mlp_ratio) -> int:
    """The hidden width ``int(dim * mlp_ratio)`` of a transformer block's MLP, checked to be at least 1."""
    ratio = check_real(owner, "mlp_ratio", mlp_ratio, POSITIVE)
    hidden = int(dim * ratio)
    if hidden < 1:
        raise ValueError(
            f"{owner} mlp_ratio leaves the MLP int({dim}*{ratio:g}) = 0 hidden channels, got mlp_ratio={mlp_ratio!r}"
        )
    return hidden
