"""A DDP worker started the way Ultralytics starts them builds (and trains) the ultra_ext model.

Ultralytics' ``generate_ddp_file`` cloudpickles ``{trainer class, args, model, callbacks}`` and writes a script that
rebuilds the trainer from it; the launcher runs that script with ``python -m torch.distributed.run``. For a YAML
start the worker re-parses ``yolov12n.yaml``, so ultra_ext must be imported there. With the startup hook disabled
(``ULTRA_EXT_DISABLE=1``) only our ``ddp_anchor`` callback, pickled by reference, can import it.

What runs for real: the generated file, unmodified, under ``torch.distributed.run --nproc_per_node 1`` (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_PORT set by the launcher). On CPU Ultralytics' trainer has world_size 0, so it
trains without ``init_process_group``; the part under test (state unpickling + model build in a fresh worker) is
exactly the multi-GPU path. Negative control: the same state without the anchor fails with FileNotFoundError.
About 45 s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import describe, make_tiny_dataset, run, run_python  # noqa: E402

NC = 2

# Runs in the launching process (hook on, as for a user): build the trainer, write one worker file with the default
# callbacks and one with ultra_ext's callbacks removed. Ultralytics only does this for multi-GPU devices; here we
# call generate_ddp_file directly (the launcher itself is never asked to pick GPUs).
GENERATE_SCRIPT = """
import json, sys
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.dist import generate_ddp_file
data, project = sys.argv[1:3]
trainer = DetectionTrainer(overrides=dict(
    model="yolov12n.yaml", data=data, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
    val=False, project=project, name="ddp", exist_ok=True))
ours = lambda f: getattr(f, "__module__", "").startswith("ultra_ext")
anchors = [f.__module__ + "." + f.__qualname__ for f in trainer.callbacks["on_pretrain_routine_start"] if ours(f)]
with_anchor = generate_ddp_file(trainer)
for event, funcs in trainer.callbacks.items():
    trainer.callbacks[event] = [f for f in funcs if not ours(f)]
without_anchor = generate_ddp_file(trainer)
print("RESULT " + json.dumps(dict(anchors=anchors, with_anchor=with_anchor, without_anchor=without_anchor,
                                  save_dir=str(trainer.save_dir))))
"""


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = make_tiny_dataset(root / "data", n_train=8, n_val=4, imgsz=64, nc=NC)
    proc = run_python(GENERATE_SCRIPT, [str(data), str(root / "runs")], cwd=root)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, describe(proc)
    res = json.loads(lines[-1][len("RESULT ") :])
    res["root"] = root
    yield res
    for key in ("with_anchor", "without_anchor"):  # what ultralytics.utils.dist.ddp_cleanup would remove
        Path(res[key]).unlink(missing_ok=True)
        Path(res[key]).with_suffix(".pt").unlink(missing_ok=True)


def _start_callbacks(worker_file: str) -> list[str]:
    """Load the worker state exactly as the generated script does; name its on_pretrain_routine_start callbacks."""
    from ultralytics.utils.patches import torch_load

    state = torch_load(str(Path(worker_file).with_suffix(".pt")), map_location="cpu")
    assert state["model"] == "yolov12n.yaml"  # a YAML start: the worker has to parse it itself
    return [f"{f.__module__}.{f.__qualname__}" for f in state["callbacks"]["on_pretrain_routine_start"]]


def test_anchor_is_pickled_in_worker_state(ddp):
    assert ddp["anchors"] == ["ultra_ext.integration.ddp_anchor"]
    assert "ultra_ext.integration.ddp_anchor" in _start_callbacks(ddp["with_anchor"])
    assert not [c for c in _start_callbacks(ddp["without_anchor"]) if c.startswith("ultra_ext")]


def test_generated_worker_trains_under_launcher(ddp):
    """The generated file, run by torch.distributed.run with the hook off, builds and trains YOLOv12-n."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.dist import find_free_network_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
           str(find_free_network_port()), ddp["with_anchor"]]  # fmt: skip
    proc = run(cmd, cwd=ddp["root"], env={"ULTRA_EXT_DISABLE": "1"})
    assert proc.returncode == 0, describe(proc)
    ckpt = Path(ddp["save_dir"]) / "weights" / "last.pt"
    assert ckpt.is_file(), describe(proc)

    model = YOLO(str(ckpt)).model
    expected = DetectionModel("yolov12n.yaml", nc=NC, verbose=False)
    assert Path(model.yaml["yaml_file"]).name == "yolov12n.yaml" and model.yaml["scale"] == "n"
    assert model.nc == NC
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in expected.parameters())
    assert any(type(m).__module__ == "ultra_ext.nn.yolov12" for m in model.modules())


def test_yolov12n_reference_count():
    """The nc=80 count of the same YAML is the published YOLOv12-n size, so the nc=2 comparison above is meaningful."""
    from ultralytics.nn.tasks import DetectionModel

    assert sum(p.numel() for p in DetectionModel("yolov12n.yaml", verbose=False).parameters()) == 2_602_288


def test_worker_without_anchor_cannot_find_yaml(ddp):
    """Negative control: same state minus our callback, hook off -> the worker cannot resolve the YAML.

    Run as ``python <generated file>`` (no launcher): it fails while building the model, before any distributed
    code, so the launcher would add only start-up time.
    """
    proc = run([sys.executable, ddp["without_anchor"]], cwd=ddp["root"], env={"ULTRA_EXT_DISABLE": "1"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "FileNotFoundError: 'yolov12.yaml' does not exist", describe(proc)
