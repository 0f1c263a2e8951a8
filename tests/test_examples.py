"""Every script in ``examples/`` runs, at tiny settings, as a user would run it (a fresh interpreter or bash, in an
empty working directory), and prints what its README says it prints."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds helpers.py (no package)
from helpers import random_state_dict, read_manifest  # noqa: E402


def run(tmp_path: Path, *command: str, **env) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `yolo`, `ultra-ext` of this env
    proc = subprocess.run(
        list(command), cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PATH": path, **env},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def test_every_example_is_tested_and_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    tests = {p.name: p.read_text() for p in Path(__file__).parent.rglob("test_*.py")}
    for example in sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh") or p.is_dir()):
        assert f"`{example.name}" in readme, f"{example.name} is not in examples/README.md"
        runners = [name for name, text in tests.items() if f'"{example.name}"' in text]
        assert runners, f"examples/{example.name} is run by no test"


def test_train_cli(tmp_path):
    out = run(tmp_path, "bash", str(EXAMPLES / "train_cli.sh"), "epochs=1", "imgsz=64", PROJECT=str(tmp_path))
    assert (tmp_path / "train_cli" / "weights" / "best.pt").is_file(), out[-2000:]
    assert re.search(r"all\s+12\s+\d+", out)  # the final validation on the 12 val images


def test_train_recipes(tmp_path):
    out = run(tmp_path, "bash", str(EXAMPLES / "train_recipes.sh"), PROJECT=str(tmp_path), EPOCHS="1", IMGSZ="64",
              PRETRAIN_EPOCHS="1", PRETRAIN_IMGSZ="64")  # fmt: skip
    backbone = backbone_tensor_count(tmp_path / "pretrain" / "weights" / "backbone.pt")
    assert re.search(rf"Transferred {backbone}/\d+ items", out), out[-3000:]  # every backbone tensor, in step 1
    assert out.count("det_loss=goldyolo: varifocal class loss, SIOU box loss") == 2
    assert "distillation: channel-wise KL (CWD, tau=1.0) on 3 neck levels" in out
    assert (tmp_path / "step2" / "weights" / "best.pt").is_file()


def backbone_tensor_count(path: Path) -> int:
    """Number of tensors in a pre-trained backbone file (what the fine-tuning run must transfer)."""
    import torch

    return len(torch.load(path, map_location="cpu", weights_only=False)["model"].state_dict())


def test_train_python(tmp_path):
    out = run(tmp_path, sys.executable, str(EXAMPLES / "train_python.py"), "--model", "goldyolo-n.yaml",
              "--epochs", "1", "--imgsz", "64", "--project", str(tmp_path))  # fmt: skip
    m = re.search(r"goldyolo-n.yaml: box mAP50 (\d\.\d{3}), mAP50-95 (\d\.\d{3})", out)
    assert m and 0 <= float(m[2]) <= float(m[1]) <= 1, out[-2000:]
    assert re.search(r"prediction on raccoon-\d+\.jpg: \d+ boxes", out)


def test_export_onnx(tmp_path):
    out = run(tmp_path, sys.executable, str(EXAMPLES / "export_onnx.py"), "--imgsz", "64")
    m = re.search(r"yolov12n\.onnx: output \[1, 84, 84\], max \|onnxruntime - PyTorch\| = (\S+)", out)
    assert m and float(m[1]) < 1e-2, out[-2000:]


def test_convert_checkpoint(tmp_path):
    import torch

    official = tmp_path / "Gold_n_synthetic.pt"
    torch.save({"model": random_state_dict(read_manifest("goldyolo", "official_state_dict_n")["keys"])}, official)
    out = run(tmp_path, sys.executable, str(EXAMPLES / "convert_checkpoint.py"), str(official),
              "--out", str(tmp_path / "goldyolo-n-coco.pt"), "--imgsz", "64")  # fmt: skip
    assert "Gold_n_synthetic.pt: an official Gold-YOLO checkpoint (the YOLOv6 fork)" in out, out
    assert re.search(r"goldyolo-n-coco\.pt: goldyolo-n \(nc=80, reg_max=1\); \d+ detections on raccoon-\d+\.jpg", out), out


def test_train_generalist(tmp_path):
    out = run(tmp_path, sys.executable, str(EXAMPLES / "train_generalist.py"), "--epochs", "1", "--imgsz", "64",
              "--project", str(tmp_path))  # fmt: skip
    m = re.search(r"box mAP50 (\S+), mask mAP50 (\S+), semantic mIoU (\d\.\d{3})", out)
    assert m and 0 <= float(m[3]) <= 1, out[-2000:]
    assert re.search(r"prediction: \d+ boxes, \d+ instance masks, semantic map \[\d+, \d+\]", out)


def test_compare_models(tmp_path):
    # 128 px: PST's top-8 needs at least 16 coarse tokens
    run(tmp_path, "bash", str(EXAMPLES / "compare_models.sh"), "--imgsz", "128", "--runs", "1", "--warmup", "0",
        "--skip-memory", "--skip-onnx", OUT=str(tmp_path))  # fmt: skip
    rows = {r["model"]: r for r in csv.DictReader((tmp_path / "bench.csv").open())}
    assert list(rows) == ["yolo11n", "yolo12n", "yolo26n", "yolov12n", "goldyolo-n", "yolo11n-pst", "gyolo-n"]
    assert rows["yolov12n"]["params"] == "2602288" and float(rows["yolo26n"]["pt_ms_median"]) > 0
    assert (tmp_path / "latency_params.png").is_file()
