"""``det_loss=goldyolo`` through the stock trainer: the argument, the callback that installs the criterion (also on
the EMA model and on a distillation student), what it refuses, and one CLI run. About 20 s."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.nn.distill_model import DistillationModel

import ultra_ext
from ultra_ext.integration import losses
from ultra_ext.models.goldyolo_loss import GoldYOLODetectionLoss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import describe, make_tiny_dataset, run  # noqa: E402


def _model(yaml: str, imgsz: int = 64):
    model = YOLO(yaml, verbose=False).model
    model.args = get_cfg(overrides={"imgsz": imgsz, "det_loss": "goldyolo"})
    return model


def _trainer(model, ema=None, det_loss: str = "goldyolo"):
    args = get_cfg(overrides={"det_loss": det_loss})
    return SimpleNamespace(args=args, model=model, ema=SimpleNamespace(ema=ema) if ema is not None else None)


def test_the_argument_is_accepted_but_not_injected():
    assert get_cfg(overrides={"det_loss": "goldyolo"}).det_loss == "goldyolo"
    assert "det_loss" not in vars(get_cfg())  # not written into runs (and checkpoints) that do not use it
    assert losses.check_det_loss(get_cfg()) == "ultralytics"


def test_a_misspelt_stock_argument_is_still_refused():
    with pytest.raises(SyntaxError, match="'det_los' is not a valid YOLO argument"):
        get_cfg(overrides={"det_los": "goldyolo"})


def test_callback_gives_model_and_ema_the_gold_yolo_criterion():
    model, ema = _model("goldyolo-n.yaml"), _model("goldyolo-n.yaml")
    losses.use_det_loss(_trainer(model, ema))
    assert isinstance(model.criterion, GoldYOLODetectionLoss) and model.criterion.iou == "siou"
    assert isinstance(ema.criterion, GoldYOLODetectionLoss)


def test_default_leaves_the_stock_criterion():
    model = _model("goldyolo-n.yaml")
    losses.use_det_loss(_trainer(model, det_loss="ultralytics"))
    assert getattr(model, "criterion", None) is None  # Ultralytics builds its own on the first batch


def test_distillation_student_gets_the_criterion():
    student, teacher = _model("yolov12n.yaml"), _model("goldyolo-n.yaml")
    wrapper = DistillationModel(teacher, student)
    losses.use_det_loss(_trainer(wrapper))
    assert isinstance(student.criterion, GoldYOLODetectionLoss)
    assert getattr(teacher, "criterion", None) is None


@pytest.mark.parametrize(
    ("yaml", "criterion"),
    [("yolo11n-seg.yaml", "v8SegmentationLoss"), ("yolo26n.yaml", "E2ELoss"), ("yolov12n-cls.yaml", "v8ClassificationLoss")],
)
def test_other_losses_are_refused_by_name(yaml, criterion):
    model = _model(yaml)
    with pytest.raises(ValueError, match=f"det_loss=goldyolo replaces .*trains with {criterion}"):
        losses.use_det_loss(_trainer(model))


def test_a_bad_value_is_named():
    with pytest.raises(ValueError, match="det_loss='vfl': choose one of ultralytics, goldyolo"):
        losses.check_det_loss(SimpleNamespace(det_loss="vfl"))


def test_deactivate_removes_the_argument():
    from ultralytics.utils.callbacks.base import default_callbacks

    try:
        ultra_ext.deactivate()
        with pytest.raises(SyntaxError, match="'det_loss' is not a valid YOLO argument"):
            get_cfg(overrides={"det_loss": "goldyolo"})
        assert losses.use_det_loss not in default_callbacks["on_pretrain_routine_end"]
    finally:
        ultra_ext.activate()
    assert get_cfg(overrides={"det_loss": "goldyolo"}).det_loss == "goldyolo"
    assert default_callbacks["on_pretrain_routine_end"].count(losses.use_det_loss) == 1


def test_stock_cli_trains_with_gold_yolo_loss(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=64, nc=2)
    cmd = ["yolo", "train", "model=goldyolo-n.yaml", "det_loss=goldyolo", "box=2.5", "cls=1.0", "dfl=0.5",
           f"data={data}", "epochs=2", "imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False",
           f"project={tmp_path / 'runs'}", "name=gold", "seed=0"]  # fmt: skip
    proc = run(cmd, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, describe(proc)
    log = proc.stdout + proc.stderr
    assert "det_loss=goldyolo: varifocal class loss, SIOU box loss" in log and "box=2.5 cls=1.0 dfl=0.5" in log
    with open(tmp_path / "runs" / "gold" / "results.csv") as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    assert len(rows) == 2
    for key in ("train/box_loss", "train/cls_loss", "val/box_loss", "val/cls_loss"):
        assert all(math.isfinite(r[key]) and r[key] > 0 for r in rows), (key, rows)
    ckpt = torch.load(tmp_path / "runs" / "gold" / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert getattr(ckpt["model"], "criterion", None) is None  # a plain checkpoint: the loss is not saved
    # Ultralytics strips a finished run's files to its own argument names: nothing of ours is left to need ultra_ext
    assert ckpt["train_args"]["epochs"] == 2 and not {"det_loss", "distill_loss"} & set(ckpt["train_args"])
