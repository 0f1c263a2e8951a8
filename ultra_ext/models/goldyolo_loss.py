"""Gold-YOLO's detection loss as a drop-in for Ultralytics' ``v8DetectionLoss`` (``det_loss=goldyolo``).

Gold-YOLO (Wang et al., NeurIPS 2023; its YOLOv6 training code) differs from Ultralytics in three terms and in the
assigner; the structure (task-aligned assignment, score-weighted box terms normalised by the target-score sum,
distribution focal loss) is the same, so only those pieces are replaced:

- class: varifocal loss (α 0.75, γ 2; :class:`VarifocalBCE`) instead of BCE;
- box IoU: SIoU for N, GIoU for S/M/L (:func:`siou`) instead of CIoU;
- assigner: task-aligned, topk 13, α 1.0, β 6 instead of topk 10, α 0.5, β 6;
- gains: iou 2.5, cls 1.0, dfl 0.5 instead of Ultralytics' box 7.5, cls 0.5, dfl 1.5 (see below).

Not reproduced: the anchor-aided auxiliary branch of Gold-YOLO's first training step (its head has no anchor-based
branch here). Gains stay Ultralytics' ``box``/``cls``/``dfl`` arguments, so the paper's
weighting is ``det_loss=goldyolo box=2.5 cls=1.0 dfl=0.5``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.utils.loss import BboxLoss, v8DetectionLoss
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.tal import TaskAlignedAssigner

__all__ = ["GoldYOLOBboxLoss", "GoldYOLODetectionLoss", "VarifocalBCE", "siou"]

TAL_TOPK, TAL_ALPHA, TAL_BETA = 13, 1.0, 6.0


def siou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """SIoU (Gevorgyan 2022) of (..., 4) xyxy boxes, shape (..., 1): IoU − ½ (distance cost + shape cost).

    The distance cost ``2 − e^{(Λ−2)ρx} − e^{(Λ−2)ρy}`` weighs the centre offset (ρ: squared offset over the
    enclosing box's size) by the angle cost ``Λ = cos(2·arcsin(sin α) − π/2)``, α the offset's angle to the nearer
    axis; the shape cost is ``Σ (1 − e^{−|w1−w2|/max(w1,w2)})⁴`` over width and height. 1 for identical boxes.
    """
    (x1, y1, x2, y2), (u1, v1, u2, v2) = box1.chunk(4, -1), box2.chunk(4, -1)
    w1, h1, w2, h2 = x2 - x1, y2 - y1 + eps, u2 - u1, v2 - v1 + eps
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp_(0) * (torch.min(y2, v2) - torch.max(y1, v1)).clamp_(0)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)

    enclosing_w = torch.max(x2, u2) - torch.min(x1, u1)
    enclosing_h = torch.max(y2, v2) - torch.min(y1, v1)
    dx = (u1 + u2 - x1 - x2) * 0.5 + eps  # centre offset; eps keeps the angle defined for concentric boxes
    dy = (v1 + v2 - y1 - y2) * 0.5 + eps
    dist = torch.sqrt(dx**2 + dy**2)
    sin_x, sin_y = dx.abs() / dist, dy.abs() / dist
    # α is measured from whichever axis is nearer (≤ 45°): past 45° from x, the angle to y is the smaller one
    sin_alpha = torch.where(sin_x > math.sqrt(2) / 2, sin_y, sin_x)
    angle_cost = torch.cos(torch.arcsin(sin_alpha) * 2 - math.pi / 2)
    gamma = angle_cost - 2
    rho_x, rho_y = (dx / (enclosing_w + eps)) ** 2, (dy / (enclosing_h + eps)) ** 2
    distance_cost = 2 - torch.exp(gamma * rho_x) - torch.exp(gamma * rho_y)
    omega_w = (w1 - w2).abs() / torch.max(w1, w2).clamp(min=eps)
    omega_h = (h1 - h2).abs() / torch.max(h1, h2)
    shape_cost = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return iou - 0.5 * (distance_cost + shape_cost)


class VarifocalBCE(nn.Module):
    """Element-wise varifocal loss, in the place ``v8DetectionLoss`` calls its ``bce`` (so class weights apply).

    ``forward(logits, target_scores)``, both (B, anchors, nc), returns (B, anchors, nc):
    ``BCE(σ(logit), q) · w`` with ``w = q`` where the anchor is a positive of that class (q > 0, the IoU-aware
    target score) and ``w = α σ(logit)^γ`` elsewhere: easy negatives are down-weighted, positives weighted by
    their localisation quality. Positives are the non-zero target scores (Gold-YOLO uses the assigned labels; a
    positive with a target score of exactly 0 would differ, which the task-aligned assigner does not produce).
    """

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
        logits, q = logits.float(), target_scores.float()  # fp32 like the stock VFL: p^γ underflows in fp16
        positive = (q > 0).float()
        weight = self.alpha * logits.sigmoid().pow(self.gamma) * (1 - positive) + q * positive
        return F.binary_cross_entropy_with_logits(logits, q, reduction="none") * weight


class GoldYOLOBboxLoss(BboxLoss):
    """``BboxLoss`` with SIoU or GIoU for the IoU term; the DFL (or L1) term is the stock one."""

    def __init__(self, reg_max: int = 16, iou: str = "giou"):
        super().__init__(reg_max)
        if iou not in ("siou", "giou"):
            raise ValueError(f"Gold-YOLO box loss: iou={iou!r}, choose siou (N) or giou (S/M/L)")
        self.iou = iou

    def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum,
                fg_mask, imgsz, stride):  # fmt: skip
        # the stock call computes the DFL/L1 term exactly as Ultralytics does; its CIoU term is replaced below
        _, loss_dfl = super().forward(pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores,
                                      target_scores_sum, fg_mask, imgsz, stride)  # fmt: skip
        fg = fg_mask.nonzero(as_tuple=True)
        weight = target_scores[fg].sum(-1, keepdim=True)
        pred, target = pred_bboxes[fg], target_bboxes[fg]
        iou = siou(pred, target) if self.iou == "siou" else bbox_iou(pred, target, xywh=False, GIoU=True)
        return ((1.0 - iou) * weight).sum() / target_scores_sum, loss_dfl


class GoldYOLODetectionLoss(v8DetectionLoss):
    """``v8DetectionLoss`` with Gold-YOLO's class loss, IoU and assigner (module docstring).

    Args:
        model: the (unwrapped) detection model, as for the stock loss.
        iou: ``"siou"`` or ``"giou"``; default by the model's scale as in Gold-YOLO's configs (SIoU for N).
    """

    def __init__(self, model: nn.Module, iou: str | None = None):
        super().__init__(model, tal_topk=TAL_TOPK)
        if iou is None:
            iou = "siou" if (getattr(model, "yaml", None) or {}).get("scale") == "n" else "giou"
        self.assigner = TaskAlignedAssigner(
            topk=TAL_TOPK, num_classes=self.nc, alpha=TAL_ALPHA, beta=TAL_BETA, stride=self.stride.tolist()
        )
        self.bce = VarifocalBCE()
        self.bbox_loss = GoldYOLOBboxLoss(self.reg_max, iou).to(self.device)
        self.iou = iou
