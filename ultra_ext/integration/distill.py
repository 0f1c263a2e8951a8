"""Channel-wise distillation (CWD) as an option of Ultralytics' own knowledge distillation.

Ultralytics (``distill_model=teacher.pt dis=6.0``) distils the features that feed the Detect head with a
score-weighted L2 (``DistillationModel.loss_sl2``), and every ultra_ext family works with it unchanged, as student
and as teacher (their heads are ``Detect`` subclasses, so ``get_distill_layers`` finds the neck outputs). What it
cannot express is Gold-YOLO's feature loss, CWD (Shu et al., ICCV 2021): per channel, a softmax over the spatial
positions at temperature τ, and KL(teacher ‖ student) between the two distributions, times τ².

One fix, for heads with inputs that are not detection levels (Generalist YOLO's segment and joint heads also take
the stride-4 mask/semantic features): the stock ``get_distill_layers`` returns every head input, so the teacher's
scores (one per anchor of the detection levels) no longer split over the "levels" and a detect teacher cannot pair
with such a student. :func:`detection_levels` returns the first ``nl`` inputs (``Detect.nl``: the detection levels;
for every stock head they are all of ``f``), and :func:`install` puts it in place of the stock static method.

Two arguments are accepted by Ultralytics' configuration (``distill_loss``, ``distill_tau``; :mod:`.arguments`), so
the stock CLI and ``model.train()`` take them::

    yolo train model=goldyolo-n.yaml distill_model=goldyolo-n-teacher.pt distill_loss=cwd distill_tau=1.0 data=...

With ``distill_loss=cwd``, an ``on_pretrain_routine_end`` callback (after the trainer has wrapped the student)
turns the training model into :class:`ultra_ext.models.distillation.ChannelWiseDistillation`: the stock class
with ``loss_sl2`` replaced, nothing else. The EMA copy, made before, keeps the stock class, and Ultralytics saves
only its student, so checkpoints are plain students. The default stays the stock loss.
"""

from __future__ import annotations

import torch

from .arguments import value

__all__ = ["check_args", "detection_levels", "install", "uninstall", "use_distill_loss"]

LOSSES = ("sl2", "cwd")  # sl2 = Ultralytics' score-weighted L2; cwd = channel-wise
_saved: dict = {}


def detection_levels(model: torch.nn.Module) -> list[int]:
    """The layers whose outputs feed the first ``Detect`` head's detection levels, then the head's own index
    (``[*head.f[:head.nl], head.i]``); what ``DistillationModel.get_distill_layers`` returns for stock heads."""
    from ultralytics.nn.modules.head import Detect

    for m in model.model:
        if isinstance(m, Detect):
            sources = [m.f] if isinstance(m.f, int) else list(m.f)
            return [*sources[: m.nl], m.i]
    raise ValueError(
        "No Detect head found in model: Ultralytics' distillation (distill_model=) distils the features feeding a "
        "detection head; semantic-only and classification models have none"
    )


def check_args(args) -> tuple[str, float]:
    """(loss, tau) from trainer args, with a clear error for a bad value."""
    loss = str(value(args, "distill_loss")).lower()
    if loss not in LOSSES:
        raise ValueError(f"distill_loss={loss!r}: choose one of {', '.join(LOSSES)} (sl2 = Ultralytics' default)")
    tau = float(value(args, "distill_tau"))
    if not tau > 0:
        raise ValueError(f"distill_tau={tau}: must be > 0")
    return loss, tau


def use_distill_loss(trainer) -> None:
    """``on_pretrain_routine_end`` callback: switch the training model to CWD when ``distill_loss=cwd``."""
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.utils.torch_utils import unwrap_model

    loss, tau = check_args(trainer.args)
    model = unwrap_model(trainer.model)
    if not isinstance(model, DistillationModel):
        if loss != "sl2":
            raise ValueError(f"distill_loss={loss} needs distill_model=<teacher checkpoint>")
        return
    if loss == "cwd":
        from ..models.distillation import ChannelWiseDistillation  # loaded on use: subclasses a trainer-time class

        model.__class__ = ChannelWiseDistillation
        model.distill_tau = tau
        from ultralytics.utils import LOGGER

        LOGGER.info(f"distillation: channel-wise KL (CWD, tau={tau}) on {len(model.feats_idx) - 1} neck levels")


def install() -> None:
    """Put :func:`detection_levels` in place of the stock layer choice and add the callback (idempotent)."""
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.utils.callbacks.base import default_callbacks

    if "get_distill_layers" not in _saved:
        _saved["get_distill_layers"] = DistillationModel.__dict__["get_distill_layers"]
        DistillationModel.get_distill_layers = staticmethod(detection_levels)
    if use_distill_loss not in default_callbacks["on_pretrain_routine_end"]:
        default_callbacks["on_pretrain_routine_end"].append(use_distill_loss)


def uninstall() -> None:
    from ultralytics.utils.callbacks.base import default_callbacks

    if "get_distill_layers" in _saved:
        from ultralytics.nn.distill_model import DistillationModel

        DistillationModel.get_distill_layers = _saved.pop("get_distill_layers")
    if use_distill_loss in default_callbacks["on_pretrain_routine_end"]:
        default_callbacks["on_pretrain_routine_end"].remove(use_distill_loss)
