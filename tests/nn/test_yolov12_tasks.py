"""YOLOv12 segmentation and classification YAMLs: official parameter counts, the argument-order fix, shapes."""

from __future__ import annotations

import pytest
import torch
from ultralytics.nn.tasks import ClassificationModel, SegmentationModel

from ultra_ext.nn.yolov12 import A2C2fTurbo, AreaAttentionTurbo

# Official seg-branch README, params in M (rounded to 0.1M; deployed = fused).
OFFICIAL_SEG_M = {"n": 2.8, "s": 9.8, "m": 21.9, "l": 28.8, "x": 64.5}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("scale", list(OFFICIAL_SEG_M))
def test_seg_fused_params_match_official(scale):
    model = SegmentationModel(f"yolov12{scale}-seg.yaml", verbose=False)
    fused = _count(model.fuse(verbose=False))
    assert round(fused / 1e6, 1) == OFFICIAL_SEG_M[scale], fused


@pytest.mark.parametrize("scale, mlp_ratio", [("n", 2.0), ("l", 1.5)])
def test_seg_and_cls_write_out_the_intended_extras(scale, mlp_ratio):
    """Residual on at every scale (gamma 0.01 on the attention layers), MLP 2.0 / 1.5 — not upstream's 1.0 at L/X."""
    for model in (
        SegmentationModel(f"yolov12{scale}-seg.yaml", verbose=False),
        ClassificationModel(f"yolov12{scale}-cls.yaml", verbose=False),
    ):
        for i in (6, 8):
            layer = model.model[i]
            assert isinstance(layer, A2C2fTurbo)
            assert layer.gamma is not None and torch.allclose(layer.gamma, torch.full_like(layer.gamma, 0.01))
            hidden = layer.cv1.conv.out_channels
            assert layer.m[0][0].mlp[0].conv.out_channels == int(hidden * mlp_ratio)


def test_cls_uses_global_attention_at_p4_and_classifies():
    model = ClassificationModel("yolov12n-cls.yaml", nc=10, verbose=False).eval()
    areas = {m.area for m in model.model[6].modules() if isinstance(m, AreaAttentionTurbo)}
    assert areas == {1}
    with torch.no_grad():
        probs, logits = model(torch.rand(2, 3, 224, 224))  # Classify in eval: (softmax, logits)
    assert probs.shape == logits.shape == (2, 10)
    torch.testing.assert_close(probs, logits.softmax(1))


def test_seg_outputs():
    model = SegmentationModel("yolov12n-seg.yaml", nc=3, verbose=False).eval()
    with torch.no_grad():
        (decoded, protos), raw = model(torch.rand(1, 3, 160, 192))  # Segment in eval: ((y, proto), raw dict)
    anchors = (160 // 8) * (192 // 8) + (160 // 16) * (192 // 16) + (160 // 32) * (192 // 32)
    assert decoded.shape == (1, 4 + 3 + 32, anchors)  # boxes, classes, 32 mask coefficients
    assert protos.shape == (1, 32, 160 // 4, 192 // 4)  # prototypes at stride 4
    torch.testing.assert_close(raw["proto"], protos)


# ------------------------------------------------------------------------------------------------ pose and OBB
# (our YAML, the stock YOLO12 YAML with the same head) — our neck and the stock one have the same channels, so the
# head's share of the parameters must be the stock head's: ours(task) − ours(seg) == stock(task) − stock(seg)
POSE_OBB = [("yolov12{}-pose.yaml", "yolo12{}-pose.yaml"), ("yolov12{}-obb.yaml", "yolo12{}-obb.yaml")]


@pytest.mark.parametrize("scale", ["n", "l"])
@pytest.mark.parametrize("ours, stock", POSE_OBB, ids=["pose", "obb"])
def test_pose_and_obb_are_the_seg_model_with_the_stock_head(ours, stock, scale):
    from ultralytics.nn.tasks import OBBModel, PoseModel

    cls = PoseModel if "pose" in ours else OBBModel
    model = cls(ours.format(scale), verbose=False)
    head = _count(model) - _count(SegmentationModel(f"yolov12{scale}-seg.yaml", verbose=False))
    stock_head = _count(cls(stock.format(scale), verbose=False)) - _count(
        SegmentationModel(f"yolo12{scale}-seg.yaml", verbose=False)
    )
    assert head == stock_head
    for i in (6, 8):  # the R-ELAN fix: residual at every scale, as in seg/cls
        assert isinstance(model.model[i], A2C2fTurbo) and model.model[i].gamma is not None


def test_pose_and_obb_outputs():
    from ultralytics.nn.tasks import OBBModel, PoseModel

    anchors = 20 * 24 + 10 * 12 + 5 * 6  # 160×192 input, strides 8/16/32
    pose = PoseModel("yolov12n-pose.yaml", verbose=False).eval()
    assert pose.kpt_shape == [17, 3] and pose.yaml["nc"] == 80  # stock's convention; a pose dataset sets nc (1)
    pose = PoseModel("yolov12n-pose.yaml", nc=1, verbose=False).eval()
    with torch.no_grad():
        decoded = pose(torch.rand(1, 3, 160, 192))[0]
    assert decoded.shape == (1, 4 + 1 + 17 * 3, anchors)  # boxes, person score, 17 keypoints (x, y, visibility)
    obb = OBBModel("yolov12n-obb.yaml", nc=15, verbose=False).eval()
    with torch.no_grad():
        decoded = obb(torch.rand(1, 3, 160, 192))[0]
    assert decoded.shape == (1, 4 + 15 + 1, anchors)  # boxes, 15 classes (DOTA), rotation angle
