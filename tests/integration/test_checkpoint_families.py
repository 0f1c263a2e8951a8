"""Checkpoints of every family: bit-exact round trips, safe-load, damaged files, and the missing-package path.

One model per family and task (scale n, BatchNorm moved off its init so every tensor matters) is written the two
ways users write checkpoints: ``YOLO.save()`` (fp16, as Ultralytics' trainer writes ``ema``) and ``torch.save`` of a
float32 ``{"model": ...}`` dict. Loading goes through the stock ``YOLO(path)``. About 40 s.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from ultra_ext.bench.measure import iter_tensors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import describe, nudge, run_python, state_sha256, tensor_bytes  # noqa: E402

MODELS = [  # (YAML, task): every family, and every task head we ship
    ("yolov12n.yaml", "detect"),
    ("yolov12n-turbo.yaml", "detect"),
    ("yolov12n-seg.yaml", "segment"),
    ("yolov12n-cls.yaml", "classify"),
    ("goldyolo-n.yaml", "detect"),
    ("yolo11n-pst.yaml", "detect"),
    ("gyolo-seg-n.yaml", "segment"),
    ("gyolo-sem-n.yaml", "semantic"),
    ("gyolo-generalist-n.yaml", "generalist"),
]
IMGSZ = 128  # PST needs topk (8) coarse tokens: P5 of 128 px is 4×4


def digest(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """sha256 of the state dict (names, dtypes, shapes, bytes) and of the first eval-mode output tensor on ``x``."""
    with torch.no_grad():
        y = next(iter_tensors(model.eval()(x)))
    return {"state": state_sha256(model), "output": hashlib.sha256(tensor_bytes(y)).hexdigest()}


def fixed_input() -> torch.Tensor:
    return torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``{yaml: {"model": reference fp32 module, "half": path, "float": path}}``."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("family_ckpts")
    out = {}
    for k, (name, task) in enumerate(MODELS):
        yolo = YOLO(name)
        assert yolo.task == task
        nudge(yolo.model, seed=k)
        stem = Path(name).stem
        half, full = root / f"{stem}-half.pt", root / f"{stem}-float.pt"
        yolo.save(half)
        torch.save({"model": copy.deepcopy(yolo.model), "train_args": {"task": task}}, full)
        out[name] = dict(model=yolo.model.float().eval(), half=half, float=full)
    return out


@pytest.mark.parametrize("precision", ["float", "half"])
@pytest.mark.parametrize("name,task", MODELS, ids=[m[0] for m in MODELS])
def test_round_trip_is_bit_exact(saved, name, task, precision):
    from ultralytics import YOLO

    ref = saved[name]["model"]
    if precision == "half":  # YOLO.save() stores fp16; loading casts back to fp32: compare at the stored precision
        ref = copy.deepcopy(ref).half().float()
    loaded = YOLO(str(saved[name][precision]))
    assert loaded.task == task
    got = loaded.model.eval()
    assert type(got) is type(ref) and got.yaml == ref.yaml
    assert [type(m).__qualname__ for m in got.modules()] == [type(m).__qualname__ for m in ref.modules()]
    ref_sd, got_sd = ref.state_dict(), got.state_dict()
    assert list(got_sd) == list(ref_sd)
    for key, value in ref_sd.items():
        assert got_sd[key].dtype == value.dtype and torch.equal(got_sd[key], value), key
    x = fixed_input()
    assert digest(got, x) == digest(ref, x)  # same bytes in, same bytes out


LOAD_ALL = """
import hashlib, json, os, sys
import torch
sys.path.insert(0, sys.argv[1])
from test_checkpoint_families import digest, fixed_input
torch.set_num_threads(int(sys.argv[2]))
from ultralytics import YOLO
out = {}
for path in sys.argv[3:]:
    model = YOLO(path)
    out[path] = dict(task=model.task, **digest(model.model.eval(), fixed_input()))
print("RESULT " + json.dumps(dict(out=out, safe=os.environ.get("ULTRALYTICS_SAFE_LOAD"))))
"""


def test_safe_load_loads_every_family_in_a_fresh_process(saved):
    """``ULTRALYTICS_SAFE_LOAD=1`` (torch ``weights_only``) in a new interpreter: the startup hook allow-lists our
    classes; every family loads with the same bytes and gives the same output bytes as in this process."""
    from ultralytics import YOLO

    paths = [str(saved[name][p]) for name, _ in MODELS for p in ("half", "float")]
    proc = run_python(
        LOAD_ALL,
        [str(Path(__file__).parent), str(torch.get_num_threads()), *paths],
        cwd=Path(paths[0]).parent,
        env={"ULTRALYTICS_SAFE_LOAD": "1"},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, describe(proc)
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["safe"] == "1"
    x = fixed_input()
    for path in paths:
        here = YOLO(path)
        assert result["out"][path] == dict(task=here.task, **digest(here.model.eval(), x)), path


def record_offset(path: Path, suffix: str) -> tuple[int, int]:
    """Byte offset and size of the data of the largest zip record whose name ends with ``suffix``."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if i.filename.endswith(suffix)), key=lambda i: i.file_size)
    raw = path.read_bytes()
    h = info.header_offset
    name_len, extra_len = struct.unpack("<HH", raw[h + 26 : h + 30])  # the local header's own lengths
    return h + 30 + name_len + extra_len, info.file_size


def flipped(src: Path, dst: Path, offset: int) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset] ^= 0x01  # one bit
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("damage", ["truncated", "empty", "weight-bit", "pickle-bit", "not-a-checkpoint"])
def test_damaged_checkpoint_fails_cleanly(saved, tmp_path, damage):
    """One clear ``TypeError`` naming the file; never a silently different model or an unpickler traceback.

    Without the check, a flipped bit in a weight loads silently and one in the pickle raises ``AttributeError: Can't
    get attribute ...`` (measured with torch 2.14.1: ``torch.load`` does not verify the zip CRCs)."""
    from ultralytics import YOLO

    src = saved["yolov12n.yaml"]["half"]
    bad = tmp_path / f"{damage}.pt"
    if damage == "truncated":
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "weight-bit":
        offset, size = record_offset(src, "/data/0")
        flipped(src, bad, offset + size // 2)
    elif damage == "pickle-bit":
        offset, size = record_offset(src, "data.pkl")
        flipped(src, bad, offset + size // 2)
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(TypeError) as e:
        YOLO(str(bad))
    msg = str(e.value)
    assert str(bad) in msg, msg
    expected = "corrupted" if damage.endswith("-bit") else "not a loadable checkpoint"
    assert expected in msg, msg
    if damage.endswith("-bit"):
        assert "CRC" in msg and "ultra_ext" in msg, msg


def test_checkpoint_saved_without_crcs_still_loads(saved, tmp_path):
    """``set_crc32_options(False)`` at save time writes CRC 0: nothing to verify, so no false alarm."""
    from ultralytics import YOLO

    from ultra_ext.integration.checkpoint_integrity import verify_checkpoint

    path = tmp_path / "nocrc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"model": copy.deepcopy(saved["yolov12n.yaml"]["model"])}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(path) as z:
        assert {i.CRC for i in z.infolist() if "/data/" in i.filename} == {0}
    verify_checkpoint(path)
    assert isinstance(YOLO(str(path)).model, torch.nn.Module)


def test_verification_cost(saved):
    """The CRC pass over the largest checkpoint here: report the rate (it reads every byte once)."""
    from ultra_ext.integration.checkpoint_integrity import verify_checkpoint

    path = max((saved[n]["float"] for n, _ in MODELS), key=lambda p: p.stat().st_size)
    best = min(_timed(verify_checkpoint, path) for _ in range(3))
    mb = path.stat().st_size / 1e6
    print(f"\nverify_checkpoint: {mb:.1f} MB in {best * 1e3:.1f} ms ({mb / best / 1e3:.2f} GB/s)")
    assert best < 5.0  # a hang or a quadratic read would show here; speed itself is reported, not asserted


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def test_missing_ultra_ext_asks_for_this_distribution(saved, monkeypatch):
    """Without ultra_ext, Ultralytics catches the ModuleNotFoundError, warns that the file "appears to require
    'ultra_ext'" and calls ``check_requirements('ultra_ext')`` (a pip install when YOLO_AUTOINSTALL is on).

    pip normalises ``ultra_ext`` to ``ultra-ext`` (PEP 503): the name must be exactly this project's distribution,
    and the distribution must own the top-level module, so the auto-install cannot fetch another package."""
    from importlib import metadata

    import ultralytics.nn.tasks as tasks
    from packaging.utils import canonicalize_name

    asked = []

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'ultra_ext'", name="ultra_ext")

    def record(requirement, *args, **kwargs):
        asked.append(requirement)
        return False  # as with YOLO_AUTOINSTALL=0: nothing installed, the retry fails again

    monkeypatch.setattr(tasks, "torch_load", missing)
    monkeypatch.setattr(tasks, "check_requirements", record)
    with pytest.raises(ModuleNotFoundError) as e:
        tasks.torch_safe_load(str(saved["yolov12n.yaml"]["half"]), safe_only=False)
    assert e.value.name == "ultra_ext"
    assert asked == ["ultra_ext"]
    dist = metadata.distribution("ultra-ext")
    assert canonicalize_name(asked[0]) == canonicalize_name(dist.metadata["Name"]) == "ultra-ext"
    assert "ultra-ext" in metadata.packages_distributions()["ultra_ext"]
    top_level = {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("ultra_ext-")}
    assert "ultra_ext" in top_level and not top_level - {"ultra_ext", "ultra_ext_bootstrap.py", "ultra_ext_hook.pth",
                                                         "..", "__pycache__"}, top_level  # fmt: skip
