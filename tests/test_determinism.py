"""Determinism on the CPU: the same seed gives bit-identical models, outputs and gradients, for every attention backend.

Checked per family (scale n, 128 px): two builds under one seed have byte-equal state dicts; for each backend
(``sdpa``, ``math``, and ``flash``, which falls back to ``sdpa`` on the CPU) two forward+backward passes give byte-equal
outputs and gradients; a fresh interpreter reproduces the same bytes; and two seeded training runs through the stock
trainer end with byte-equal weights. GPU backends are not all deterministic: see docs/reliability.md. About 70 s.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ultra_ext.bench.measure import build as build_model
from ultra_ext.bench.measure import iter_tensors

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds helpers.py (no package)
from helpers import describe, make_tiny_dataset, run_python, state_sha256, tensor_bytes  # noqa: E402

FAMILIES = ["yolov12n.yaml", "yolov12n-turbo.yaml", "goldyolo-n.yaml", "yolo11n-pst.yaml", "gyolo-generalist-n.yaml"]
BACKENDS = ["sdpa", "math", "flash"]
IMGSZ = 128  # PST's top-8 needs at least 8 coarse tokens (P5 of 128 px is 4×4)


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """The task's model class for ``name`` (as ``YOLO(name).model``), initialised under ``seed``."""
    torch.manual_seed(seed)
    return build_model(name, task=True)


def pass_digest(model: torch.nn.Module, backend: str, seed: int = 1) -> str:
    """sha256 of every output tensor and every parameter gradient of one train-mode forward+backward pass."""
    import ultra_ext

    model.train().zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # train mode draws random numbers (Gold-YOLO's drop path): every pass starts equal
    x = torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(seed))
    with ultra_ext.attn_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flash's one-time "falling back to sdpa" on the CPU
        out = model(x)
    flat = [t for t in iter_tensors(out) if t.is_floating_point()]
    sum(t.float().square().mean() for t in flat).backward()
    h = hashlib.sha256()
    for t in flat:
        h.update(tensor_bytes(t))
    for name, p in model.named_parameters():
        if p.grad is not None:
            h.update(name.encode() + tensor_bytes(p.grad))
    return h.hexdigest()


def digests(names=FAMILIES) -> dict:
    """``{name: {"state": ..., backend: ...}}`` from one seeded build per family."""
    out = {}
    for name in names:
        model = build(name)
        out[name] = {"state": state_sha256(model), **{b: pass_digest(model, b) for b in BACKENDS}}
    return out


@pytest.fixture(scope="module")
def here():
    return digests()


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_bytes_in_process(here, name):
    again = build(name)
    assert state_sha256(again) == here[name]["state"]
    for backend in BACKENDS:
        assert pass_digest(again, backend) == here[name][backend], backend
    assert here[name]["flash"] == here[name]["sdpa"]  # on the CPU flash is sdpa (documented fallback)
    assert state_sha256(build(name, seed=1)) != here[name]["state"]  # negative control: the seed matters


def test_fresh_interpreter_reproduces_the_bytes(here):
    code = (
        "import json, sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "torch.set_num_threads(int(sys.argv[1]))\n"
        "from test_determinism import digests\n"
        "print('RESULT ' + json.dumps(digests()))\n"
    )
    proc = run_python(code, [str(torch.get_num_threads())], cwd=Path(__file__).parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, describe(proc)
    assert json.loads(lines[-1][len("RESULT ") :]) == here


TRAIN = """
import sys
from ultralytics import YOLO
data, project, name, tests_dir = sys.argv[1:5]
sys.path.insert(0, tests_dir)
from helpers import state_sha256
model = YOLO("yolov12n.yaml")
model.train(data=data, epochs=2, imgsz=64, batch=4, workers=0, device="cpu", seed=7, deterministic=True, plots=False,
            val=False, project=project, name=name, exist_ok=True, verbose=False)
import torch
ckpt = torch.load(f"{project}/{name}/weights/last.pt", weights_only=False)
print("RESULT " + state_sha256(ckpt["ema"] or ckpt["model"]))  # the final save strips the optimizer, keeps the EMA
"""


@pytest.mark.slow
def test_seeded_training_is_bit_identical(tmp_path):
    """Two 2-epoch runs of the stock trainer (seed=7, deterministic=True, augmentation on) end with equal EMA bytes."""
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=64, nc=2)
    results = []
    for run_name in ("a", "b"):
        proc = run_python(
            TRAIN, [str(data), str(tmp_path / "runs"), run_name, str(Path(__file__).parent)], cwd=tmp_path
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, describe(proc)
        results.append(lines[-1])
    assert results[0] == results[1]
