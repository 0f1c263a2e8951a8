"""Finding model YAMLs by name, from any working directory, and reading the scale from the name.

Stock lookup always runs first. Ours then tries, in the given path's folder (the working directory for a bare
name) and in every registered YAML folder (ours: ``ultra_ext/cfg/models``), these candidates for a name such as ``goldyolo-n.yaml``:

1. the name itself;
2. the stock "unified" name (``yolov12n-turbo.yaml`` → ``yolov12-turbo.yaml``);
3. ``<base>[-_]<letter>.yaml`` → ``<base>.yaml``, accepted only if ``<letter>`` is a key of its ``scales``.

Only the two names ``yaml_model_load`` uses are wrapped, and only inside ``ultralytics.nn.tasks``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from ultralytics.utils import YAML

__all__ = [
    "YAML_DIRS",
    "find_model_yaml",
    "model_yaml_names",
    "register_yaml_dir",
    "wrap_check_yaml",
    "wrap_guess_model_scale",
    "yaml_scales",
]

YAML_DIRS: list[Path] = [Path(__file__).resolve().parents[1] / "cfg" / "models"]
_SUFFIXES = (".yaml", ".yml")
_SCALED = re.compile(r"(?P<base>.+)[-_](?P<letter>[a-z])")


def register_yaml_dir(path: str | Path) -> None:
    """Make the model YAMLs in ``path`` resolvable by name (e.g. a plugin's own ``cfg/models``)."""
    p = Path(path).resolve()
    if p not in YAML_DIRS:
        YAML_DIRS.append(p)


def model_yaml_names() -> list[str]:
    """File names of every model YAML in the registered folders."""
    return sorted({p.name for d in YAML_DIRS for p in d.rglob("*.y*ml") if p.suffix in _SUFFIXES})


@lru_cache(maxsize=256)
def yaml_scales(path: Path) -> tuple[str, ...]:
    """The scale letters (keys of ``scales``) of a model YAML, cached."""
    scales = (YAML.load(path) or {}).get("scales") or {}
    return tuple(scales)


def _in_dirs(name: str, here: Path) -> Path | None:
    """``name`` in the caller's folder ``here`` (not searched below: it may be $HOME), then in our YAML folders."""
    if (here / name).is_file():
        return here / name
    for d in YAML_DIRS:
        hits = [d / name] if (d / name).is_file() else sorted(d.rglob(name))
        if hits:
            return hits[0]
    return None


def _split_scale(stem: str) -> tuple[str, str] | None:
    m = _SCALED.fullmatch(stem)
    return (m["base"], m["letter"]) if m else None


def find_model_yaml(file: str | Path) -> tuple[Path, str] | None:
    """Locate a model YAML by name; return ``(path, scale letter or '')`` or ``None``.

    Raises:
        FileNotFoundError: ``<base>-<letter>.yaml`` where ``<base>.yaml`` exists but has no such scale.
    """
    p = Path(str(file))
    if p.suffix not in _SUFFIXES:
        return None
    split = _split_scale(p.stem)
    if p.is_file():
        hit = p
    else:
        hit = _in_dirs(p.name, p.parent)
        if hit is None:
            unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", p.stem) + p.suffix
            hit = _in_dirs(unified, p.parent) if unified != p.name else None
    if hit is not None:
        return hit, (split[1] if split and split[1] in yaml_scales(hit) else "")
    if split:
        base = _in_dirs(split[0] + p.suffix, p.parent)
        if base is not None:
            scales = yaml_scales(base)
            if split[1] in scales:
                return base, split[1]
            raise FileNotFoundError(
                f"'{p.name}': {base.name} has no scale {split[1]!r}; its scales are {', '.join(scales) or 'none'}"
            )
    return None


def wrap_check_yaml(stock):
    """``check_yaml`` that falls back to our lookup when the stock one finds nothing."""

    def check_yaml(file, suffix=_SUFFIXES, hard=True):
        found = stock(file, suffix=suffix, hard=False)
        if found:
            return found
        ours = find_model_yaml(file)
        if ours is not None:
            return str(ours[0])
        return stock(file, suffix=suffix, hard=hard)  # the stock error (or None when not hard)

    check_yaml.__wrapped__ = stock
    return check_yaml


def wrap_guess_model_scale(stock):
    """``guess_model_scale`` that also reads ``<family>-<letter>.yaml`` names; stock guesses win."""

    def guess_model_scale(model_path):
        scale = stock(model_path)
        if scale:
            return scale
        try:
            ours = find_model_yaml(model_path)
        except FileNotFoundError:
            return ""
        return ours[1] if ours else ""

    guess_model_scale.__wrapped__ = stock
    return guess_model_scale
