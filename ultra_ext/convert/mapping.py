"""Checks every converter's key plan shares: the target layout, the scale, and one error listing every problem."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MAX_LISTED", "check_layout", "listed", "raise_problems", "scale_from_width"]

MAX_LISTED = 8  # how many offending keys an error message lists


def listed(items) -> str:
    """``a, b, c … (+n more)``: the first :data:`MAX_LISTED` items."""
    items = list(items)
    more = f" … (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(map(str, items[:MAX_LISTED])) + more


def check_layout(model: nn.Module, row_types: dict[int, set[str]], yaml_name: str) -> None:
    """The YAML rows a conversion relies on hold the classes it expects (guards the key rules against YAML edits).

    Raises:
        ValueError: naming each row that holds something else.
    """
    wrong = [
        f"row {i} is {type(model.model[i]).__name__ if i < len(model.model) else 'missing'}, expected "
        f"{' or '.join(sorted(names))}"
        for i, names in row_types.items()
        if i >= len(model.model) or type(model.model[i]).__name__ not in names
    ]
    if wrong:
        raise ValueError(f"our {yaml_name} does not have the layout the converter expects: {'; '.join(wrong)}")


def raise_problems(headline: str, problems: list[tuple[str, list]]) -> None:
    """Raise one ``ValueError`` listing every non-empty ``(title, items)`` problem under ``headline``; else return."""
    problems = [(title, items) for title, items in problems if items]
    if problems:
        raise ValueError(f"{headline}:\n" + "\n".join(f"  {title}: {listed(items)}" for title, items in problems))


def scale_from_width(
    state_dict: dict[str, torch.Tensor], keys: tuple[str, ...], widths: dict[int, str], family: str
) -> str:
    """The scale letter of a checkpoint from the output width of its stem conv (the first of ``keys`` present).

    Raises:
        ValueError: no stem key, or a width that matches no scale of ``family``.
    """
    for key in keys:
        if key in state_dict:
            width = int(state_dict[key].shape[0])
            if width in widths:
                return widths[width]
            raise ValueError(f"stem width {width} matches no {family} scale ({widths})")
    raise ValueError(f"cannot infer the {family} scale: no stem weight ({', '.join(keys)}) in the state dict")
