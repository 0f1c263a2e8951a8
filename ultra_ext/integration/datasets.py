"""Datasets ultra_ext ships, by name: ``data=raccoon-mini.yaml`` (or ``raccoon-mini``) from any working directory.

The files live in the installed package (``ultra_ext/data/<name>/``), which may be read-only and must not collect
Ultralytics' label caches (``labels/train.cache``, written next to the labels on first use). So a name is served
from a copy under Ultralytics' ``datasets_dir`` setting, ``<datasets_dir>/ultra_ext/<name>``, made on first use and
made again when the shipped files change (a fingerprint of their names and sizes is kept beside the copy).

:func:`install` wraps ``check_file`` in ``ultralytics.data.utils``, the lookup ``check_det_dataset`` uses; a path that
exists, and every name that is not one of ours, go to the stock lookup unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

__all__ = ["DATA_DIR", "install", "materialize", "shipped_datasets", "uninstall"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
_STAMP = ".ultra_ext_fingerprint"
_saved: dict = {}


@lru_cache(maxsize=1)
def _shipped() -> tuple[tuple[str, Path], ...]:
    return tuple((f"{d.name}.yaml", d / "data.yaml") for d in sorted(DATA_DIR.iterdir()) if (d / "data.yaml").is_file())


def shipped_datasets() -> dict[str, Path]:
    """``{'raccoon-mini.yaml': <package>/data/raccoon-mini/data.yaml, ...}``: every dataset folder with a data.yaml
    (listed once per process: ``check_file`` asks on every lookup)."""
    return dict(_shipped())


def _fingerprint(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".cache")
    listing = "\n".join(f"{p.relative_to(folder).as_posix()} {p.stat().st_size}" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def materialize(name: str) -> Path:
    """The ``data.yaml`` of a writable copy of the shipped dataset ``name`` (``raccoon-mini.yaml``), made if needed.

    Raises:
        KeyError: ``name`` is not a shipped dataset.
    """
    from ultralytics.utils import SETTINGS

    source = shipped_datasets()[name].parent
    target = Path(SETTINGS["datasets_dir"]) / "ultra_ext" / source.name
    fingerprint = _fingerprint(source)
    stamp = target / _STAMP
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return target / "data.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.name}-", dir=target.parent))  # same file system: atomic rename
    shutil.copytree(source, staging, dirs_exist_ok=True)
    (staging / _STAMP).write_text(fingerprint)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same copy first
        shutil.rmtree(staging, ignore_errors=True)
    return target / "data.yaml"


def wrap_check_file(stock):
    """``check_file`` that serves our dataset names (a bare name that exists nowhere else) from :func:`materialize`."""

    def check_file(file, *args, **kwargs):
        name = str(file).strip()
        if name in shipped_datasets() and not os.path.exists(name):
            return str(materialize(name))
        return stock(file, *args, **kwargs)

    check_file.ultra_ext_stock = stock
    check_file.__doc__ = stock.__doc__
    return check_file


def install() -> None:
    """Wrap ``ultralytics.data.utils.check_file`` once, if that module is loaded (idempotent)."""
    import sys

    data_utils = sys.modules.get("ultralytics.data.utils")
    if "check_file" in _saved or data_utils is None or not hasattr(data_utils, "check_file"):
        return
    _saved["check_file"] = (data_utils, data_utils.check_file)
    data_utils.check_file = wrap_check_file(data_utils.check_file)


def uninstall() -> None:
    if "check_file" in _saved:
        module, stock = _saved.pop("check_file")
        module.check_file = stock
