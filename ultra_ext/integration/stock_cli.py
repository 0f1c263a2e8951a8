"""``ultra-ext yolo ...``: the stock ``yolo`` command with ultra_ext active before it parses anything.

For environments without the startup hook (editable installs, ``ULTRA_EXT_DISABLE=1``): there the stock ``yolo``
command would not know our modules, YAMLs or the ``generalist`` task.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``yolo <argv>`` in this process, ultra_ext activated first."""
    from . import activate

    activate()
    from ultralytics.cfg import entrypoint

    sys.argv[:] = ["yolo", *(sys.argv[1:] if argv is None else argv)]  # in place: Ultralytics bound ARGV to this list
    entrypoint()
    return 0
