"""Ultralytics' ``DistillationModel`` with channel-wise distillation (CWD) as its feature loss.

Selected by ``distill_loss=cwd`` (:mod:`ultra_ext.integration.distill` switches the training model's class after
the trainer built it); only the per-level loss differs from the stock class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ultralytics.nn.distill_model import DistillationModel

__all__ = ["ChannelWiseDistillation", "channel_wise_kl"]


def channel_wise_kl(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CWD between (N, C, H, W) feature maps: per (n, c), softmax over H·W at temperature ``tau``;
    ``tau² · Σ p_T (log p_T − log p_S)`` averaged over N·C."""
    n, c = student.shape[:2]
    log_s = F.log_softmax(student.reshape(n * c, -1).float() / tau, dim=1)
    log_t = F.log_softmax(teacher.reshape(n * c, -1).float() / tau, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1).mean() * tau**2


class ChannelWiseDistillation(DistillationModel):
    """The stock teacher/student wrapper; per neck level, ``channel_wise_kl(projected student, teacher, tau)``
    instead of the score-weighted L2 (the teacher's detection scores are not used)."""

    distill_tau: float = 1.0

    def loss_sl2(
        self, student_feat: torch.Tensor, teacher_feat: torch.Tensor, feat_idx: int, teacher_scores: tuple
    ) -> torch.Tensor:
        return channel_wise_kl(student_feat, teacher_feat, self.distill_tau)
