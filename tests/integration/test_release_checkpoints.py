"""Checkpoints saved by release 0.1.0 (``tests/data/release_0_1_0``) still load, with the same classes and outputs.

They pickle ``ultra_ext.nn.*`` classes and ``ultra_ext.models.generalist.GeneralistModel`` by import path, so these
paths are public API: a layout change that moved them would break every user's trained weights. Each mode loads
all three files in a fresh interpreter, with and without ``ULTRALYTICS_SAFE_LOAD=1`` (weights-only unpickling
against the allow-list).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "release_0_1_0"
EXPECTED = json.loads((DATA / "expected.json").read_text())
MODELS = [k for k, v in EXPECTED.items() if isinstance(v, dict)]

LOAD = """
import json, sys, torch
from ultralytics import YOLO
x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
out = {}
for name, path in json.loads(sys.argv[1]).items():
    model = YOLO(path).model.float().eval()
    with torch.no_grad():
        y = model(x)
    while isinstance(y, (list, tuple, dict)):
        y = next(iter(y.values())) if isinstance(y, dict) else y[0]
    out[name] = {
        "classes": sorted({f"{type(m).__module__}.{type(m).__name__}" for m in model.modules()
                           if type(m).__module__.startswith("ultra_ext")}),
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "output_shape": list(y.shape),
        "output_sum": float(y.double().sum()),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module", params=["default", "safe-load"])
def loaded(request):
    env = {**os.environ}
    if request.param == "safe-load":
        env["ULTRALYTICS_SAFE_LOAD"] = "1"
    paths = json.dumps({name: str(DATA / EXPECTED[name]["file"]) for name in MODELS})
    proc = subprocess.run([sys.executable, "-c", LOAD, paths], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))[7:])


@pytest.mark.parametrize("name", MODELS)
def test_release_checkpoint_loads_unchanged(loaded, name):
    want, got = EXPECTED[name], loaded[name]
    assert got["model_class"] == want["model_class"]
    assert got["classes"] == want["classes"] and len(got["classes"]) >= 4
    assert got["output_shape"] == want["output_shape"]
    assert got["output_sum"] == pytest.approx(want["output_sum"], rel=1e-6)


def test_every_family_is_pinned():
    """The files cover every layer file of ``ultra_ext.nn`` that holds weights, and the generalist model class."""
    modules = {c.rsplit(".", 1)[0] for name in MODELS for c in EXPECTED[name]["classes"]}
    assert {"ultra_ext.nn.yolov12", "ultra_ext.nn.pst", "ultra_ext.nn.goldyolo", "ultra_ext.nn.efficientrep",
            "ultra_ext.nn.generalist"} <= modules  # fmt: skip
    assert "ultra_ext.models.generalist.GeneralistModel" in {EXPECTED[n]["model_class"] for n in MODELS}
