"""The startup hook (ultra_ext_hook.pth → ultra_ext_bootstrap.install()), in fresh interpreters.

Each test starts ``sys.executable`` in an empty temporary cwd with this process' environment (offline settings
from conftest), so what runs is the *installed* ultra_ext, exactly as for the stock ``yolo`` command.
Skipped where the hook is not installed in the interpreter's site-packages (e.g. an editable install).
Runtime: about 15 s (seven interpreters that import Ultralytics, two that build an n model).
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

HOOK = "ultra_ext_hook.pth"
_SITE_DIRS = [*site.getsitepackages(), site.getusersitepackages()]

pytestmark = pytest.mark.skipif(
    not any((Path(d) / HOOK).is_file() for d in _SITE_DIRS),
    reason=f"{HOOK} is not installed in this interpreter's site-packages ({', '.join(_SITE_DIRS)}); "
    "editable installs do not ship the startup hook, so there is nothing to test",
)

BUILD_V12 = "from ultralytics import YOLO; m = YOLO('yolov12n.yaml'); print(type(m.model.model[6]).__module__)"


def _run(code: str, cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ULTRA_EXT_DISABLE", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, *args, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_hook_activates_without_user_code(tmp_path):
    r = _run(BUILD_V12 + "; import sys, ultra_ext; print(ultra_ext.__file__)", tmp_path)
    assert r.returncode == 0, r.stderr
    module, path = r.stdout.strip().splitlines()[-2:]
    assert module == "ultra_ext.nn.yolov12"
    assert Path(path).resolve().is_relative_to(Path(site.getsitepackages()[0]).resolve())  # the installed copy


def test_hook_is_lazy_until_ultralytics_builds_models(tmp_path):
    """Interpreter start imports neither ultra_ext nor torch; importing ultralytics.nn.tasks activates."""
    code = (
        "import sys; print('ultra_ext' in sys.modules, 'torch' in sys.modules, 'ultra_ext_bootstrap' in sys.modules); "
        "import ultralytics.nn.tasks as t; import ultra_ext; "
        "print(ultra_ext.is_active(), getattr(t.parse_model, 'ultra_ext_patched', False), 'ultra_ext.A2C2f' in vars(t))"
    )
    r = _run(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "True", "True", "True", "True"]


def test_disable_env_runs_stock(tmp_path):
    r = _run(BUILD_V12, tmp_path, ULTRA_EXT_DISABLE="1")
    assert r.returncode != 0
    assert "FileNotFoundError" in r.stderr and "yolov12" in r.stderr
    code = (
        "import sys, ultralytics, ultralytics.nn.tasks as t; "
        "print('ultra_ext' in sys.modules, t.parse_model.__module__, hasattr(t.parse_model, 'ultra_ext_patched'))"
    )
    r = _run(code, tmp_path, ULTRA_EXT_DISABLE="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "ultralytics.nn.tasks", "False"]


@pytest.mark.parametrize("error", ["ImportError", "RuntimeError"])
def test_broken_ultra_ext_never_breaks_ultralytics(tmp_path, error):
    """A shadowing ultra_ext that fails on import (ahead of site-packages on PYTHONPATH) → a RuntimeWarning naming
    ultra_ext, and stock Ultralytics keeps working."""
    fake = tmp_path / "shadow" / "ultra_ext"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise {error}('simulated broken ultra_ext')\n")
    code = (  # ultralytics.cfg first, as the CLI does: one warning although two hook targets load
        "import ultralytics.cfg, ultralytics.nn.tasks as t; print(getattr(t.parse_model, 'ultra_ext_patched', False)); "
        "print(type(t.parse_model(t.yaml_model_load('yolo11n.yaml'), 3, verbose=False)[0][2]).__name__)"
    )
    r = _run(code, tmp_path, PYTHONPATH=str(tmp_path / "shadow"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["False", "C3k2"]  # (after any settings notice Ultralytics prints)
    warning = [line for line in r.stderr.splitlines() if ": RuntimeWarning: " in line]
    assert len(warning) == 1
    assert "ultra_ext" in warning[0] and f"{error}: simulated broken ultra_ext" in warning[0]


def test_hook_import_cost(tmp_path):
    """``-X importtime`` figure of ultra_ext_bootstrap at interpreter start (self and cumulative, µs); best of 3."""
    costs = []
    for _ in range(3):
        r = _run("pass", tmp_path, "-X", "importtime")
        assert r.returncode == 0, r.stderr
        pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s+ultra_ext_bootstrap$")
        rows = [m for m in map(pattern.match, r.stderr.splitlines()) if m]
        assert len(rows) == 1, "ultra_ext_bootstrap was not imported at start-up"
        costs.append((int(rows[0][1]), int(rows[0][2])))
    self_us, cumulative_us = min(costs, key=lambda c: c[1])
    print(f"\nultra_ext_bootstrap import at start-up: self {self_us} us, cumulative {cumulative_us} us (best of 3)")
    assert cumulative_us < 5000


def test_activation_imports_nothing_heavy(tmp_path):
    """What the hook triggers when Ultralytics loads (``import ultra_ext`` and activation) stays light: no
    ``torchvision.ops`` (it pulls in ``torch._dynamo``: seconds, measured 3.6 s on this machine before Gold-YOLO's
    drop path stopped using it). Stock Ultralytics imports neither at this point. The cost is printed, not asserted."""
    code = (
        "import sys, ultralytics.cfg, ultralytics.nn.tasks; from ultralytics import YOLO; "
        "print(sorted(m for m in ('ultra_ext', 'torchvision', 'torch._dynamo') if m in sys.modules))"
    )
    r = _run(code, tmp_path, "-X", "importtime")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[-2] == "['ultra_ext']", r.stdout
    rows = re.findall(r"import time:\s+\d+ \|\s+(\d+) \|\s+ultra_ext$", r.stderr, re.M)
    assert len(rows) == 1, r.stderr[-2000:]
    print(f"\nimport ultra_ext + activation, cumulative: {int(rows[0]) / 1000:.1f} ms")
