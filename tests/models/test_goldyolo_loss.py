"""Gold-YOLO's detection loss (``det_loss=goldyolo``): SIoU, the varifocal class term, the assigner, and that the
whole loss trains a detector. Reference values are worked by hand from the formulas in the module docstring."""

from __future__ import annotations

import math

import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.utils.metrics import bbox_iou

from ultra_ext.models.goldyolo_loss import GoldYOLODetectionLoss, VarifocalBCE, siou


def test_siou_of_a_horizontal_offset_by_hand():
    """(0,0,2,2) vs (1,0,3,2): IoU 1/3; the offset lies on the x axis, so the angle cost is cos(−π/2) = 0 and
    γ = −2; ρx = (1/3)², ρy = 0 → distance cost 1 − e^{−2/9}; equal sizes → no shape cost."""
    a, b = torch.tensor([0.0, 0, 2, 2]), torch.tensor([1.0, 0, 3, 2])
    assert siou(a, b).item() == pytest.approx(1 / 3 - 0.5 * (1 - math.exp(-2 / 9)), abs=1e-6)


def test_siou_of_a_diagonal_offset_and_a_shape_change_by_hand():
    """(0,0,2,2) vs (1,1,4,4): IoU 1/12; 45° offset (1.5, 1.5) → angle cost cos(π/2 − π/2) = 1, γ = −1,
    ρx = ρy = (1.5/4)²; widths 2 vs 3 → ω = 1/3 on both axes."""
    a, b = torch.tensor([0.0, 0, 2, 2]), torch.tensor([1.0, 1, 4, 4])
    rho = (1.5 / 4) ** 2
    distance = 2 - 2 * math.exp(-1 * rho)
    shape = 2 * (1 - math.exp(-1 / 3)) ** 4
    assert siou(a, b).item() == pytest.approx(1 / 12 - 0.5 * (distance + shape), abs=1e-5)


def test_siou_is_one_for_equal_boxes_scale_invariant_and_below_iou():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=g) * 10
    a = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=g) * 5], 1)
    b = a + torch.randn(64, 4, generator=g) * 0.5
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 0.1)
    assert torch.allclose(siou(a, a), torch.ones(64, 1), atol=1e-5)
    assert torch.allclose(siou(a * 7, b * 7), siou(a, b), atol=1e-5)
    assert (siou(a, b) <= bbox_iou(a, b, xywh=False) + 1e-6).all()


def test_varifocal_weights_by_hand():
    """Negative (q = 0): BCE · α p^γ; positive: BCE · q."""
    logits = torch.tensor([[[0.0, 2.0]]])
    q = torch.tensor([[[0.0, 0.6]]])
    p = torch.sigmoid(torch.tensor(2.0)).item()
    expected_neg = math.log(2) * 0.75 * 0.5**2  # BCE(0.5, 0) = ln 2
    expected_pos = -(0.6 * math.log(p) + 0.4 * math.log(1 - p)) * 0.6
    out = VarifocalBCE()(logits, q)
    assert out.shape == (1, 1, 2)
    assert out[0, 0].tolist() == pytest.approx([expected_neg, expected_pos], rel=1e-5)


def _model(yaml: str):
    torch.manual_seed(0)
    model = YOLO(yaml, verbose=False).model
    model.args = get_cfg(overrides={"imgsz": 128, "box": 2.5, "cls": 1.0, "dfl": 0.5})
    return model.train()


BATCH = {
    "img": torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)),
    "batch_idx": torch.tensor([0.0, 1.0, 1.0]),
    "cls": torch.tensor([[0.0], [1.0], [2.0]]),
    "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.3, 0.4, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]]),
}


@pytest.mark.parametrize(("yaml", "iou"), [("goldyolo-n.yaml", "siou"), ("goldyolo-s.yaml", "giou")])
def test_scale_picks_the_iou_and_the_assigner_is_golds(yaml, iou):
    loss = GoldYOLODetectionLoss(_model(yaml))
    assert loss.iou == iou and loss.bbox_loss.iou == iou
    assert (loss.assigner.topk, loss.assigner.alpha, loss.assigner.beta) == (13, 1.0, 6.0)
    assert isinstance(loss.bce, VarifocalBCE)


def test_differs_from_the_stock_loss_only_in_class_and_box_terms():
    model = _model("goldyolo-s.yaml")  # DFL on (reg_max 16): the DFL term must be the stock one
    preds = model(BATCH["img"])
    _, stock = model.init_criterion()(preds, BATCH)
    _, ours = GoldYOLODetectionLoss(model)(preds, BATCH)
    assert set(ours) == {"box_loss", "cls_loss", "dfl_loss"}
    assert abs(ours["cls_loss"] - stock["cls_loss"]) > 0.1  # VFL ≠ BCE
    assert abs(ours["box_loss"] - stock["box_loss"]) > 1e-3  # GIoU ≠ CIoU (and another assignment)


def test_stock_dfl_term_under_the_same_assignment():
    """With the stock assigner swapped in, the DFL term equals Ultralytics' to the last digit."""
    model = _model("goldyolo-s.yaml")
    preds = model(BATCH["img"])
    stock_loss = model.init_criterion()
    ours = GoldYOLODetectionLoss(model)
    ours.assigner = stock_loss.assigner
    assert ours(preds, BATCH)[1]["dfl_loss"].item() == stock_loss(preds, BATCH)[1]["dfl_loss"].item()


def test_the_loss_trains_a_detector():
    model = _model("goldyolo-n.yaml")
    model.criterion = GoldYOLODetectionLoss(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        loss, _ = model.loss(BATCH)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        history.append(loss.sum().item())
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < 0.5 * history[0], history  # measured: 6.5 → 1.9
