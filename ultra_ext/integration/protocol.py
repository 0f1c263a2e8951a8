"""The module protocol: how an ultra_ext module reads its own YAML row.

A YAML-visible class defines one classmethod::

    @classmethod
    def ul_parse(cls, ctx: ParseContext) -> dict:
        return {"args": [...constructor args...], "c2": out_channels, "n": 1, "legacy": False}

``args`` and ``c2`` are required; ``n`` (how many copies parse_model stacks; return 1 when the module consumes
the repeats itself) and ``legacy`` (value for Ultralytics' Detect legacy flag) are optional. ``ctx`` is a
read-only view of ``parse_model``'s locals at that row. Errors raised through :meth:`ParseContext.error` name
the layer index, the module and the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ultralytics.utils.ops import make_divisible

__all__ = ["LayerError", "ParseContext", "SCALE_ARGS_KEY"]

SCALE_ARGS_KEY = "scale_args"
"""Top-level YAML key of per-scale argument tables: ``scale_args: {mlp_ratio: {n: 2.0, ..., x: 1.2}}``.
A row argument that is a string naming one of these tables takes the value for the model's scale."""


class LayerError(ValueError):
    """A model YAML row that cannot be built as written."""


@dataclass(frozen=True)
class ParseContext:
    """parse_model's state at one YAML row ``[from, repeats, module, args]``.

    Attributes:
        i: layer index. f: the row's ``from`` (int or list). n: repeats after depth scaling.
        args: the row's arguments after Ultralytics' string resolution. ch: output channels of built layers.
        depth, width, max_channels: the scale's multipliers. scale: scale letter ('' if none).
        nc, reg_max, end2end: top-level YAML values. d: the whole model dict. layers: modules built so far.
        legacy: parse_model's running Detect legacy flag. name: the module name as written in the YAML.
        yaml_repeats: the row's repeats as written (``n`` is after depth scaling: 2 at depth 0.33 becomes 1).
    """

    i: int
    f: Any
    n: int
    args: tuple
    ch: tuple
    depth: float
    width_multiple: float
    max_channels: float
    scale: str
    nc: Any
    reg_max: int
    end2end: Any
    d: dict
    layers: tuple
    legacy: bool
    name: str
    yaml_repeats: Any

    @classmethod
    def from_locals(cls, frame_locals: dict) -> ParseContext:
        """Build from ``locals()`` of parse_model at the dispatch point."""
        g = frame_locals.get
        rows = g("d", {}).get("backbone", []) + g("d", {}).get("head", [])
        i = g("i")
        row = rows[i] if i is not None and i < len(rows) else None
        return cls(
            i=i,
            f=g("f"),
            n=g("n"),
            args=tuple(g("args")),
            ch=tuple(g("ch")),
            depth=g("depth"),
            width_multiple=g("width"),
            max_channels=g("max_channels"),
            scale=g("scale") or "",
            nc=g("nc"),
            reg_max=g("reg_max"),
            end2end=g("end2end"),
            d=g("d"),
            layers=tuple(g("layers")),
            legacy=g("legacy"),
            name=str(row[2]) if row is not None else "?",
            yaml_repeats=row[1] if row is not None else g("n"),
        )

    # --- errors -----------------------------------------------------------------------------------------
    def error(self, message: str) -> LayerError:
        """A :class:`LayerError` prefixed with the layer index and module name (raise it)."""
        return LayerError(f"model YAML layer {self.i} ({self.name}, from={self.f}): {message}")

    # --- channels ---------------------------------------------------------------------------------------
    def c_in(self) -> int | list[int]:
        """Input channels: an int for an int ``from``, a list for a list ``from``."""
        try:
            return [self.ch[x] for x in self.f] if isinstance(self.f, list) else self.ch[self.f]
        except (IndexError, TypeError):
            raise self.error(f"'from' refers to a layer that does not exist yet (built: {len(self.layers)})") from None

    def c_in_list(self) -> list[int]:
        """Input channels as a list, whatever the form of ``from``."""
        c = self.c_in()
        return c if isinstance(c, list) else [c]

    def c_in_single(self) -> int:
        """Input channels of a single-input module; a list ``from`` is an error."""
        if isinstance(self.f, list):
            raise self.error(f"takes one input, but 'from' lists {len(self.f)} layers")
        return self.c_in()

    def layer(self, f: int):
        """The already built module of layer ``f`` (absolute index, or negative = relative to this row)."""
        j = f if f >= 0 else self.i + f
        if not 0 <= j < len(self.layers):
            raise self.error(f"'from' refers to layer {f}, which does not exist yet (built: {len(self.layers)})")
        return self.layers[j]

    def width(self, c: int) -> int:
        """Width-scaled channels, the stock formula: ``make_divisible(min(c, max_channels) * width, 8)``."""
        return make_divisible(min(c, self.max_channels) * self.width_multiple, 8)

    # --- arguments --------------------------------------------------------------------------------------
    def resolve(self, value: Any, what: str) -> Any:
        """Replace a string naming a ``scale_args`` table by its value for this scale."""
        if not isinstance(value, str):
            return value
        table = (self.d.get(SCALE_ARGS_KEY) or {}).get(value)
        if table is None:
            known = ", ".join(self.d.get(SCALE_ARGS_KEY) or {}) or "none defined"
            raise self.error(f"{what}={value!r} is a string that names no '{SCALE_ARGS_KEY}' table ({known})")
        if self.scale not in table:
            raise self.error(f"'{SCALE_ARGS_KEY}.{value}' has no value for scale {self.scale!r} (has {list(table)})")
        return table[self.scale]

    def arg(self, index: int, what: str, kind: type | tuple, default: Any = ..., check=None) -> Any:
        """Row argument ``index`` (0 = first YAML arg), resolved and type-checked.

        Args:
            index: position in the YAML ``args`` list.
            what: the argument's name, used in errors.
            kind: accepted type(s); ``int`` also accepts ``bool``-free ints only, ``float`` accepts ints; with
                ``str`` a string is taken literally unless it names a ``scale_args`` table.
            default: value when the row omits it (``...`` = required).
            check: optional :class:`~ultra_ext.nn.checks.Bound` the value must be within: the one the module's
                constructor checks too, so both paths share one rule.
        """
        if index >= len(self.args):
            if default is ...:
                raise self.error(f"missing argument {index} ({what}); args={list(self.args)}")
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        value = self.args[index]
        if not (str in kinds and isinstance(value, str) and value not in (self.d.get(SCALE_ARGS_KEY) or {})):
            value = self.resolve(value, what)  # a string argument is a scale table name unless strings are valid
        ok = isinstance(value, kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if bool not in kinds and isinstance(value, bool):
            ok = False  # True is an int in Python; never accept it where a number belongs
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(f"argument {index} ({what}) must be {names}, got {value!r}")
        if check is not None and not check.accepts(value):
            raise self.error(f"argument {index} ({what})={value!r} must be {check}")
        return value

    def check_arity(self, max_args: int, signature: str) -> None:
        """Reject rows with more arguments than the module reads (nothing is silently ignored)."""
        if len(self.args) > max_args:
            raise self.error(f"takes at most {max_args} arguments {signature}, got {list(self.args)}")
