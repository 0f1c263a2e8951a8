"""``python -m ultra_ext.bench``: the one benchmark command, run for real on tiny inputs.

The command runs in a subprocess whose cwd is a temp dir, so it measures the installed ultra_ext. The main test
takes a stock detection model and our three-output generalist model (the ONNX path with several outputs and the
task-specific model class); the training test (``slow``) trains two detection models for one epoch.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import describe, make_tiny_dataset, run

from ultra_ext.bench import runner as bench

# The documented CSV layout (module docstring): a change here is a change of the command's output format.
COLUMNS = [
    "model", "task", "source", "head", "params", "fused_params", "gflops_conv", "gflops_attn", "pt_ms_median",
    "pt_ms_min", "ort_ms_median", "ort_ms_min", "ort_rel_diff", "train_peak_mb", "map50", "map50_95", "imgsz",
    "threads", "device",
]  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMGSZ = 64  # cost and latency; PST would need >= 128, these models do not


def run_bench(args: list[str], cwd: Path, timeout: float = 300):
    return run([sys.executable, "-m", "ultra_ext.bench", *args], cwd=cwd, timeout=timeout)


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def assert_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200, (path, im.format, im.size)


def expected_cost(yaml: str) -> dict:
    """What the bench must report: model_cost of the task-specific model class, inference head as the bench picks."""
    from ultralytics import YOLO

    from ultra_ext.bench.measure import inference_head
    from ultra_ext.bench.cost import model_cost

    model = YOLO(yaml).model
    inference_head(model)
    return model_cost(model, IMGSZ).as_dict()


def test_columns_documented():
    assert bench.COLUMNS == COLUMNS
    for c in COLUMNS:
        assert f"``{c}``" in bench.__doc__, c


def test_cost_latency_memory_csv_and_plot(tmp_path):
    models = {
        "yolo11n.yaml": ("yolo11n", "detect", "stock", "one2many"),
        "gyolo-generalist-n.yaml": ("gyolo-generalist-n", "generalist", "ours", "one2one"),
    }
    out_csv, plots = tmp_path / "out" / "bench.csv", tmp_path / "plots"
    args = [*models, "--imgsz", str(IMGSZ), "--runs", "2", "--warmup", "1", "--threads", "1",
            "--mem-imgsz", "64", "--mem-batch", "2", "--csv", str(out_csv), "--plot-dir", str(plots)]  # fmt: skip
    proc = run_bench(args, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)

    header, rows = read_csv(out_csv)
    assert header == COLUMNS
    assert [(r["model"], r["task"], r["source"], r["head"]) for r in rows] == list(models.values())
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    for yaml, r in zip(models, rows):
        cost = expected_cost(yaml)
        assert int(r["params"]) == cost["params"]
        assert int(r["fused_params"]) == cost["params_fused"]
        assert float(r["gflops_conv"]) == pytest.approx(cost["gflops_conv_fused"], abs=1e-4)
        assert float(r["gflops_attn"]) == pytest.approx(cost["gflops_attn_fused"], abs=1e-4)
        for rt in ("pt", "ort"):  # ORT ran for the three-output generalist model too
            med, mn = float(r[f"{rt}_ms_median"]), float(r[f"{rt}_ms_min"])
            assert 0 < mn <= med < 10_000, (yaml, rt, mn, med)
        # export parity: every output, the generalist's NMS-free top-k detections compared as sets of rows
        assert 0 <= float(r["ort_rel_diff"]) < 1e-4, (yaml, r["ort_rel_diff"])
        # a training step writes every parameter's gradient: at least params × 4 bytes must become resident
        assert cost["params"] * 4 / 2**20 <= float(r["train_peak_mb"]) < 2_000, (yaml, r["train_peak_mb"])
        assert r["map50"] == r["map50_95"] == ""  # not trained
        assert (r["imgsz"], r["threads"], r["device"]) == (str(IMGSZ), "1", device)

    assert_png(plots / "latency_params.png")
    assert not (plots / "latency_map.png").exists()
    assert "wrote only the latency-params plot" in proc.stdout
    for name, *_ in models.values():  # the printed table has a row per model
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines()), proc.stdout


@pytest.mark.slow
def test_train_map_and_latency_map_plot(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=64, nc=2)
    out_csv, plots = tmp_path / "bench.csv", tmp_path / "plots"
    args = ["yolo11n.yaml", "gyolo-n.yaml", "--imgsz", str(IMGSZ), "--runs", "2", "--warmup", "1", "--threads", "1",
            "--skip-onnx", "--skip-memory", "--train", str(data), "--epochs", "1", "--train-imgsz", "64",
            "--train-batch", "4", "--csv", str(out_csv), "--plot-dir", str(plots)]  # fmt: skip
    proc = run_bench(args, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)

    header, rows = read_csv(out_csv)
    assert header == COLUMNS
    assert [r["model"] for r in rows] == ["yolo11n", "gyolo-n"]
    for r in rows:
        assert 0.0 <= float(r["map50_95"]) <= float(r["map50"]) <= 1.0, r
        assert r["ort_ms_min"] == r["train_peak_mb"] == ""  # skipped
        assert float(r["pt_ms_min"]) > 0
    assert proc.stdout.count("trained ") == 2, proc.stdout
    assert_png(plots / "latency_map.png")
    assert_png(plots / "latency_params.png")
    assert not list((data / "labels").glob("*.cache")), "label caches belong in the temp copy, not the dataset"


@pytest.mark.parametrize(
    ("yaml", "source"),
    [("yolo11n.yaml", "stock"), ("yolo12n.yaml", "stock"), ("yolov12n.yaml", "ours"), ("gyolo-n.yaml", "ours"),
     ("yolo11n-pst.yaml", "ours"), ("goldyolo-n.yaml", "ours")],
)  # fmt: skip
def test_model_source(yaml, source):
    assert bench.model_source(yaml) == source


@pytest.mark.parametrize(
    ("yaml", "task"),
    [("yolo11n-seg.yaml", "segment"), ("gyolo-sem-n.yaml", "semantic"), ("gyolo-generalist-n.yaml", "generalist"),
     ("yolo11n-cls.yaml", "classify"), ("yolo11n-pose.yaml", "pose"), ("yolo11n-obb.yaml", "obb")],
)  # fmt: skip
def test_train_step_uses_the_task_loss(yaml, task):
    """Every task's synthetic batch feeds its real criterion (no surrogate), and the loss has gradients."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    from ultra_ext.bench.measure import synthetic_batch

    y = YOLO(yaml)
    assert y.task == task
    model = y.model.train()
    model.args = get_cfg()
    batch = synthetic_batch(model, task, batch=2, imgsz=64)
    assert batch["img"].shape == (2, 3, 64, 64)
    loss, items = model.loss(batch)
    assert torch.isfinite(loss).all() and loss.sum() > 0, (loss, items)
    loss.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2
