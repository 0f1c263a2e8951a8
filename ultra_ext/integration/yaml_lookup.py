"""Finding model YAMLs by name, from any working directory, and reading the scale from the name.

Stock lookup always runs first. Ours then tries, in the given path's folder (the working directory for a bare
name) and in every registered YAML folder (ours: ``ultra_ext/cfg/models``), these candidates for a name such as ``goldyolo-n.yaml``:

1. the name itself;
2. the stock "unified" name (``yolov12n-turbo.yaml`` → ``yolov12-turbo.yaml``);
3. ``<base>[-_]<letter>.yaml`` → ``<base>.yaml``, accepted only if ``<letter>`` is a key of its ``scales``.

A name found nowhere, stock or ours, that is close to a model name we or Ultralytics ship (``goldyolo-q.yaml``,
``yolov12q.yaml``, ``yolov12n.yml``) is a :class:`ModelNotFoundError` naming what was asked and the nearest names.
Only the two names ``yaml_model_load`` uses are wrapped, and only inside ``ultralytics.nn.tasks``.
"""

from __future__ import annotations

import difflib
import re
import threading
from functools import lru_cache
from pathlib import Path

from ultralytics.utils import YAML

__all__ = [
    "YAML_DIRS",
    "ModelNotFoundError",
    "find_model_yaml",
    "model_yaml_names",
    "model_names",
    "register_yaml_dir",
    "scale_name",
    "wrap_check_yaml",
    "wrap_guess_model_scale",
    "yaml_scales",
]

YAML_DIRS: list[Path] = [Path(__file__).resolve().parents[1] / "cfg" / "models"]
_SUFFIXES = (".yaml", ".yml")
_SCALED = re.compile(r"(?P<base>.+)[-_](?P<letter>[a-z])")
_UNIFY = re.compile(r"(\d+)([nslmx])(.+)?$")  # the stock "unified" name: yolov12n-seg.yaml → yolov12-seg.yaml


class ModelNotFoundError(FileNotFoundError):
    """A model YAML name that no lookup finds."""


def register_yaml_dir(path: str | Path) -> None:
    """Make the model YAMLs in ``path`` resolvable by name (e.g. a plugin's own ``cfg/models``)."""
    p = Path(path).resolve()
    if p not in YAML_DIRS:
        YAML_DIRS.append(p)


def _yaml_files(dirs: list[Path]) -> list[Path]:
    return [p for d in dirs for p in d.rglob("*.y*ml") if p.suffix in _SUFFIXES]


def model_yaml_names() -> list[str]:
    """File names of every model YAML in the registered folders."""
    return sorted({p.name for p in _yaml_files(YAML_DIRS)})


def scale_name(file: str, scale: str) -> str:
    """The name that builds ``file`` at ``scale``: the letter after the version digits (``yolov12-turbo.yaml`` →
    ``yolov12n-turbo.yaml``, ``yolo11-pst.yaml`` → ``yolo11n-pst.yaml``), else appended (``gyolo-seg-n.yaml``)."""
    stem, suffix = file.rsplit(".", 1)
    if stem.endswith(f"-{scale}"):  # one file per scale (goldyolo-n.yaml)
        return file
    if re.match(r"^yolo(v)?\d+", stem):
        return re.sub(r"^(yolo(v)?\d+)", rf"\g<1>{scale}", stem) + "." + suffix
    return f"{stem}-{scale}.{suffix}"


def model_names(dirs: list[Path] | None = None) -> list[str]:
    """Every name that builds a model from the YAMLs in ``dirs`` (default: ours), one per file and scale."""
    names = set()
    for path in _yaml_files(YAML_DIRS if dirs is None else dirs):
        names.update([scale_name(path.name, s) for s in yaml_scales(path)] or [path.name])
    return sorted(names)


def not_found_error(file) -> ModelNotFoundError | None:
    """The error for a model name nothing finds, when some shipped name (ours or stock) is close to it; else None."""
    from ultralytics.utils import ROOT

    asked = Path(str(file)).name
    ours = model_names()
    close = difflib.get_close_matches(asked, ours + model_names([ROOT / "cfg" / "models"]), n=4, cutoff=0.75)
    if not close:
        return None
    return ModelNotFoundError(
        f"model YAML {asked!r} not found; did you mean {' or '.join(repr(c) for c in close)}? `ultra-ext models` lists "
        f"the {len(ours)} models ultra_ext ships; a file of your own needs its path"
    )


@lru_cache(maxsize=1024)
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
            unified = _UNIFY.sub(r"\1\3", p.stem) + p.suffix
            hit = _in_dirs(unified, p.parent) if unified != p.name else None
    if hit is not None:
        return hit, (split[1] if split and split[1] in yaml_scales(hit) else "")
    if split:
        base = _in_dirs(split[0] + p.suffix, p.parent)
        if base is not None:
            scales = yaml_scales(base)
            if split[1] in scales:
                return base, split[1]
            raise ModelNotFoundError(
                f"model YAML {p.name!r} not found: {base.name} has no scale {split[1]!r}; its scales are "
                f"{', '.join(scales) or 'none'}"
            )
    return None


_misses = threading.local()  # the last name a soft lookup missed, in this thread


def wrap_check_yaml(stock):
    """``check_yaml`` that falls back to our lookup when the stock one finds nothing.

    ``yaml_model_load`` looks the name up twice, as typed (soft) and then with the scale letter removed (hard); a
    hard miss therefore names what the user typed when the soft miss before it unifies to it.
    """

    def check_yaml(file, suffix=_SUFFIXES, hard=True):
        found = stock(file, suffix=suffix, hard=False)
        if found:
            return found
        ours = find_model_yaml(file)
        if ours is not None:
            return str(ours[0])
        if not hard:
            _misses.name = str(file)
            return stock(file, suffix=suffix, hard=False)
        typed = getattr(_misses, "name", None)
        asked = typed if typed and _UNIFY.sub(r"\1\3", typed) == str(file) else file
        error = not_found_error(asked)
        if error is not None:
            raise error
        return stock(file, suffix=suffix, hard=hard)  # the stock error

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
