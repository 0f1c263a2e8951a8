"""End to end through the stock ``yolo`` console script: train -> val -> predict -> ONNX export of one model YAML
of each family (``yolov12n.yaml``, ``goldyolo-n.yaml``, ``yolo11n-pst.yaml``).

Every command runs in a subprocess whose cwd is a temp dir (not the repo), so the model YAML must resolve by
name through the installed ultra_ext and its startup hook; nothing imports ultra_ext explicitly. The exported
ONNX is then checked against the PyTorch checkpoint it came from. About 45 s per model on the 2-core CI box.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds helpers.py (no package)
from helpers import YOLO_CLI, describe, make_image, make_tiny_dataset, run  # noqa: E402

pytestmark = pytest.mark.slow

# 64 px everywhere except PST, whose default inference top-k (8) needs at least 8 tokens on the 2×-coarser
# map of each PST layer (the P5 map is 2×2 at 64 px, 4×4 at 128 px): the layer refuses smaller inputs by design.
IMGSZ = {"yolo11n-pst.yaml": 128}
# ONNX (fused Conv+BN, onnxslim-simplified, opset 18) vs the unfused PyTorch module in float32, measured
# max|diff| / max|output| ≈ 1e-7 here; 1e-5 leaves room for other CPUs/BLAS builds but catches any real change.
ONNX_REL_TOL = 1e-5


MODELS = ["yolov12n.yaml", "goldyolo-n.yaml", "yolo11n-pst.yaml"]


@pytest.fixture(scope="module", params=MODELS)
def work(request, tmp_path_factory):
    """Tiny dataset, a predict image and a 1-epoch ``yolo train`` run; returns paths used by the other steps."""
    assert YOLO_CLI.is_file(), f"stock console script missing next to {sys.executable}"
    model_yaml = request.param
    imgsz = IMGSZ.get(model_yaml, 64)
    root = tmp_path_factory.mktemp("cli_e2e_" + model_yaml.split(".")[0])
    data = make_tiny_dataset(root / "data", n_train=8, n_val=4, imgsz=imgsz, nc=2)
    image = make_image(root / "predict.jpg", imgsz=imgsz, seed=123)
    cwd = root / "cwd"  # an empty working dir: no YAML lying next to the command
    cwd.mkdir()
    common = [f"imgsz={imgsz}", "device=cpu", f"project={root / 'runs'}", "exist_ok=True"]
    proc = run(
        [str(YOLO_CLI), "train", f"model={model_yaml}", f"data={data}", "epochs=1", "batch=4", "workers=0",
         "plots=False", "name=train", *common],
        cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    best = root / "runs" / "train" / "weights" / "best.pt"
    assert best.is_file(), describe(proc)
    return dict(
        root=root, cwd=cwd, data=data, image=image, best=best, common=common, model_yaml=model_yaml, imgsz=imgsz,
        train_log=proc.stdout + proc.stderr,
    )  # fmt: skip


def test_train_built_model(work):
    """The trained checkpoint is the layout of our YAML (scale n), with the dataset's 2 classes."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    model = YOLO(str(work["best"])).model
    expected = DetectionModel(work["model_yaml"], nc=2, verbose=False)
    assert Path(model.yaml["yaml_file"]).name == work["model_yaml"]
    assert model.yaml["scale"] == "n"
    assert model.nc == 2
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in expected.parameters())
    assert [type(m).__name__ for m in model.model] == [type(m).__name__ for m in expected.model]
    assert any(type(m).__module__.startswith("ultra_ext.") for m in model.modules())


def test_val(work):
    proc = run(
        [str(YOLO_CLI), "val", f"model={work['best']}", f"data={work['data']}", "batch=4", "workers=0", "plots=False",
         "name=val", *work["common"]],
        cwd=work["cwd"],
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout + proc.stderr
    # the metrics table has a row per class of the tiny dataset
    assert "all" in out and " box " in out and " bar " in out, describe(proc)


def test_predict(work):
    proc = run(
        [str(YOLO_CLI), "predict", f"model={work['best']}", f"source={work['image']}", "name=predict", "save=True",
         *work["common"]],
        cwd=work["cwd"],
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    assert f"image 1/1 {work['image']}: {work['imgsz']}x{work['imgsz']}" in proc.stdout + proc.stderr, describe(proc)
    assert (work["root"] / "runs" / "predict" / work["image"].name).is_file()


@pytest.fixture(scope="module")
def onnx_path(work):
    proc = run(
        [str(YOLO_CLI), "export", f"model={work['best']}", "format=onnx", f"imgsz={work['imgsz']}", "device=cpu"],
        cwd=work["cwd"],
    )
    assert proc.returncode == 0, describe(proc)
    path = work["best"].with_suffix(".onnx")
    assert path.is_file(), describe(proc)
    return path


def test_onnx_graph_is_plain_ops(work, onnx_path):
    """Attention exported as MatMul/Softmax in the default ONNX domain: no custom (flash/SDPA) op."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    ops = {n.op_type for n in graph.node}
    domains = {n.domain for n in graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard op domains: {domains}"
    assert {"MatMul", "Softmax"} <= ops, sorted(ops)
    assert not {o for o in ops if "attention" in o.lower() or "flash" in o.lower()}, sorted(ops)
    (inp,) = graph.input
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 3, work["imgsz"], work["imgsz"]]


def test_onnx_matches_pytorch(work, onnx_path):
    """ONNX Runtime output == PyTorch output of the same checkpoint on the same preprocessed image."""
    import onnxruntime as ort
    from PIL import Image
    from ultralytics import YOLO

    img = np.asarray(Image.open(work["image"]).convert("RGB"), dtype=np.float32) / 255.0  # (64, 64, 3)
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None])  # (1, 3, 64, 64)

    model = YOLO(str(work["best"])).model.eval().float()
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    ref = (y[0] if isinstance(y, (list, tuple)) else y).numpy()  # (1, 4 + nc, anchors)

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    anchors = sum((work["imgsz"] // s) ** 2 for s in (8, 16, 32))
    assert ref.shape == got.shape == (1, 4 + 2, anchors)

    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max())
    rel = float(diff.max()) / scale
    print(f"ONNX vs PyTorch: max|diff|={diff.max():.3e}, max|out|={scale:.3f}, rel={rel:.3e}, "
          f"class-score max|diff|={diff[:, 4:].max():.3e}")  # fmt: skip
    assert scale > 1.0  # boxes are in pixels: a sane, non-degenerate output
    assert rel <= ONNX_REL_TOL
