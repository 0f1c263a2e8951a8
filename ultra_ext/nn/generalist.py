"""Generalist YOLO (GYOLO, WACV 2025): one GELAN encoder serving detection, instance and semantic segmentation.

The encoder is YOLOv9's GELAN-C (Ultralytics' ``RepNCSPELAN4``, ``ADown``, ``SPPELAN``, YOLOv10's ``PSA``) with two
additions, both here:

* :class:`RepNCSPELAN4B` — the neck's P3-P5 blocks: half of the output channels are computed from a *detached*
  trunk, so whatever consumes that half sends no gradient into the encoder through it (the published "gradient
  channel masking");
* stride-4 dense branches (GELAN block → ×2 upsample → depthwise 3×3 → 1×1, plain YAML rows of stock modules)
  feeding the semantic logits and the instance-mask prototypes.

Heads, all subclasses of the stock heads so that Ultralytics' strides, bias init, losses, NMS-free decoding,
validators and exporters apply:

* :class:`GeneralistDetect` — the published box/class branch widths (box branch in groups of 4), with the
  one-to-many training head plus the detached one-to-one NMS-free head (YAML ``end2end: True``);
* :class:`GeneralistSegment` — adds mask coefficients and 1×1 prototypes on an external stride-4 feature;
* :class:`GeneralistSemanticSegment` — a 1×1 classifier on the stride-4 semantic feature (stock semantic task);
* :class:`GeneralistHead` — the joint head: boxes, mask coefficients, prototypes and independent per-class
  semantic maps in one pass (the ``generalist`` task, :mod:`ultra_ext.models.generalist`).

Stock ``parse_model`` width-scales only a block's output channels; :class:`ScaledRepNCSPELAN4` and
:class:`ScaledSPPELAN` also scale the hidden widths (and GELAN depth), so one YAML serves scales n-x.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules.block import SPPELAN, RepNCSPELAN4
from ultralytics.nn.modules.conv import Conv, DWConv
from ultralytics.nn.modules.head import Detect, Segment, SemanticSegment

from .checks import AT_LEAST_ONE, ODD_KERNEL, check_channel_list, check_int, check_odd_kernel

__all__ = [
    "TASK",
    "GeneralistDetect",
    "GeneralistHead",
    "GeneralistSegment",
    "GeneralistSemanticSegment",
    "RepNCSPELAN4B",
    "ScaledRepNCSPELAN4",
    "ScaledSPPELAN",
]

TASK = "generalist"
"""The Ultralytics task of a model whose last layer is :class:`GeneralistHead` (its pipeline:
:mod:`ultra_ext.models.generalist`; its registration with Ultralytics: :mod:`ultra_ext.integration.generalist_task`)."""


def _check_elan_args(owner: str, c1, c2, c3, c4, n) -> None:
    """GELAN widths that build a working block: the stock one accepts odd ``c3`` (its ``forward_split`` then fails)
    and ``c4 = 1`` (zero-channel RepCSP convs)."""
    for name, v in (("c1", c1), ("c2", c2), ("n", n)):
        check_int(owner, name, v)
    check_int(owner, "c3", c3, minimum=2)
    if c3 % 2:
        raise ValueError(f"{owner} c3 must be even (cv1's output is split into two halves), got c3={c3}")
    check_int(owner, "c4", c4, minimum=2)  # RepCSP hidden width c4 // 2


# --- encoder blocks ------------------------------------------------------------------------------------------


class ScaledRepNCSPELAN4(RepNCSPELAN4):
    """Ultralytics' ``RepNCSPELAN4`` (GELAN) whose hidden widths ``c3``, ``c4`` and depth ``n`` follow the scale.

    YAML ``[from, 1, ScaledRepNCSPELAN4, [c2, c3, c4, n]]``: all three widths are width-scaled (stock formula),
    ``n`` (RepCSP bottlenecks per stage) is depth-scaled with a minimum of 1. Shapes: ``(B, c1, H, W)`` →
    ``(B, c2, H, W)``.

    Direct calls: ``c3`` even (``cv1``'s output is split into two halves), ``c4 >= 2`` (each RepCSP's hidden width
    is ``c4 // 2``), ``n >= 1``; parsed YAML rows always are (widths are multiples of 8).
    """

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 1):
        _check_elan_args(type(self).__name__, c1, c2, c3, c4, n)
        super().__init__(c1, c2, c3, c4, n)

    @classmethod
    def _scaled_args(cls, ctx) -> list:
        ctx.check_arity(4, "[c2, c3, c4, n]")
        if ctx.yaml_repeats != 1:  # checked as written: depth scaling would turn 2 into 1 at scale n
            raise ctx.error(f"repeats must be 1 (the block's depth is its 4th argument n), got {ctx.yaml_repeats!r}")
        c1 = ctx.c_in_single()
        c2, c3, c4 = (
            ctx.width(ctx.arg(k, what, int, check=AT_LEAST_ONE)) for k, what in enumerate(("c2", "c3", "c4"))
        )
        n = ctx.arg(3, "n", int, default=1, check=AT_LEAST_ONE)
        return [c1, c2, c3, c4, max(round(n * ctx.depth), 1)]

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        args = cls._scaled_args(ctx)
        return {"args": args, "c2": args[1], "n": 1}


class RepNCSPELAN4B(ScaledRepNCSPELAN4):
    """GELAN block whose second half of output channels is computed from the detached trunk (GYOLO's P3-P5).

    The GELAN body gives ``y`` (``c3 + 2·c4`` channels); the output is ``cat[cv4(y), cv5(y.detach())]``, each
    ``c2/2`` channels. Gradients reaching the second half train ``cv5`` only, never the trunk. YAML as
    :class:`ScaledRepNCSPELAN4`; ``c2`` must be even after scaling. Shapes: ``(B, c1, H, W)`` → ``(B, c2, H, W)``.
    """

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 1):
        if check_int("RepNCSPELAN4B", "c2", c2) % 2:
            raise ValueError(f"RepNCSPELAN4B needs an even output width (two halves), got c2={c2}")
        super().__init__(c1, c2, c3, c4, n)  # checks the GELAN widths
        self.cv4 = Conv(c3 + 2 * c4, c2 // 2, 1, 1)  # half trained through the trunk
        self.cv5 = Conv(c3 + 2 * c4, c2 // 2, 1, 1)  # half on the detached trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in (self.cv2, self.cv3))
        y = torch.cat(y, 1)
        return torch.cat((self.cv4(y), self.cv5(y.detach())), 1)

    forward_split = forward  # the stock block's alternative entry point must not bypass the detach


class ScaledSPPELAN(SPPELAN):
    """Ultralytics' ``SPPELAN`` with its hidden width ``c3`` width-scaled too.

    YAML ``[from, 1, ScaledSPPELAN, [c2, c3, k]]`` (``k`` the max-pool size, odd, default 5). Shapes:
    ``(B, c1, H, W)`` → ``(B, c2, H, W)``.
    """

    def __init__(self, c1: int, c2: int, c3: int, k: int = 5):
        for name, v in (("c1", c1), ("c2", c2), ("c3", c3)):
            check_int("ScaledSPPELAN", name, v)
        check_odd_kernel("ScaledSPPELAN", "k", k)  # an even pool kernel grows the map by one: the concat fails
        super().__init__(c1, c2, c3, k)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        ctx.check_arity(3, "[c2, c3, k]")
        c1 = ctx.c_in_single()
        c2, c3 = (ctx.width(ctx.arg(k, what, int, check=AT_LEAST_ONE)) for k, what in enumerate(("c2", "c3")))
        k = ctx.arg(2, "k", int, default=5, check=ODD_KERNEL)
        return {"args": [c1, c2, c3, k], "c2": c2, "n": 1}


# --- heads ---------------------------------------------------------------------------------------------------


def _check_head_args(owner: str, ch, n_dense: int, end2end, **counts) -> list[int]:
    """Head arguments of direct calls: ``counts`` (nc, reg_max, nm, ...) ints >= 1, ``end2end`` a bool, ``ch`` at
    least one pyramid level plus ``n_dense`` stride-4 features. Returns ``ch`` as a list."""
    for name, v in counts.items():
        check_int(owner, name, v)
    if not isinstance(end2end, bool):
        raise TypeError(f"{owner} end2end must be a bool, got end2end={end2end!r}")
    return check_channel_list(owner, "ch", ch, min_len=1 + n_dense)


def _install_branches(head: Detect, ch: list[int], end2end: bool) -> None:
    """Replace the stock box/class branches by GYOLO's widths; rebuild the one-to-one copies.

    Box: 3×3 Conv → 3×3 Conv in 4 groups → 1×1 in 4 groups to ``4·reg_max``, ``c2 = ceil4(max(ch0/4, 4·reg_max,
    16))``. Class: the stock depthwise branch with ``c3 = max(ch0, min(2·nc, 128))`` (stock: ``min(nc, 100)``).
    """
    c2 = 4 * math.ceil(max(ch[0] // 4, 4 * head.reg_max, 16) / 4)
    c3 = max(ch[0], min(2 * head.nc, 128))
    head.cv2 = nn.ModuleList(
        nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3, g=4), nn.Conv2d(c2, 4 * head.reg_max, 1, groups=4)) for c in ch
    )
    head.cv3 = nn.ModuleList(
        nn.Sequential(
            nn.Sequential(DWConv(c, c, 3), Conv(c, c3, 1)),
            nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
            nn.Conv2d(c3, head.nc, 1),
        )
        for c in ch
    )
    if end2end:
        head.one2one_cv2 = copy.deepcopy(head.cv2)
        head.one2one_cv3 = copy.deepcopy(head.cv3)


_HEAD_ARG_DEFAULTS = {"nm": 32, "sem_nc": 1}


def _parse_head(ctx, n_dense: int, extra: tuple[str, ...]) -> tuple[list[int], list[int], list[int]]:
    """Shared row checks: ``from`` = P3, P4, P5 + ``n_dense`` stride-4 maps; args ``[nc, *extra]``, ints >= 1.

    Returns the pyramid channels, the dense-feature channels and ``[nc, *extra]``."""
    names = [
        "P3",
        "P4",
        "P5",
        *(["semantic feature", "proto feature"] if n_dense == 2 else ["proto feature"])[:n_dense],
    ]
    ch = ctx.c_in_list()
    if not isinstance(ctx.f, list) or len(ch) != len(names):
        raise ctx.error(f"'from' must list {len(names)} layers ({', '.join(names)}), got {ctx.f}")
    ctx.check_arity(1 + len(extra), f"[nc{''.join(', ' + e for e in extra)}]")
    values = [ctx.arg(0, "nc", int, check=AT_LEAST_ONE)]
    values += [ctx.arg(k, e, int, default=_HEAD_ARG_DEFAULTS[e], check=AT_LEAST_ONE) for k, e in enumerate(extra, 1)]
    if not isinstance(ctx.reg_max, int) or ctx.reg_max < 1:
        raise ctx.error(f"the YAML's reg_max must be an int >= 1, got {ctx.reg_max!r}")
    return ch[:3], ch[3:], values


class GeneralistDetect(Detect):
    """GYOLO's detection head: stock ``Detect`` with the published branch widths.

    With the YAML's ``end2end: True`` (the published setting) it carries the one-to-many training head and a
    deep-copied one-to-one head run on detached features (NMS-free inference); Ultralytics' ``E2ELoss`` trains
    both. Shapes: ``[(B, ch_i, H_i, W_i)] × 3`` → training: ``{"one2many": {...}, "one2one": {...}}``; inference
    (end2end): ``(B, max_det, 6)`` ``[x1, y1, x2, y2, score, class]``.
    """

    def __init__(self, nc: int = 80, reg_max: int = 16, end2end: bool = False, ch: tuple[int, ...] = ()):
        ch = _check_head_args("GeneralistDetect", ch, 0, end2end, nc=nc, reg_max=reg_max)
        super().__init__(nc, reg_max, end2end, ch)
        _install_branches(self, ch, end2end)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[P3, P4, P5], 1, GeneralistDetect, [nc]]``; ``reg_max``/``end2end`` are top-level YAML keys."""
        ch, _, (nc,) = _parse_head(ctx, 0, ())
        return {"args": [nc, ctx.reg_max, bool(ctx.end2end), ch], "c2": ch[0], "n": 1, "legacy": False}


class _SharedMaskCoefficients:
    """GYOLO has one (main) mask-coefficient head: the one-to-one boxes use it too, run on the detached features.

    Ultralytics' ``Segment`` deep-copies it for the one-to-one branch; dropping that copy keeps the published
    inference graph and parameter count, and ``Detect.fuse`` then leaves ``cv4`` in place."""

    def _share_mask_head(self) -> None:
        if hasattr(self, "one2one_cv4"):
            del self.one2one_cv4

    @property
    def one2many(self):
        # after Detect.fuse removed the one-to-many boxes, the shared mask head runs once, in the one-to-one branch
        return {"box_head": self.cv2, "cls_head": self.cv3, "mask_head": self.cv4 if self.cv2 is not None else None}

    @property
    def one2one(self):
        return {"box_head": self.one2one_cv2, "cls_head": self.one2one_cv3, "mask_head": self.cv4}


class GeneralistSegment(_SharedMaskCoefficients, Segment):
    """GYOLO's instance-segmentation head: :class:`GeneralistDetect` branches + mask coefficients + 1×1 prototypes.

    Prototypes are one 1×1 Conv (BN, SiLU) on an external stride-4 feature (the YAML's proto branch) instead of
    Ultralytics' upsampling ``Proto`` on P3; both end at stride 4, so the stock segmentation loss, validator,
    predictor and exporter apply unchanged.

    Shapes: ``[P3, P4, P5, (B, c_p, H/4, W/4)]`` → as ``Segment``: training the raw dict with ``proto``
    ``(B, nm, H/4, W/4)``; inference ``((B, max_det, 6 + nm) or (B, 4 + nc + nm, A), proto)``.
    """

    def __init__(self, nc: int = 80, nm: int = 32, reg_max: int = 16, end2end: bool = False, ch: tuple[int, ...] = ()):
        *pyramid, c_proto = _check_head_args("GeneralistSegment", ch, 1, end2end, nc=nc, nm=nm, reg_max=reg_max)
        super().__init__(nc, nm, c_proto, reg_max, end2end, tuple(pyramid))
        _install_branches(self, pyramid, end2end)
        self._share_mask_head()
        self.proto = Conv(c_proto, nm, 1)  # 1×1 Conv + BN + SiLU on the stride-4 proto feature

    def forward(self, x: list[torch.Tensor]):
        """``x = [P3, P4, P5, proto_feature]``; outputs as ``Segment.forward``."""
        outputs = Detect.forward(self, x[: self.nl])
        preds = outputs[1] if isinstance(outputs, tuple) else outputs
        proto = self.proto(x[self.nl])
        _attach_proto(preds, proto)
        if self.training:
            return preds
        return (outputs, proto) if self.export else ((outputs[0], proto), preds)

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[P3, P4, P5, proto_feature], 1, GeneralistSegment, [nc, nm]]`` (``nm`` default 32)."""
        ch, dense, (nc, nm) = _parse_head(ctx, 1, ("nm",))
        return {"args": [nc, nm, ctx.reg_max, bool(ctx.end2end), ch + dense], "c2": ch[0], "n": 1, "legacy": False}


def _attach_proto(preds, proto: torch.Tensor) -> None:
    """Put prototypes into the raw prediction dict(s) the stock segmentation loss reads (detached for one2one)."""
    if isinstance(preds, dict):
        if "one2one" in preds:
            preds["one2many"]["proto"] = proto
            preds["one2one"]["proto"] = proto.detach()
        else:
            preds["proto"] = proto


SEMANTIC_STRIDES = (1, 2, 4, 8)  # strides a semantic feature can have: exports upsample the logits back by it


def check_semantic_stride(owner: str, stride) -> int:
    """The semantic feature's stride: an int in :data:`SEMANTIC_STRIDES`."""
    if check_int(owner, "stride", stride) not in SEMANTIC_STRIDES:
        raise ValueError(f"{owner} stride must be one of {', '.join(map(str, SEMANTIC_STRIDES))}, got stride={stride}")
    return stride


class GeneralistSemanticSegment(SemanticSegment):
    """GYOLO's semantic head for the stock ``semantic`` task: one 1×1 conv on the stride-4 semantic feature.

    Mutually exclusive classes, trained by Ultralytics' cross-entropy + Dice semantic loss (the joint model's
    :class:`GeneralistHead` uses GYOLO's independent per-class maps instead). ``stride`` is the feature's stride
    as built by the YAML (4): exports upsample the logits by it, as the stock head does by 8.

    Shapes: ``[(B, c, H/s, W/s)]`` → logits ``(B, nc, H/s, W/s)``; export: ``(B, H, W)`` class map (ONNX,
    OpenVINO, MNN; TensorRT when baking) or ``(B, nc, H, W)`` logits.
    """

    def __init__(self, nc: int = 19, stride: int = 4, ch: tuple[int, ...] = ()):
        check_int("GeneralistSemanticSegment", "nc", nc)
        check_semantic_stride("GeneralistSemanticSegment", stride)
        ch = check_channel_list("GeneralistSemanticSegment", "ch", ch)
        super().__init__(nc, ch[:1])
        self.classifier = nn.Conv2d(ch[0], nc, 1)
        self.feature_stride = stride

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        logits = self.classifier(x[0])
        if self.training or not self.export:
            return logits
        y = F.interpolate(logits, scale_factor=self.feature_stride, mode="bilinear", align_corners=False)
        if self.format in {"onnx", "mnn", "openvino"} or (self.format in {"engine", "hailo"} and self.bake_argmax):
            cls = y.argmax(1) if self.nc > 1 else y.squeeze(1) > 0
            return cls.to(torch.uint8 if self.nc <= 256 else torch.int32)
        return y

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[semantic_feature], 1, GeneralistSemanticSegment, [nc, stride]]`` (stride default 4)."""
        ch = ctx.c_in_list()
        if not isinstance(ctx.f, list) or len(ch) != 1:
            raise ctx.error(f"'from' must be a one-layer list [semantic feature] (heads take a list), got {ctx.f}")
        ctx.check_arity(2, "[nc, stride]")
        nc = ctx.arg(0, "nc", int, check=AT_LEAST_ONE)
        stride = check_semantic_stride(cls.__name__, ctx.arg(1, "stride", int, default=4))
        return {"args": [nc, stride, ch], "c2": ch[0], "n": 1}


class GeneralistHead(_SharedMaskCoefficients, Segment):
    """The joint head: boxes (one-to-many + one-to-one), mask coefficients, prototypes and semantic maps.

    Semantic logits are one 1×1 conv on the stride-4 semantic feature to ``nc + sem_nc`` independent (sigmoid)
    maps: one per thing class, then ``sem_nc`` extra classes. With targets derived from instance polygons
    ``sem_nc = 1``: the "no object" background. Prototypes as :class:`GeneralistSegment`.

    Shapes: ``[P3, P4, P5, (B, c_s, H/4, W/4), (B, c_p, H/4, W/4)]`` →

    * training / raw: the ``Segment`` dict(s) plus ``"semantic"`` ``(B, nc + sem_nc, H/4, W/4)``;
    * inference: ``((detections, proto, semantic), raw)``; export: ``(detections, proto, semantic)``, with
      detections ``(B, max_det, 6 + nm)`` when end2end, else ``(B, 4 + nc + nm, A)``.
    """

    def __init__(
        self,
        nc: int = 80,
        nm: int = 32,
        sem_nc: int = 1,
        reg_max: int = 16,
        end2end: bool = False,
        ch: tuple[int, ...] = (),
    ):
        *pyramid, c_semantic, c_proto = _check_head_args(
            "GeneralistHead", ch, 2, end2end, nc=nc, nm=nm, sem_nc=sem_nc, reg_max=reg_max
        )
        super().__init__(nc, nm, c_proto, reg_max, end2end, tuple(pyramid))
        _install_branches(self, pyramid, end2end)
        self._share_mask_head()
        self.sem_nc = sem_nc
        self.proto = Conv(c_proto, nm, 1)
        self.semantic = nn.Conv2d(c_semantic, nc + sem_nc, 1)

    def forward(self, x: list[torch.Tensor]):
        outputs = Detect.forward(self, x[: self.nl])
        preds = outputs[1] if isinstance(outputs, tuple) else outputs
        proto = self.proto(x[self.nl + 1])
        semantic = self.semantic(x[self.nl])
        _attach_proto(preds, proto)
        if isinstance(preds, dict):
            preds["semantic"] = semantic
        if self.training:
            return preds
        return (outputs, proto, semantic) if self.export else ((outputs[0], proto, semantic), preds)

    def bias_init(self) -> None:
        """Detection biases as stock; semantic biases at prior 0.01 (focal-loss init, as for class scores)."""
        super().bias_init()
        nn.init.constant_(self.semantic.bias, -math.log((1 - 0.01) / 0.01))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[P3, P4, P5, semantic_feature, proto_feature], 1, GeneralistHead, [nc, nm, sem_nc]]``."""
        ch, dense, (nc, nm, sem_nc) = _parse_head(ctx, 2, ("nm", "sem_nc"))
        args = [nc, nm, sem_nc, ctx.reg_max, bool(ctx.end2end), ch + dense]
        return {"args": args, "c2": ch[0], "n": 1, "legacy": False}
