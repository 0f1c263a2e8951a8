"""``ultra-ext install-hook``: write (or remove) the startup hook in this environment's site-packages.

A wheel install ships ``ultra_ext_hook.pth`` and ``ultra_ext_bootstrap.py`` (see the latter's docstring); an
editable install (``pip install -e .``) does not, so the stock ``yolo`` command would run without our modules.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

__all__ = ["HOOK_FILES", "main"]

HOOK_FILES = ("ultra_ext_hook.pth", "ultra_ext_bootstrap.py")


def main(argv: list[str] | None = None) -> int:
    """Copy the hook files from the source tree of an editable install into site-packages (``--uninstall``: delete)."""
    parser = argparse.ArgumentParser(prog="ultra-ext install-hook", description=__doc__.split("\n")[0])
    parser.add_argument("--uninstall", action="store_true", help="remove the hook files instead")
    args = parser.parse_args(argv)
    site = Path(sysconfig.get_paths()["purelib"])
    src = Path(__file__).resolve().parents[2]  # the source tree of an editable install
    for name in HOOK_FILES:
        target = site / name
        if args.uninstall:
            target.unlink(missing_ok=True)
            print(f"removed {target}")
        elif not target.exists():
            origin = src / name
            if not origin.exists():
                print(f"error: {origin} not found; reinstall ultra-ext from a wheel instead", file=sys.stderr)
                return 1
            target.write_text(origin.read_text())
            print(f"wrote {target}")
        else:
            print(f"exists {target}")
    return 0
