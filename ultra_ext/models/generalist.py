"""The ``generalist`` task: Generalist YOLO's joint detection + instance + semantic segmentation model.

Built from Ultralytics' own pieces: the segmentation dataset (polygons → instance masks and, for free, the
per-pixel class map ``sem_masks`` of the same augmented image), the segmentation loss inside ``E2ELoss``, the
segmentation trainer, validator and predictor. Added here: GYOLO's semantic loss (sigmoid focal + Dice on
independent per-class maps), the semantic targets, mIoU next to box and mask mAP, and the semantic map in
``Results``.

**Semantic targets** come from the instance polygons: a pixel takes the class of the (smallest) instance covering
it, or *background* (index ``nc``) when none does. So the head predicts ``nc + 1`` maps (``sem_nc = 1``); stuff
classes need a dataset with separate semantic masks, which this task does not read (see docs/generalist.md).
"""

from __future__ import annotations

import contextlib
from copy import copy

import torch
import torch.nn.functional as F
from ultralytics.engine.results import SemanticMask
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.segment import SegmentationPredictor, SegmentationTrainer, SegmentationValidator
from ultralytics.nn.tasks import SegmentationModel
from ultralytics.utils import DEFAULT_CFG, RANK, ops
from ultralytics.utils.loss import E2ELoss, v8SegmentationLoss
from ultralytics.utils.metrics import SegmentMetrics, SemanticMetrics

from ..nn.generalist import TASK, GeneralistHead

__all__ = [
    "GeneralistLoss",
    "GeneralistMetrics",
    "GeneralistModel",
    "GeneralistPredictor",
    "GeneralistTrainer",
    "GeneralistValidator",
    "SemanticFocalDiceLoss",
    "semantic_targets",
]

BACKGROUND_ID = 255  # predicted "no object" pixels in Results.semantic_mask (Ultralytics' ignore id)



def semantic_targets(batch: dict, nc: int, overlap: bool) -> torch.Tensor:
    """Per-pixel class ids ``(B, H/r, W/r)`` (r = mask_ratio): the covering instance's class, else ``nc``.

    ``batch["sem_masks"]`` (Ultralytics' Format) holds the class of the smallest covering instance but 0 where
    nothing covers a pixel, the same as class 0; instance coverage from ``batch["masks"]`` tells them apart.
    """
    masks, cls_map = batch["masks"], batch["sem_masks"].to(batch["masks"].device)
    if overlap:  # (B, H, W): 0 = no instance, i = the image's i-th instance
        covered = masks != 0
    else:  # (N_instances, H, W) in batch order
        coverage = torch.zeros(cls_map.shape, device=masks.device)
        covered = coverage.index_add_(0, batch["batch_idx"].long().to(masks.device), masks.float()) > 0
    return torch.where(covered, cls_map.long(), nc)


class SemanticFocalDiceLoss:
    """GYOLO's semantic loss on independent (sigmoid) per-class maps.

    ``FOCAL_GAIN · 10 · focal + DICE_GAIN · dice / 2``: sigmoid focal loss (α 0.25, γ 2) averaged over every pixel
    and channel, and one Dice over the channel-softmax computed globally over the batch and all channels (the
    published ``/2 × 20`` and ``/2`` factors, gains 2.5 and 2.5).

    Args:
        n_maps: logit channels (``nc + sem_nc``).
    Call: ``(logits (B, n_maps, h, w), target ids (B, H, W))`` → scalar; logits are resized to the target if needed.
    """

    FOCAL_GAIN = 2.5
    DICE_GAIN = 2.5

    def __init__(self, n_maps: int):
        self.n_maps = n_maps

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, target.shape[-2:], mode="bilinear", align_corners=False)
        onehot = F.one_hot(target, self.n_maps).permute(0, 3, 1, 2).to(logits.dtype)
        from torchvision.ops import sigmoid_focal_loss  # here, not at import: torchvision.ops costs seconds to import

        focal = sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2.0, reduction="mean")
        prob = logits.softmax(1)
        dice = 1 - (2 * (prob * onehot).sum() + 1) / (prob.sum() + onehot.sum() + 1)
        return self.FOCAL_GAIN * focal * 10 + self.DICE_GAIN * dice / 2


class GeneralistLoss:
    """Detection + instance-mask loss (Ultralytics' ``v8SegmentationLoss``, in ``E2ELoss`` for the one-to-one head)
    plus :class:`SemanticFocalDiceLoss`, summed; the semantic term fills the stock ``sem_loss`` slot.

    Returns ``(loss (5,) × batch size, {"box_loss", "seg_loss", "cls_loss", "dfl_loss", "sem_loss"})``.
    """

    def __init__(self, model: GeneralistModel):
        head = model.model[-1]
        if head.sem_nc != 1:
            raise ValueError(
                f"{type(head).__name__}: semantic targets derived from instance polygons have nc + 1 classes "
                f"(things + background), so sem_nc must be 1; got sem_nc={head.sem_nc}"
            )
        e2e = getattr(head, "one2one_cv2", None) is not None
        self.instance = E2ELoss(model, v8SegmentationLoss) if e2e else v8SegmentationLoss(model)
        self.semantic = SemanticFocalDiceLoss(head.nc + head.sem_nc)
        self.nc, self.overlap = head.nc, model.args.overlap_mask

    def update(self) -> None:
        """Advance the one-to-many → one-to-one weight schedule (called by the trainer each epoch)."""
        if hasattr(self.instance, "update"):
            self.instance.update()

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        preds = preds[1] if isinstance(preds, tuple) else preds
        loss, items = self.instance(preds, batch)
        logits = preds["semantic"]
        semantic = self.semantic(logits, semantic_targets(batch, self.nc, self.overlap).to(logits.device))
        loss = torch.cat((loss[:4], (semantic * logits.shape[0])[None]))
        return loss, {**items, "sem_loss": semantic.detach()}


class GeneralistModel(SegmentationModel):
    """A ``SegmentationModel`` whose head is :class:`GeneralistHead` and whose criterion is :class:`GeneralistLoss`."""

    def __init__(self, cfg="gyolo-generalist-n.yaml", ch=3, nc=None, verbose=True):
        super().__init__(cfg=cfg, ch=ch, nc=nc, verbose=verbose)
        if not isinstance(self.model[-1], GeneralistHead):
            raise TypeError(
                f"task '{TASK}' needs a model whose last layer is GeneralistHead, got {type(self.model[-1]).__name__}"
            )

    def init_criterion(self):
        return GeneralistLoss(self)


@contextlib.contextmanager
def _segment_dataset(args):
    """Ultralytics datasets read polygons only for task 'segment': build ours under that name."""
    task, args.task = args.task, "segment"
    try:
        yield
    finally:
        args.task = task


class GeneralistTrainer(SegmentationTrainer):
    """The segmentation trainer with :class:`GeneralistModel`, the segmentation dataset and our validator."""

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        # SegmentationTrainer.__init__ only forces task="segment" (run folder, logs, checkpoint args): skip it
        DetectionTrainer.__init__(self, cfg, {**(overrides or {}), "task": TASK}, _callbacks)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        with _segment_dataset(self.args):
            return super().build_dataset(img_path, mode, batch)

    def _build_train_pipeline(self):
        with _segment_dataset(self.args):  # the stock detection-task steps (max_det from the data) apply too
            super()._build_train_pipeline()

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        model = GeneralistModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1)
        model = self.set_model_names_for_load(model)
        if weights:
            model.load(weights)
        return model

    def get_validator(self):
        return GeneralistValidator(
            self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks
        )


class GeneralistMetrics(SegmentMetrics):
    """Box and mask metrics (``SegmentMetrics``) plus semantic mIoU over the things and background.

    ``fitness`` adds mIoU to the box and mask fitness: all three tasks count when choosing ``best.pt``.
    """

    def __init__(self, names: dict[int, str] | None = None) -> None:
        super().__init__(names)
        self.semantic = SemanticMetrics(names={**(names or {}), len(names or {}): "background"})

    @property
    def keys(self) -> list[str]:
        return [*super().keys, "metrics/mIoU(S)"]

    def mean_results(self) -> list[float]:
        return [*super().mean_results(), self.semantic.miou]

    def class_result(self, i: int) -> list[float]:
        return [*super().class_result(i), float(self.semantic.per_class_iou[self.ap_class_index[i]])]

    @property
    def fitness(self) -> float:
        return super().fitness + self.semantic.miou

    def process(self, *args, **kwargs):
        stats = super().process(*args, **kwargs)
        self.semantic.process()
        return stats

    def clear_stats(self) -> None:
        super().clear_stats()
        self.semantic.clear_stats()


class GeneralistValidator(SegmentationValidator):
    """Box mAP, mask mAP (stock segmentation validation) and semantic mIoU at the mask resolution."""

    def __init__(self, dataloader=None, save_dir=None, args=None, _callbacks=None) -> None:
        super().__init__(dataloader, save_dir, args, _callbacks)
        self.args.task = TASK
        self.metrics = GeneralistMetrics()

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        with _segment_dataset(self.args):
            return super().build_dataset(img_path, mode, batch)

    def init_metrics(self, model) -> None:
        super().init_metrics(model)
        self.metrics.semantic = SemanticMetrics(names={**self.names, len(self.names): "background"})

    def get_desc(self) -> str:
        return super().get_desc() + f"{'mIoU(S)':>11}"

    def postprocess(self, preds):
        """Keep the semantic logits ``(B, nc + 1, h, w)`` aside, then the stock segmentation postprocess."""
        outputs = preds[0] if isinstance(preds[0], tuple) else preds  # PyTorch: ((det, proto, sem), raw)
        self._semantic = outputs[2]
        return super().postprocess(preds)

    def update_metrics(self, preds, batch) -> None:
        super().update_metrics(preds, batch)
        target = semantic_targets(batch, self.nc, self.args.overlap_mask).to(self._semantic.device)
        logits = self._semantic.float()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, target.shape[-2:], mode="bilinear", align_corners=False)
        self.metrics.semantic.update_stats(logits.argmax(1), target)


class GeneralistPredictor(SegmentationPredictor):
    """Boxes and instance masks (stock) plus ``Results.semantic_mask``: the per-pixel class, 255 for background."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None):
        super().__init__(cfg, overrides, _callbacks)
        self.args.task = TASK

    def postprocess(self, preds, img, orig_imgs):
        outputs = preds[0] if isinstance(preds[0], tuple) else preds
        semantic = outputs[2]
        results = super().postprocess(preds, img, orig_imgs)
        nc = semantic.shape[1] - 1
        for result, logits in zip(results, semantic):
            logits = F.interpolate(logits[None].float(), img.shape[2:], mode="bilinear", align_corners=False)
            class_map = ops.scale_masks(logits, result.orig_shape)[0].argmax(0)
            class_map[class_map == nc] = BACKGROUND_ID
            result.semantic_mask = SemanticMask(
                class_map.to(torch.uint8 if nc < BACKGROUND_ID else torch.int32), result.orig_shape
            )
        return results
