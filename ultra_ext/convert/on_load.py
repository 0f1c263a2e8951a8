"""Official checkpoints load as they are: ``YOLO("yolov12n-turbo.pt")``, ``yolo val model=Gold_n_dist.pt``.

:func:`translate` sits in front of Ultralytics' ``torch_safe_load`` (installed by the package root through
:mod:`ultra_ext.integration.load_hooks`). It identifies the file from its pickled class names (:mod:`.identify`,
nothing unpickled) and

* Gold-YOLO, PST, Generalist YOLO: converts it in memory (:mod:`.auto`) instead of letting Ultralytics fail on the
  foreign classes;
* YOLO12 with the authors' turbo attention (detection, seg, cls): lets Ultralytics load it, then upgrades the
  attention classes (stock v1.0 YOLO12 is left to stock Ultralytics, which runs it);
* anything else: stays out of the way.

Each conversion logs one line naming what the file is and the command that saves the converted file. A file we
recognise but cannot convert whole fails loading with the converter's error: never a silent partial load. Foreign
files are always read in restricted mode (:func:`~.unpickle.restricted_load`: nothing they name runs), so
``ULTRALYTICS_SAFE_LOAD=1`` holds; turbo YOLO12 files go through Ultralytics' own loader and its safe loading. Files
that cannot be one of our sources (no marker class name in their pickle bytes) cost one read of the pickle and
nothing else.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["install", "translate"]

_CONVERTED_IN_MEMORY = ("goldyolo", "pst", "generalist")  # sources whose classes stock Ultralytics cannot unpickle


def _notice(path: Path, what: str, summary: str, dropped: list[str]) -> None:
    from ultralytics.utils import LOGGER

    lost = f"; dropped (no counterpart yet): {'; '.join(dropped)}" if dropped else ""
    LOGGER.warning(
        f"ultra_ext: {path.name} is {what}: converted in memory to {summary}{lost}. Save the converted file once "
        f"with `ultra-ext convert {path} -o {path.with_name(path.stem + '-ultra_ext.pt').name}` to skip this step."
    )


def _upgrade_turbo(ckpt: dict, path: Path) -> None:
    """Upgrade the ``model``/``ema`` entries of a loaded YOLO12 checkpoint whose attention is the turbo layout."""
    from torch import nn

    from .identify import SOURCES
    from .yolov12 import _model_layout, upgrade_yolo12

    upgraded = []  # (module, modules upgraded) per entry; training checkpoints hold only "ema"
    for key in ("model", "ema"):
        m = ckpt.get(key) if isinstance(ckpt, dict) else None
        if isinstance(m, nn.Module) and _model_layout(m) == "turbo":
            try:
                upgraded.append((m, upgrade_yolo12(m, check=True)))
            except ValueError as e:
                raise ValueError(f"{path}: {SOURCES['yolov12']}, but ultra_ext cannot convert it: {e}") from e
    if upgraded:
        model, count = upgraded[0]
        name = Path((getattr(model, "yaml", None) or {}).get("yaml_file") or path.stem).stem
        _notice(path, "a YOLO12 checkpoint with the authors' turbo attention", f"{name} ({count} modules)", [])


def translate(weight, load, args: tuple, kwargs: dict):
    """The :mod:`~ultra_ext.integration.load_hooks` translator: ``(ckpt, file)`` for official files we convert,
    ``None`` for everything else (the original ``load`` then runs)."""
    from .auto import READERS
    from .identify import identify, might_be_foreign

    path = Path(str(weight))
    if not path.is_file() or path.suffix != ".pt":
        return None  # a name Ultralytics downloads, or a file its own loader reports
    if not might_be_foreign(path):
        return None
    found = identify(path)
    if found.source in _CONVERTED_IN_MEMORY:
        try:
            done = READERS[found.source](path, {})
        except ValueError as e:
            raise ValueError(f"{path}: {found.what}, but ultra_ext cannot convert it: {e}") from e
        _notice(path, found.what, done.summary, done.dropped)
        return done.ckpt, str(path)
    if found.source == "yolov12":
        ckpt, file = load(weight, *args, **kwargs)
        _upgrade_turbo(ckpt, path)
        return ckpt, file
    return None


def install() -> None:
    """Make :func:`translate` the integration's checkpoint translator (idempotent)."""
    from ..integration.load_hooks import set_translator

    set_translator(translate)
