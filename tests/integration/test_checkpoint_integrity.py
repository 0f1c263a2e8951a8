"""Checkpoints written by training load in fresh interpreters that never import ultra_ext explicitly.

Training pickles the whole module (``ckpt["ema"]``), so our classes are referenced by import path. Scenarios
(integration spec §6): startup hook on; ``ULTRALYTICS_SAFE_LOAD=1`` (weights-only unpickler: needs the hook's
safe-globals registration; without the hook it must be refused); hook off (``ULTRA_EXT_DISABLE=1``: the unpickler
itself imports ultra_ext); ultra_ext not importable (the error must name the module). About 35 s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import describe, make_tiny_dataset, run, run_python  # noqa: E402

IMGSZ = 64
NC = 2

# Loads the checkpoint like a user would, runs the fixed input, and reports whether/where ultra_ext got imported.
LOAD_SCRIPT = """
import json, sys
import numpy as np
ckpt, x_path, y_path, threads = sys.argv[1:5]
from ultralytics import YOLO
hook_imported = "ultra_ext" in sys.modules
import torch
torch.set_num_threads(int(threads))
model = YOLO(ckpt).model.eval().float()
imported_by_load = "ultra_ext" in sys.modules
with torch.no_grad():
    y = model(torch.from_numpy(np.load(x_path)))
np.save(y_path, (y[0] if isinstance(y, (list, tuple)) else y).numpy())
import ultra_ext.integration
print("RESULT " + json.dumps(dict(
    hook_imported=hook_imported,
    imported_by_load=imported_by_load,
    active=ultra_ext.integration.is_active(),
    ultra_ext_file=sys.modules["ultra_ext"].__file__,
    classes=sorted({type(m).__module__ + "." + type(m).__name__ for m in model.modules()
                    if type(m).__module__.startswith("ultra_ext")}),
)))
"""

TRAIN_SCRIPT = """
import sys
from ultralytics import YOLO
data, project = sys.argv[1:3]
YOLO("yolov12n.yaml").train(data=data, epochs=1, imgsz={imgsz}, batch=4, workers=0, device="cpu", plots=False,
                            val=False, project=project, name="ckpt", exist_ok=True)
""".format(imgsz=IMGSZ)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A 1-epoch training run (fresh interpreter, cwd outside the repo) -> last.pt; plus the load script/input."""
    root = tmp_path_factory.mktemp("ckpt")
    data = make_tiny_dataset(root / "data", n_train=8, n_val=4, imgsz=IMGSZ, nc=NC)
    proc = run_python(TRAIN_SCRIPT, [str(data), str(root / "runs")], cwd=root)
    ckpt = root / "runs" / "ckpt" / "weights" / "last.pt"
    assert proc.returncode == 0 and ckpt.is_file(), describe(proc)
    script = root / "load_ckpt.py"
    script.write_text(LOAD_SCRIPT)
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0)).numpy()
    np.save(root / "x.npy", x)
    return dict(root=root, ckpt=ckpt, script=script, x=x)


def load_in_subprocess(env_, extra_env: dict, tag: str):
    """Run LOAD_SCRIPT on the checkpoint in a fresh interpreter (cwd outside the repo) with ``extra_env``."""
    y_path = env_["root"] / f"y_{tag}.npy"
    proc = run(
        [sys.executable, str(env_["script"]), str(env_["ckpt"]), str(env_["root"] / "x.npy"), str(y_path),
         str(torch.get_num_threads())],
        cwd=env_["root"],
        env=extra_env,
    )  # fmt: skip
    return proc, y_path


def result_of(proc) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, describe(proc)
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def reference(env):
    """Output of the same checkpoint loaded in this (pytest) process."""
    from ultralytics import YOLO

    model = YOLO(str(env["ckpt"])).model.eval().float()
    with torch.no_grad():
        y = model(torch.from_numpy(env["x"]))
    return (y[0] if isinstance(y, (list, tuple)) else y).numpy()


def assert_same_output(y_path: Path, reference: np.ndarray) -> None:
    got = np.load(y_path)
    assert got.shape == reference.shape == (1, 4 + NC, sum((IMGSZ // s) ** 2 for s in (8, 16, 32)))
    # same weights, same code, same thread count: only reduction-order noise is tolerated
    assert np.abs(got - reference).max() <= 1e-5 * max(1.0, float(np.abs(reference).max()))


@pytest.mark.parametrize(
    "tag, extra_env, hook_imported",
    [
        ("hook", {}, True),  # startup hook activates ultra_ext when ultralytics.nn.tasks is imported
        ("safe", {"ULTRALYTICS_SAFE_LOAD": "1"}, True),  # weights-only load against our allow-list
        ("nohook", {"ULTRA_EXT_DISABLE": "1"}, False),  # the unpickler imports ultra_ext by class path
    ],
)
def test_loads_in_fresh_process(env, reference, tag, extra_env, hook_imported):
    proc, y_path = load_in_subprocess(env, extra_env, tag)
    res = result_of(proc)
    assert res["hook_imported"] is hook_imported
    assert res["imported_by_load"] and res["active"]
    assert "site-packages" in res["ultra_ext_file"]  # the installed copy, not this checkout
    assert "ultra_ext.nn.yolov12.A2C2f" in res["classes"] and "ultra_ext.nn.yolov12.AreaAttention" in res["classes"]
    assert_same_output(y_path, reference)


def test_safe_load_without_ultra_ext_is_refused(env):
    """Negative control for the safe-load case: hook off, so nothing allow-lists our classes -> refused."""
    proc, _ = load_in_subprocess(env, {"ULTRALYTICS_SAFE_LOAD": "1", "ULTRA_EXT_DISABLE": "1"}, "safe_nohook")
    assert proc.returncode != 0
    assert "TypeError" in proc.stderr and "outside the supported Ultralytics checkpoint format" in proc.stderr, (
        describe(proc)
    )


@pytest.mark.parametrize("exc", ["ModuleNotFoundError", "ImportError"])
def test_unimportable_ultra_ext_error_names_it(env, tmp_path, exc):
    """ultra_ext shadowed by a package that cannot be imported: the load fails and the output names 'ultra_ext'.

    ModuleNotFoundError mimics "not installed" (Ultralytics then warns and, with autoinstall off, re-raises);
    a plain ImportError (broken install) propagates from the unpickler unchanged.
    """
    fake = tmp_path / "fake" / "ultra_ext"
    fake.mkdir(parents=True)
    msg = "No module named 'ultra_ext'" if exc == "ModuleNotFoundError" else "broken on purpose"
    kwargs = ", name='ultra_ext'" if exc == "ModuleNotFoundError" else ""
    (fake / "__init__.py").write_text(f"raise {exc}({msg!r}{kwargs})\n")
    proc, _ = load_in_subprocess(env, {"PYTHONPATH": str(fake.parent)}, f"fake_{exc}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, describe(proc)
    assert "RESULT" not in proc.stdout
    # the startup hook turned the failed import into a warning instead of breaking `import ultralytics`
    assert "ultra_ext: startup hook skipped" in proc.stderr, describe(proc)
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"{exc}: {msg}", describe(proc)
    if exc == "ModuleNotFoundError":  # Ultralytics' own message names the missing top-level module
        assert "appears to require 'ultra_ext'" in out, describe(proc)
