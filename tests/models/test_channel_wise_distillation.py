"""Channel-wise distillation (CWD): the loss formula, and that ``ChannelWiseDistillation`` changes only the per-level
feature loss of Ultralytics' ``DistillationModel``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.nn.distill_model import DistillationModel

from ultra_ext.models.distillation import ChannelWiseDistillation, channel_wise_kl


def _cwd_model(student_yaml: str, teacher_yaml: str, tau: float) -> ChannelWiseDistillation:
    """The stock wrapper built as the trainer builds it, then given the CWD class (what distill_loss=cwd does)."""
    torch.manual_seed(0)
    student, teacher = YOLO(student_yaml, verbose=False).model, YOLO(teacher_yaml, verbose=False).model
    student.args = get_cfg(overrides={"imgsz": 64})
    model = DistillationModel(teacher, student)
    model.__class__, model.distill_tau = ChannelWiseDistillation, tau
    model.student_model.loss = lambda batch, preds: (torch.zeros(3), {})  # the distillation term alone
    return model.train()


def _batch() -> dict:
    return {
        "img": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.3, 0.4, 0.2, 0.2]]),
    }


def test_channel_wise_kl_is_the_spatial_softmax_kl_times_tau_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g)
    tau = 2.0
    p_t = F.softmax(t.reshape(6, 20) / tau, dim=1)
    expected = (p_t * (p_t.log() - F.log_softmax(s.reshape(6, 20) / tau, dim=1))).sum() / 6 * tau**2
    assert channel_wise_kl(s, t, tau).item() == pytest.approx(expected.item(), rel=1e-6)
    assert channel_wise_kl(s, t, tau).item() > 0.01
    assert channel_wise_kl(t, t, tau).item() == pytest.approx(0.0, abs=1e-6)
    # a per-channel offset does not change a spatial softmax: only where a channel fires matters
    assert channel_wise_kl(t + torch.randn(2, 3, 1, 1, generator=g), t, tau).item() == pytest.approx(0.0, abs=1e-5)
    assert channel_wise_kl(t.flip(-1), t, tau).item() > 0.01  # moving the activations is penalised


def test_cwd_replaces_only_the_per_level_loss():
    """Same teacher, student and batch: the CWD model's distillation term is the sum over levels of
    channel_wise_kl(projected student, teacher) times ``dis``; the stock model's differs."""
    model = _cwd_model("yolov12n.yaml", "goldyolo-n.yaml", tau=2.0)
    batch = _batch()
    _, items = model.loss(batch)
    with torch.no_grad():
        expected = sum(
            channel_wise_kl(model.projector[i](model._student_feats[i]), model._teacher_feats[i], 2.0)
            for i in range(3)
        )
    assert items["dis_loss"].item() == pytest.approx(expected.item() * model.dis, rel=1e-5)
    model.__class__ = DistillationModel
    _, stock_items = model.loss(batch)
    assert abs(stock_items["dis_loss"].item() - items["dis_loss"].item()) > 1e-3
