"""``det_loss=goldyolo``: Gold-YOLO's detection loss as an option of the stock trainer (default: Ultralytics' own).

``det_loss`` (``ultralytics`` | ``goldyolo``) is accepted by Ultralytics' arguments (:mod:`.arguments`), so
``yolo train`` and ``model.train()`` take it. For ``goldyolo`` an ``on_pretrain_routine_end`` callback gives the
training model (the student, under ``distill_model=``) and its EMA copy a
:class:`ultra_ext.models.goldyolo_loss.GoldYOLODetectionLoss` as their criterion. Ultralytics builds a criterion
only when a model has none, and strips it from every checkpoint, so nothing else changes and saved files are plain.
Detection models with a one-to-many head only: the loss replaces ``v8DetectionLoss``, not the end-to-end
(YOLO26/YOLOv10) or segment/pose/OBB losses, and any other model is refused with its criterion named.
"""

from __future__ import annotations

from .arguments import value

__all__ = ["DET_LOSSES", "check_det_loss", "install", "uninstall", "use_det_loss"]

DET_LOSSES = ("ultralytics", "goldyolo")


def check_det_loss(args) -> str:
    loss = str(value(args, "det_loss")).lower()
    if loss not in DET_LOSSES:
        raise ValueError(f"det_loss={loss!r}: choose one of {', '.join(DET_LOSSES)} (ultralytics = the default)")
    return loss


def use_det_loss(trainer) -> None:
    """``on_pretrain_routine_end`` callback: install Gold-YOLO's loss when ``det_loss=goldyolo``."""
    if check_det_loss(trainer.args) == "ultralytics":
        return
    from ultralytics.utils import LOGGER
    from ultralytics.utils.loss import v8DetectionLoss
    from ultralytics.utils.torch_utils import unwrap_model

    from ..models.goldyolo_loss import GoldYOLODetectionLoss

    model = unwrap_model(trainer.model)
    model = getattr(model, "student_model", model)  # distillation: the student owns the criterion
    stock = model.init_criterion()
    if type(stock) is not v8DetectionLoss:
        raise ValueError(
            f"det_loss=goldyolo replaces Ultralytics' v8DetectionLoss; this {type(model).__name__} trains with "
            f"{type(stock).__name__} (detection models with a one-to-many head only)"
        )
    model.criterion = GoldYOLODetectionLoss(model)
    ema = getattr(getattr(trainer, "ema", None), "ema", None)
    if ema is not None:  # validation losses during training come from the EMA model
        ema = getattr(ema, "student_model", ema)
        ema.criterion = GoldYOLODetectionLoss(ema)
    a = trainer.args
    LOGGER.info(
        f"det_loss=goldyolo: varifocal class loss, {model.criterion.iou.upper()} box loss, task-aligned assigner "
        f"topk 13 alpha 1.0; gains box={a.box} cls={a.cls} dfl={a.dfl} (Gold-YOLO's: box=2.5 cls=1.0 dfl=0.5)"
    )


def install() -> None:
    """Add the callback to Ultralytics' default callbacks (idempotent)."""
    from ultralytics.utils.callbacks.base import default_callbacks

    if use_det_loss not in default_callbacks["on_pretrain_routine_end"]:
        default_callbacks["on_pretrain_routine_end"].append(use_det_loss)


def uninstall() -> None:
    from ultralytics.utils.callbacks.base import default_callbacks

    if use_det_loss in default_callbacks["on_pretrain_routine_end"]:
        default_callbacks["on_pretrain_routine_end"].remove(use_det_loss)
