"""Generalist YOLO (GYOLO): parameter counts of every YAML and scale, per-layer shapes against the YAML comments,
hidden-width and depth scaling, the gradient masking of ``RepNCSPELAN4B``, the head widths and outputs, fusion
parity, the semantic export map, and the YAML rows that must fail.

Counts are pinned from this build (nc 80); the l scale is the published GELAN-C encoder. Runtime: about 35 s on
2 CPU cores with one torch thread (most of it the 20 builds and the 640 cost profile of gyolo-l).
"""

from __future__ import annotations

import math
import re
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ultralytics.nn.tasks import DetectionModel, SegmentationModel, SemanticSegmentationModel, yaml_model_load

import ultra_ext
from ultra_ext.integration import LayerError
from ultra_ext.nn.generalist import (
    GeneralistDetect,
    GeneralistHead,
    GeneralistSegment,
    GeneralistSemanticSegment,
    RepNCSPELAN4B,
    ScaledRepNCSPELAN4,
    ScaledSPPELAN,
)
from ultra_ext.bench.cost import model_cost

try:  # the dedicated task model, once it exists; the joint head runs under SegmentationModel too
    from ultra_ext.models.generalist import GeneralistModel as JointModel
except ImportError:
    JointModel = SegmentationModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import layer_output_shapes, nudge, set_row  # noqa: E402

YAML_DIR = Path(ultra_ext.__file__).parent / "cfg" / "models" / "gyolo"
MODEL = {"gyolo": DetectionModel, "gyolo-seg": SegmentationModel, "gyolo-sem": SemanticSegmentationModel}
MODEL["gyolo-generalist"] = JointModel
# training-graph (unfused) parameters, nc 80, one shared mask-coefficient head
PARAMS = {
    "gyolo": {"n": 2_012_192, "s": 6_399_184, "m": 13_678_336, "l": 23_698_480, "x": 53_140_624},
    "gyolo-seg": {"n": 2_187_968, "s": 6_816_752, "m": 14_697_632, "l": 25_502_928, "x": 57_183_536},
    "gyolo-sem": {"n": 939_136, "s": 3_721_136, "m": 8_434_208, "l": 14_970_384, "x": 33_629_936},
    "gyolo-generalist": {"n": 2_243_537, "s": 7_025_089, "m": 15_244_145, "l": 26_465_057, "x": 59_327_105},
}
# deployed (model.fuse(): BN folded, the unused box/class branch dropped) parameters at scale l
FUSED_L = {"gyolo": 22_103_104, "gyolo-seg": 23_887_936, "gyolo-sem": 14_813_776, "gyolo-generalist": 24_830_865}
GFLOPS_L = 83.30  # gyolo-l at 640, fused, conv-only (the papers' convention)

_models: dict[tuple[str, str], torch.nn.Module] = {}


def build(base: str, scale: str) -> torch.nn.Module:
    """``<base>-<scale>.yaml`` built once per session (n and l are cached; the rest are built for counting only).
    Tests must not mutate the returned model."""
    key = (base, scale)
    if key in _models:
        return _models[key]
    torch.manual_seed(0)
    model = MODEL[base](f"{base}-{scale}.yaml", verbose=False)
    if scale in "nl":
        _models[key] = model
    return model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_last_convs(head: torch.nn.Module, seed: int) -> None:
    """The zero-ish init of the prediction convs makes every score alike; random weights make parity meaningful."""
    g = torch.Generator().manual_seed(seed)
    seqs = [*head.cv2, *head.cv3, *head.cv4]
    seqs += [*getattr(head, "one2one_cv2", []), *getattr(head, "one2one_cv3", [])]
    with torch.no_grad():
        for seq in seqs:
            seq[-1].weight.copy_(torch.randn(seq[-1].weight.shape, generator=g) * 0.05)


# ------------------------------------------------------------------------------------------- whole models
@pytest.mark.parametrize("base", list(PARAMS))
@pytest.mark.parametrize("scale", "nslmx")
def test_params_every_yaml_and_scale(base, scale):
    model = build(base, scale)
    assert n_params(model) == PARAMS[base][scale]


@pytest.mark.parametrize("base", list(PARAMS))
def test_fused_params_at_scale_l(base):
    model = build(base, "l")
    fused = deepcopy(model).eval().fuse(verbose=False)
    assert n_params(fused) == FUSED_L[base]
    if base != "gyolo-sem":  # the one-to-many and one-to-one branches are twins: either one left, same count
        e2e = deepcopy(model).eval()
        e2e.end2end = True
        assert n_params(e2e.fuse(verbose=False)) == FUSED_L[base]


def test_cost_of_gyolo_l_at_640():
    cost = model_cost(build("gyolo", "l"), 640)
    print(f"gyolo-l @640: {cost}")
    assert cost.params == PARAMS["gyolo"]["l"] and cost.params_fused == FUSED_L["gyolo"]
    assert abs(cost.gflops_conv_fused - GFLOPS_L) / GFLOPS_L <= 0.01, cost
    # PSA's single 20×20 attention is the only matmul thop's functional counting adds
    assert 0 < cost.gflops_attn_fused - cost.gflops_conv_fused < 0.2, cost


def comment_shapes(base: str) -> dict[int, tuple[int, int, int]]:
    """``{layer: (C, H, W)}`` from the YAML's row comments (``# 16 P3 (half detached), 256x80x80``: scale l, 640)."""
    shapes = {}
    for line in (YAML_DIR / f"{base}.yaml").read_text().splitlines():
        m = re.match(r"\s*- \[.*\] # (\d+) .*?(\d+)x(\d+)x(\d+)\s*$", line)
        if m:
            shapes[int(m[1])] = tuple(int(v) for v in m.groups()[1:])
    return shapes


@pytest.mark.parametrize("base", list(PARAMS))
def test_layer_shapes_match_yaml_comments(base):
    """Scale l at 256 (the comments' 640 sizes × 0.4): every commented layer's (C, H, W) as written."""
    expected = comment_shapes(base)
    model = build(base, "l")
    assert sorted(expected) == list(range(len(model.model) - 1)), "every row but the head carries its shape"
    seen = layer_output_shapes(model, 256)
    for j, (c, h, w) in expected.items():
        assert seen[j] == (1, c, h * 256 // 640, w * 256 // 640), (j, seen[j], (c, h, w))
    # the lead's fixed points: P3/P4/P5 256/512/512 at strides 8/16/32, the stride-4 dense features 256 wide
    assert seen[16] == (1, 256, 32, 32)
    if base != "gyolo-sem":
        assert seen[19] == (1, 512, 16, 16) and seen[22] == (1, 512, 8, 8)
    dense = {"gyolo": [], "gyolo-seg": [26], "gyolo-sem": [20], "gyolo-generalist": [26, 30]}[base]
    assert all(seen[j] == (1, 256, 64, 64) for j in dense)


# ------------------------------------------------------------------------------------------ width scaling
def elan_widths(m: ScaledRepNCSPELAN4) -> tuple[int, int, int, int]:
    """(c2, c3, c4, n) of a built GELAN block, read from its convs."""
    return m.cv4.conv.out_channels, m.cv1.conv.out_channels, m.cv2[1].conv.out_channels, len(m.cv2[0].m)


def test_hidden_widths_and_depth_follow_the_scale():
    small, large = build("gyolo-generalist", "n").model, build("gyolo-generalist", "l").model
    # layer 4 [512, 256, 128, 1]: width 0.25 at n, all three widths scaled (stock parse_model scales c2 only)
    assert type(small[4]) is ScaledRepNCSPELAN4 and elan_widths(small[4]) == (128, 64, 32, 1)
    assert elan_widths(large[4]) == (512, 256, 128, 1)
    assert elan_widths(small[6]) == (128, 128, 64, 1) and elan_widths(large[6]) == (512, 512, 256, 1)
    # dense branches [256, 256, 128, 2]: depth 0.5 at n halves the RepCSP bottlenecks, large keeps 2
    for j in (23, 27):
        assert elan_widths(small[j]) == (64, 64, 32, 1) and elan_widths(large[j]) == (256, 256, 128, 2)
        assert len(small[j].cv3[0].m) == 1 and len(large[j].cv3[0].m) == 2
    # ScaledSPPELAN [512, 256]: cv1 to c3, cv5 from 4·c3 to c2
    for model, c2, c3 in ((small, 128, 64), (large, 512, 256)):
        assert type(model[9]) is ScaledSPPELAN and model[9].cv1.conv.out_channels == c3
        assert (model[9].cv5.conv.in_channels, model[9].cv5.conv.out_channels) == (4 * c3, c2)
    # RepNCSPELAN4B: cv4 and cv5 read the whole trunk (c3 + 2·c4) and give c2/2 each
    for model, j, (c2, c3, c4) in ((small, 16, (64, 64, 32)), (small, 19, (128, 128, 64)), (large, 22, (512, 512, 256))):
        b = model[j]
        assert type(b) is RepNCSPELAN4B and b.cv1.conv.out_channels == c3 and b.cv2[1].conv.out_channels == c4
        for cv in (b.cv4, b.cv5):
            assert (cv.conv.in_channels, cv.conv.out_channels) == (c3 + 2 * c4, c2 // 2)


# -------------------------------------------------------------------------------------- gradient masking
def test_detached_half_trains_cv5_only():
    torch.manual_seed(0)
    block = RepNCSPELAN4B(8, 16, 8, 4, 1).train()
    trunk = [p for cv in (block.cv1, block.cv2, block.cv3) for p in cv.parameters()]

    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 16, 6, 6)
    out[:, 8:].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.cv5.parameters())
    assert all(p.grad is None or not p.grad.any() for p in [*trunk, *block.cv4.parameters()])
    assert x.grad is None or not x.grad.any()

    block.zero_grad(set_to_none=True)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    block(x)[:, :8].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*trunk, *block.cv4.parameters()])
    assert all(p.grad is None or not p.grad.any() for p in block.cv5.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_forward_split_keeps_the_detach_and_values():
    torch.manual_seed(0)
    block = nudge(RepNCSPELAN4B(8, 16, 8, 4, 1), seed=1)
    x = torch.randn(1, 8, 5, 7)
    assert torch.equal(block.forward_split(x), block(x))
    x.requires_grad_(True)
    block.forward_split(x)[:, 8:].sum().backward()
    # the slice's backward sends exact zeros into the cv4 half: the trunk and the input get nothing else
    assert not x.grad.any() and all(p.grad is None or not p.grad.any() for p in block.cv1.parameters())
    # the two halves are the stock GELAN trunk through cv4 and cv5
    with torch.no_grad():
        y = list(block.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in (block.cv2, block.cv3))
        y = torch.cat(y, 1)
        assert torch.allclose(block(x), torch.cat((block.cv4(y), block.cv5(y)), 1), atol=1e-6)
    with pytest.raises(ValueError, match="even output width"):
        RepNCSPELAN4B(8, 15, 8, 4)


# ------------------------------------------------------------------------------------------------- heads
@pytest.mark.parametrize(
    "ch0, nc, reg_max, c2, c3",
    [
        (64, 80, 16, 64, 128),  # c2 = 4·reg_max; c3 = min(2·nc, 128) > ch0
        (256, 2, 16, 64, 256),  # c3 = ch0 (few classes)
        (512, 80, 16, 128, 512),  # c2 = ch0/4
        (100, 3, 1, 28, 100),  # c2 = ceil4(100/4 = 25) = 28, the 16 floor not reached
        (32, 3, 1, 16, 32),  # the 16 floor
    ],
)
def test_detect_branch_widths(ch0, nc, reg_max, c2, c3):
    head = GeneralistDetect(nc, reg_max, True, (ch0, 2 * ch0, 2 * ch0))
    for i, box in enumerate(head.cv2):
        assert box[0].conv.in_channels == (ch0 if i == 0 else 2 * ch0) and box[0].conv.out_channels == c2
        assert (box[1].conv.groups, box[1].conv.out_channels, box[2].groups) == (4, c2, 4)
        assert box[2].out_channels == 4 * reg_max
    for cls in head.cv3:
        assert cls[0][1].conv.out_channels == c3 and cls[1][0].conv.groups == c3 and cls[2].out_channels == nc
    assert head.one2one_cv2 is not head.cv2 and n_params(head.one2one_cv2) == n_params(head.cv2)
    assert n_params(head.one2one_cv3) == n_params(head.cv3)
    assert getattr(GeneralistDetect(nc, reg_max, False, (ch0,) * 3), "one2one_cv2", None) is None


def test_mask_head_is_shared_by_both_branches():
    seg = GeneralistSegment(80, 32, 16, True, (64, 128, 128, 48))
    joint = GeneralistHead(80, 32, 1, 16, True, (64, 128, 128, 40, 48))
    for head in (seg, joint):
        assert not hasattr(head, "one2one_cv4") and len(head.cv4) == 3
        assert head.one2many["mask_head"] is head.cv4 and head.one2one["mask_head"] is head.cv4
        assert (head.proto.conv.in_channels, head.proto.conv.out_channels, head.proto.conv.kernel_size) == (
            48,
            32,
            (1, 1),
        )
    assert (joint.semantic.in_channels, joint.semantic.out_channels) == (40, 81)


def test_joint_model_outputs_train_and_eval():
    model = deepcopy(build("gyolo-generalist", "n"))
    head = model.model[-1]
    assert type(head) is GeneralistHead and head.stride.tolist() == [8.0, 16.0, 32.0]
    assert torch.allclose(head.semantic.bias, torch.full((81,), -math.log(99)))  # semantic prior 0.01
    x = torch.rand(2, 3, 128, 128)
    out = model.train()(x)
    assert set(out) == {"one2many", "one2one", "semantic"} and out["semantic"].shape == (2, 81, 32, 32)
    for branch in ("one2many", "one2one"):
        p = out[branch]
        assert p["boxes"].shape == (2, 64, 336) and p["scores"].shape == (2, 80, 336)
        assert p["mask_coefficient"].shape == (2, 32, 336) and p["proto"].shape == (2, 32, 32, 32)
    assert out["one2many"]["proto"].requires_grad and not out["one2one"]["proto"].requires_grad
    assert torch.equal(out["one2many"]["proto"], out["one2one"]["proto"])

    model.eval()
    with torch.no_grad():
        (det, proto, semantic), raw = model(x)  # Ultralytics' default: one-to-many + NMS decoding
        assert det.shape == (2, 4 + 80 + 32, 336)
        model.end2end = True  # what nms=False (validator/exporter) selects: the NMS-free one-to-one head
        (det, proto, semantic), raw = model(x)
    assert det.shape == (2, 300, 6 + 32) and proto.shape == (2, 32, 32, 32) and semantic.shape == (2, 81, 32, 32)
    assert torch.equal(raw["semantic"], semantic)


@pytest.mark.parametrize("base", ["gyolo-seg", "gyolo-generalist"])
def test_fuse_keeps_outputs_and_the_mask_head(base):
    model = nudge(deepcopy(build(base, "n")), seed=1)
    randomize_last_convs(model.model[-1], seed=2)
    model.end2end = True
    fused = deepcopy(model).fuse(verbose=False)
    head = fused.model[-1]
    assert head.cv2 is None and head.cv3 is None and head.one2one_cv2 is not None
    assert isinstance(head.cv4, torch.nn.ModuleList) and not any(hasattr(m, "bn") for m in fused.modules())
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        (ref, ref_raw), (got, got_raw) = model(x), fused(x)
    assert len(ref) == len(got) == (3 if base == "gyolo-generalist" else 2)
    assert ref[0].shape == (1, 300, 38)
    for a, b in zip(ref, got):  # detections (boxes in pixels, scores, classes, coefficients), protos, semantic
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-4
    for k in ("boxes", "scores", "mask_coefficient"):
        a, b = ref_raw["one2one"][k], got_raw["one2one"][k]
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-4, k


def test_semantic_head_training_and_export_map():
    model = deepcopy(build("gyolo-sem", "n"))
    head = model.model[-1]
    assert type(head) is GeneralistSemanticSegment and head.feature_stride == 4 and head.stride.item() == 32
    x = torch.rand(2, 3, 128, 96)
    # the batch survives: the head indexes its input list, so its row must list the feature ([20], not 20)
    assert model.train()(x).shape == (2, 80, 32, 24)
    model = nudge(model, seed=1)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 80, 32, 24)
        head.export, head.format = True, "onnx"
        cls_map = model(x)
        head.format = "torchscript"  # formats without a baked argmax: the upsampled logits
        up = model(x)
    expected = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
    assert cls_map.dtype == torch.uint8 and cls_map.shape == (2, 128, 96)
    assert torch.equal(cls_map, expected.argmax(1).to(torch.uint8))
    assert torch.allclose(up, expected, atol=1e-5)


def test_semantic_head_single_class_and_many_classes():
    torch.manual_seed(0)
    x = [torch.randn(1, 8, 4, 5)]
    one = GeneralistSemanticSegment(1, 2, (8,)).eval()
    one.export, one.format = True, "openvino"
    assert torch.equal(
        one(x),
        (F.interpolate(one.classifier(x[0]), scale_factor=2, mode="bilinear", align_corners=False) > 0)[:, 0].byte(),
    )
    many = GeneralistSemanticSegment(300, 4, (8,)).eval()
    many.export, many.format = True, "onnx"
    assert many(x).dtype == torch.int32 and many(x).shape == (1, 16, 20)


# ---------------------------------------------------------------------------------------------- bad input
def yaml_dict(base: str = "gyolo", scale: str = "n") -> dict:
    return deepcopy(yaml_model_load(f"{base}-{scale}.yaml"))


@pytest.mark.parametrize(
    "base, scale, i, row, fragments",
    [
        ("gyolo-generalist", "n", 31, [[16, 19, 22, 26], 1, "GeneralistHead", ["nc", 32, 1]],
         ["layer 31", "GeneralistHead", "must list 5 layers", "semantic feature, proto feature"]),
        ("gyolo-seg", "n", 27, [[16, 19, 22], 1, "GeneralistSegment", ["nc", 32]],
         ["layer 27", "GeneralistSegment", "must list 4 layers", "[16, 19, 22]"]),
        ("gyolo", "n", 23, [22, 1, "GeneralistDetect", ["nc"]], ["layer 23", "GeneralistDetect", "must list 3 layers"]),
        ("gyolo", "n", 23, [[16, 19, 22], 1, "GeneralistDetect", [0]],
         ["layer 23", "GeneralistDetect", "argument 0 (nc)=0", ">= 1"]),
        ("gyolo-generalist", "n", 31, [[16, 19, 22, 26, 30], 1, "GeneralistHead", ["nc", 32, 1, 5]],
         ["layer 31", "at most 3 arguments [nc, nm, sem_nc]"]),
        ("gyolo", "l", 4, [-1, 2, "ScaledRepNCSPELAN4", [512, 256, 128, 1]],
         ["layer 4", "ScaledRepNCSPELAN4", "repeats must be 1", "got 2"]),
        ("gyolo", "n", 4, [-1, 1, "ScaledRepNCSPELAN4", [512, "wide", 128, 1]],
         ["layer 4", "ScaledRepNCSPELAN4", "c3='wide'"]),
        ("gyolo", "n", 4, [-1, 1, "ScaledRepNCSPELAN4", [512, 256, 128, 1, 1]],
         ["layer 4", "at most 4 arguments [c2, c3, c4, n]"]),
        ("gyolo", "n", 16, [[-1, 4], 1, "RepNCSPELAN4B", [256, 256, 128, 1]], ["layer 16", "RepNCSPELAN4B", "one input"]),
        ("gyolo", "n", 9, [-1, 1, "ScaledSPPELAN", [512, 256, 4]],
         ["layer 9", "ScaledSPPELAN", "argument 2 (k)=4", "odd"]),
        ("gyolo-sem", "n", 21, [[20], 1, "GeneralistSemanticSegment", ["nc", 3]],
         ["layer 21", "GeneralistSemanticSegment", "stride must be one of 1, 2, 4, 8, got stride=3"]),
        ("gyolo-sem", "n", 21, [20, 1, "GeneralistSemanticSegment", ["nc", 4]],
         ["layer 21", "GeneralistSemanticSegment", "one-layer list", "got 20"]),
    ],
)  # fmt: skip
def test_bad_rows_name_layer_and_module(base, scale, i, row, fragments):
    with pytest.raises(LayerError) as e:
        MODEL[base](set_row(yaml_dict(base, scale), i, row), verbose=False)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))
