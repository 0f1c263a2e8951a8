"""The papers' training recipes by name: ``yolo train cfg=yolov12-n-recipe.yaml model=... data=...``.

A recipe is an Ultralytics argument file (``ultra_ext/cfg/recipes/<name>-recipe.yaml``) that cites its source.
Ultralytics reads ``cfg=`` through ``ultralytics.utils.checks.check_yaml`` (the CLI entrypoint and
``Model.train``); :func:`install` wraps that one name. A path that exists and every name that is not ours go to the
stock lookup unchanged; a ``*-recipe.yaml`` name found nowhere is an error that lists the nearest recipes.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

__all__ = ["RECIPE_DIR", "RecipeNotFoundError", "find_recipe", "install", "recipe_names", "uninstall"]

RECIPE_DIR = Path(__file__).resolve().parents[1] / "cfg" / "recipes"
_SUFFIX = "-recipe.yaml"
_saved: dict = {}


class RecipeNotFoundError(FileNotFoundError):
    """A ``*-recipe.yaml`` name that is neither a file nor a recipe we ship."""


def recipe_names() -> list[str]:
    """File names of every shipped recipe, e.g. ``['goldyolo-l-recipe.yaml', ...]``."""
    return sorted(p.name for p in RECIPE_DIR.glob(f"*{_SUFFIX}"))


def find_recipe(name: str) -> Path | None:
    """The shipped recipe called ``name`` (``.yaml`` optional), or None."""
    stem = Path(str(name).strip()).name
    if not stem.endswith((".yaml", ".yml")):
        stem += ".yaml"
    path = RECIPE_DIR / stem
    return path if path.is_file() else None


def wrap_check_yaml(stock):
    """``check_yaml`` that serves our recipe names when nothing of that name exists where the user is."""

    def check_yaml(file, *args, **kwargs):
        name = str(file).strip()
        if not os.path.exists(name) and not any(s in name for s in ("/", "\\", "://")):
            found = find_recipe(name)
            if found is not None:
                return str(found)
            if name.endswith((_SUFFIX, "-recipe", "-recipe.yml")):
                close = difflib.get_close_matches(Path(name).name, recipe_names(), n=3, cutoff=0.6)
                hint = f" Nearest: {', '.join(close)}." if close else ""
                raise RecipeNotFoundError(
                    f"cfg={name!r}: no such file and no recipe of that name.{hint} "
                    f"Recipes ultra_ext ships: {', '.join(recipe_names())} (docs/training.md)."
                )
        return stock(file, *args, **kwargs)

    check_yaml.ultra_ext_stock = stock
    check_yaml.__doc__ = stock.__doc__
    return check_yaml


def install() -> None:
    """Wrap ``ultralytics.utils.checks.check_yaml`` once (idempotent)."""
    import ultralytics.utils.checks as checks

    if "check_yaml" in _saved:
        return
    _saved["check_yaml"] = checks.check_yaml
    checks.check_yaml = wrap_check_yaml(checks.check_yaml)


def uninstall() -> None:
    if "check_yaml" in _saved:
        import ultralytics.utils.checks as checks

        checks.check_yaml = _saved.pop("check_yaml")
