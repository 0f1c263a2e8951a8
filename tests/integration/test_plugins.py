"""Users' own modules: ``ultra_ext.register`` and the ``ultra_ext.modules`` entry-point group.

The end-to-end tests install the example plugin package ``examples/custom_module_plugin`` (``pip install`` of a
copy, no index, no build isolation) into this interpreter's environment, then, in fresh interpreters that never import it by hand:
builds a model YAML made of its module, trains one epoch on the shipped mini-dataset with the stock trainer,
reloads ``best.pt`` with and without ``ULTRALYTICS_SAFE_LOAD=1``, and exports ONNX that onnxruntime runs. The
package is uninstalled afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ultra_ext
from ultra_ext import RegistrationError, register
from ultra_ext.integration import plugins

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_module_plugin"
PLUGIN, DISTRIBUTION = "gated_blocks", "gated-blocks"
DATA = Path(ultra_ext.__file__).resolve().parent / "data" / "raccoon-mini" / "data.yaml"

SCRIPT = r"""
import json, os, sys, torch
from pathlib import Path
from ultralytics import YOLO
step, work = sys.argv[1], Path(sys.argv[2])
x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))

def first(y):
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y

if step == "train":
    model = YOLO(str(work / "gatednet-n.yaml"))
    layers = [type(m).__module__ + "." + type(m).__name__ for m in model.model.model]
    model.train(data=sys.argv[3], epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, val=True,
                project=str(work), name="train", exist_ok=True, amp=False)
    best = YOLO(str(work / "train" / "weights" / "best.pt")).model.float().eval()
    with torch.no_grad():
        y = first(best(x))
    print("RESULT " + json.dumps({"layers": layers, "out": y.flatten()[:64].tolist(), "shape": list(y.shape)}))
elif step == "reload":
    run = sys.argv[3] if len(sys.argv) > 3 else "train"
    model = YOLO(str(work / run / "weights" / ("last.pt" if run == "ddp" else "best.pt")))
    net = model.model.float().eval()
    with torch.no_grad():
        y = first(net(x))
    print("RESULT " + json.dumps({"layers": [type(m).__name__ for m in net.model], "out": y.flatten()[:64].tolist()}))
elif step == "export":
    model = YOLO(str(work / "train" / "weights" / "best.pt"))
    path = model.export(format="onnx", imgsz=64, simplify=False)
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    print("RESULT " + json.dumps({"out": y.flatten()[:64].tolist(), "shape": list(y.shape)}))
"""


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """``examples/custom_module_plugin``, pip-installed into this environment for the module's tests, then removed."""
    src = tmp_path_factory.mktemp("plugin") / "src"
    shutil.copytree(EXAMPLE, src)  # setuptools writes build files next to the sources: keep them out of the checkout
    proc = _pip("install", "-q", "--no-deps", "--no-index", "--no-build-isolation", str(src))
    if proc.returncode:
        pytest.fail(f"could not install the example plugin: {proc.stderr[-2000:]}")
    work = tmp_path_factory.mktemp("plugin_work")
    shutil.copy(EXAMPLE / "gatednet.yaml", work / "gatednet.yaml")
    yield work
    _pip("uninstall", "-y", "-q", DISTRIBUTION)


def _run(step: str, work: Path, *args: str, **env) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, step, str(work), *args],
        capture_output=True, text=True, timeout=900, cwd=work, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return json.loads(next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))[7:])


@pytest.fixture(scope="module")
def trained(plugin):
    return _run("train", plugin, str(DATA))


def test_plugin_module_builds_and_trains_from_its_entry_point(trained):
    """Nothing imports the plugin by hand: the entry point registers it when the YAML is parsed."""
    assert trained["layers"][1:4] == [
        f"{PLUGIN}.blocks.GatedConv",
        f"{PLUGIN}.blocks.ChannelShuffle",
        f"{PLUGIN}.blocks.GatedConv",
    ]
    assert trained["shape"] == [1, 5, 84]  # 4 box + 1 class; 8x8 + 4x4 + 2x2 anchors at 64 px


@pytest.mark.parametrize("safe", [False, True], ids=["default", "safe-load"])
def test_plugin_checkpoint_reloads_in_a_fresh_process(plugin, trained, safe):
    env = {"ULTRALYTICS_SAFE_LOAD": "1"} if safe else {}
    reloaded = _run("reload", plugin, **env)
    assert reloaded["layers"][1:4] == ["GatedConv", "ChannelShuffle", "GatedConv"]
    assert torch.allclose(torch.tensor(reloaded["out"]), torch.tensor(trained["out"]), rtol=1e-4, atol=1e-4)


def test_plugin_model_exports_to_onnx(plugin, trained):
    exported = _run("export", plugin)
    assert exported["shape"] == [1, 5, 84]
    assert torch.allclose(torch.tensor(exported["out"]), torch.tensor(trained["out"]), rtol=1e-3, atol=1e-3)


DDP_SCRIPT = """
import json, sys
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.dist import generate_ddp_file
work, data = sys.argv[1:3]
trainer = DetectionTrainer(overrides=dict(model=work + "/gatednet-n.yaml", data=data, epochs=1, imgsz=64, batch=4,
                                          workers=0, device="cpu", plots=False, val=False, project=work, name="ddp",
                                          exist_ok=True))
print("RESULT " + json.dumps({"file": generate_ddp_file(trainer), "save_dir": str(trainer.save_dir)}))
"""


def test_plugin_model_trains_in_a_ddp_worker(plugin):
    """The worker file Ultralytics generates for DDP, run by torch.distributed.run with the startup hook off: only the
    pickled DDP anchor imports ultra_ext there, and the entry point brings the plugin's blocks before the YAML is
    parsed (as in ``tests/integration/test_ddp.py`` for our own modules)."""
    from ultralytics.utils.dist import find_free_network_port

    proc = subprocess.run([sys.executable, "-c", DDP_SCRIPT, str(plugin), str(DATA)], capture_output=True, text=True,
                          timeout=600, cwd=plugin)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = json.loads(next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))[7:])
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
              str(find_free_network_port()), made["file"]]  # fmt: skip
    proc = subprocess.run(launch, capture_output=True, text=True, timeout=900, cwd=plugin,
                          env={**os.environ, "ULTRA_EXT_DISABLE": "1"})  # fmt: skip
    Path(made["file"]).unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = _run("reload", plugin, "ddp")
    assert reloaded["layers"][1:4] == ["GatedConv", "ChannelShuffle", "GatedConv"]


# ------------------------------------------------------------------------------------------------ in-process rules
class _Scale(nn.Module):
    def __init__(self, c1, c2, factor=2.0):
        super().__init__()
        self.proj = nn.Conv2d(c1, c2, 1)
        self.factor = factor

    def forward(self, x):
        return self.proj(x) * self.factor


def _build(rows: list, scale=(0.5, 0.25, 1024)):
    from ultralytics.nn.tasks import DetectionModel

    d = {"nc": 2, "scales": {"n": list(scale)}, "scale": "n", "backbone": rows, "head": [[[-1], 1, "Detect", ["nc"]]]}
    return DetectionModel(d, verbose=False)


@pytest.fixture
def clean_registry():
    """Registrations made by a test are removed afterwards (the process-wide registry and the parser namespace)."""
    import ultralytics.nn.tasks as tasks

    before = plugins.registered_modules()
    yield
    for name in set(plugins.registered_modules()) - set(before):
        plugins._registered.pop(name)
        tasks.__dict__.pop(name, None)


def test_default_rule_prepends_input_channels_and_scales_the_first_argument(clean_registry):
    register(_Scale, name="DemoScale")
    model = _build([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "DemoScale", [256, 3.0]], [-1, 1, "Conv", [64, 3, 2]]])
    layer = model.model[1]
    assert isinstance(layer, _Scale) and layer.factor == 3.0
    assert (layer.proj.in_channels, layer.proj.out_channels) == (16, 64)  # 64·0.25 in, 256·0.25 out


def test_decorator_returns_the_class_and_registering_twice_is_a_no_op(clean_registry):
    assert register(name="DemoScaleTwice")(_Scale) is _Scale
    assert register(_Scale, name="DemoScaleTwice") is _Scale
    assert plugins.registered_modules()["DemoScaleTwice"] is _Scale


def test_default_rule_errors_name_the_layer(clean_registry):
    register(_Scale, name="DemoScale")
    with pytest.raises(ultra_ext.LayerError, match=r"layer 1 \(DemoScale.*c_out .*must be int, got 1.5"):
        _build([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "DemoScale", [1.5]]])
    with pytest.raises(ultra_ext.LayerError, match=r"layer 1 \(DemoScale.*repeats 2 stack copies.*16 → 64"):
        _build([[-1, 1, "Conv", [64, 3, 2]], [-1, 2, "DemoScale", [256]]], scale=(1.0, 0.25, 1024))


@pytest.mark.parametrize(
    "cls, name, match",
    [
        (_Scale, "Conv", r"'Conv' is already a name in Ultralytics' model parser"),
        (_Scale, "A2C2f", r"'A2C2f' is an ultra_ext module name"),
        (_Scale, "ultra_ext.Mine", r"is an ultra_ext module name"),
        (_Scale, "nn.Mine", r"not a usable YAML module name"),
        (_Scale, "has space", r"not a usable YAML module name"),
        (int, None, r"is not an nn.Module class"),
        (_Scale(1, 1), "Inst", r"is not an nn.Module class"),
    ],
)
def test_bad_registrations_are_refused(clean_registry, cls, name, match):
    with pytest.raises(RegistrationError, match=match):
        register(cls, name=name)


def test_a_name_taken_by_another_user_class_is_refused(clean_registry):
    register(_Scale, name="DemoTaken")

    class Other(nn.Module):
        pass

    with pytest.raises(RegistrationError, match=r"'DemoTaken' is already registered for .*_Scale"):
        register(Other, name="DemoTaken")
    with pytest.raises(RegistrationError, match="rule must be one of channels, same"):
        register(Other, name="DemoOther", rule="wide")


def test_failing_entry_point_warns_with_its_package_and_ultralytics_keeps_working(monkeypatch):
    from importlib.metadata import EntryPoint

    broken = EntryPoint(name="broken", value="ultra_ext_no_such_plugin.blocks", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **kw: [broken])
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    with pytest.warns(RuntimeWarning, match=r"entry point 'broken' .* of package 'ultra_ext_no_such_plugin' failed"):
        plugins.load_entry_points()
    model = _build([[-1, 1, "Conv", [64, 3, 2]]])  # the parser still works
    assert model.eval()(torch.zeros(1, 3, 64, 64))[0].shape[1] == 6  # 4 box + 2 classes
