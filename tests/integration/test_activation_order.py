"""``import ultra_ext`` activates everything, whatever was imported before it, with no startup hook installed.

Editable installs and vendored copies have no hook: there ``import ultra_ext`` is the only activation, and a
``YOLO`` class loaded after it must still know the ``generalist`` task.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BUILD = (
    "from ultralytics import YOLO; m = YOLO('gyolo-generalist-n.yaml'); "
    "print('RESULT', m.task, type(m.model).__name__, type(m.model.model[-1]).__module__)"
)


@pytest.mark.parametrize(
    "before",
    [
        "import ultra_ext",  # before Ultralytics: the YOLO class is loaded later
        "import ultralytics; import ultra_ext",  # after the package, before the YOLO class
        "from ultralytics import YOLO; import ultra_ext",  # after the YOLO class
    ],
)
def test_generalist_task_in_either_import_order(before):
    env = {**os.environ, "ULTRA_EXT_DISABLE": "1"}  # the startup hook stays out: only `import ultra_ext` activates
    proc = subprocess.run(
        [sys.executable, "-c", f"{before}; {BUILD}"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT"))
    assert line.split()[1:] == ["generalist", "GeneralistModel", "ultra_ext.nn.generalist"]


def test_importing_the_generalist_model_module_first_keeps_the_startup_hook():
    """With the startup hook on, ``ultra_ext.models.generalist`` imported before the YOLO class: its own imports load
    that class, so the hook runs while the module is half-imported. Registration must wait for it, not fail (it
    used to warn "startup hook skipped ... circular import" and run Ultralytics stock)."""
    code = (
        "import torch; from ultra_ext.models.generalist import GeneralistModel; "
        f"{BUILD}; print('SAFE', GeneralistModel in torch.serialization.get_safe_globals())"
    )
    env = {k: v for k, v in os.environ.items() if k != "ULTRA_EXT_DISABLE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "startup hook skipped" not in proc.stderr, proc.stderr[-3000:]
    line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT"))
    assert line.split()[1:] == ["generalist", "GeneralistModel", "ultra_ext.nn.generalist"]
    assert "SAFE True" in proc.stdout
