"""Pose and OBB YAMLs train one epoch through the stock trainer on generated data, validate, and reload."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import make_tiny_dataset  # noqa: E402

# YAML → (task, image size: PST's top-k 8 needs a 4×4 P5 map, so 128 px)
MODELS = {
    "yolov12n-pose.yaml": ("pose", 64),
    "yolov12n-obb.yaml": ("obb", 64),
    "yolov12n-pst-pose.yaml": ("pose", 128),
    "yolov12n-pst-obb.yaml": ("obb", 128),
}


@pytest.mark.parametrize("name", MODELS)
def test_one_epoch_trains_validates_and_reloads(name, tmp_path, monkeypatch):
    from ultralytics import YOLO

    task, imgsz = MODELS[name]
    monkeypatch.chdir(tmp_path)
    if task == "pose":  # corners of each rectangle as 4 keypoints
        data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=imgsz, nc=1, keypoints=True)
    else:  # the rectangles' corners: the OBB label format
        data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=imgsz, nc=2, polygons=True)
    model = YOLO(name)
    assert model.task == task
    model.train(data=str(data), epochs=1, imgsz=imgsz, batch=4, workers=0, device="cpu", plots=False,
                project=str(tmp_path), name="run", exist_ok=True, verbose=False, amp=False)  # fmt: skip
    trainer = model.trainer
    tloss = trainer.tloss  # mean training loss items (a dict of named items in recent Ultralytics)
    items = tloss.values() if isinstance(tloss, dict) else tloss
    losses = [float(v) for v in (items.tolist() if hasattr(items, "tolist") else items)]
    assert losses and all(math.isfinite(v) for v in losses) and sum(losses) > 0, losses
    metrics = trainer.metrics
    key = "metrics/mAP50(P)" if task == "pose" else "metrics/mAP50(B)"
    assert key in metrics and math.isfinite(metrics[key])
    best = Path(trainer.best)
    reloaded = YOLO(str(best))
    assert reloaded.task == task and reloaded.model.yaml["scale"] == "n"
    head = reloaded.model.model[-1]
    if task == "pose":
        assert list(head.kpt_shape) == [4, 3] and head.nc == 1
    else:
        assert head.nc == 2 and head.ne == 1
    results = reloaded.predict(str(next((tmp_path / "data" / "images" / "val").iterdir())), imgsz=imgsz, verbose=False)
    assert (results[0].keypoints is not None) if task == "pose" else (results[0].obb is not None)
