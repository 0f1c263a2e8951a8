"""Constructor argument checks shared by every family (direct Python calls of our modules).

YAML rows are checked earlier, by each module's ``ul_parse`` (naming the layer). These checks cover the modules'
own constructors: torch would otherwise accept some bad values silently (0 channels, ``True`` as a width, stride 0
until forward, a string ``mlp_ratio`` repeated as a sequence) and reject others with messages that name neither
the argument nor its value. Every message reads ``"<owner> <name> must be …, got <name>=<value>"``; only
``TypeError`` (wrong kind of value) and ``ValueError`` (right kind, bad value) are raised, which
``tests/nn/test_fuzz_*.py`` check over generated arguments.
"""

from __future__ import annotations

import math
import numbers

from torch import nn

__all__ = ["check_block", "check_channel_list", "check_int", "check_odd_kernel", "check_real", "mlp_hidden_width"]


def check_int(owner: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``; bools and floats are refused (``True`` is an int to Python).

    Raises:
        TypeError: not an integer. ValueError: below ``minimum``. Both name ``owner``, the argument and the value.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be an int, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{owner} {name} must be >= {minimum}, got {name}={value!r}")
    return int(value)


def check_odd_kernel(owner: str, name: str, value) -> int:
    """A positive odd kernel size: "same" padding ``k // 2`` keeps the map size only for odd ``k``."""
    check_int(owner, name, value)
    if value % 2 == 0:
        raise ValueError(f"{owner} {name} must be odd (padding {name}//2 keeps the size), got {name}={value!r}")
    return int(value)


def check_real(owner: str, name: str, value, low: float, high: float = math.inf, low_open: bool = True) -> float:
    """A finite real number in ``(low, high)`` (``[low, high)`` with ``low_open=False``); ints allowed, bools not."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be a number, got {name}={value!r}")
    if not (low < value if low_open else low <= value) or not value < high or not math.isfinite(value):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g})"
        raise ValueError(f"{owner} {name} must be in {interval}, got {name}={value!r}")
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


def mlp_hidden_width(owner: str, dim: int, mlp_ratio) -> int:
    """The hidden width ``int(dim * mlp_ratio)`` of a transformer block's MLP, checked to be at least 1."""
    ratio = check_real(owner, "mlp_ratio", mlp_ratio, 0)
    hidden = int(dim * ratio)
    if hidden < 1:
        raise ValueError(
            f"{owner} mlp_ratio leaves the MLP int({dim}*{ratio:g}) = 0 hidden channels, got mlp_ratio={mlp_ratio!r}"
        )
    return hidden
