"""Gold-YOLO: the GD-neck modules on hand-computed cases, every scale against the paper and the official layout,
fusion, dynamic-shape ONNX export, and the YAML rows and inputs that must fail.

Reference values: the paper's deployed params/GFLOPs (Gold-YOLO Table 1), the per-scale widths of the spec's
table §5, and the committed manifests of the official state dicts (tests/data/goldyolo, produced by building
the official code). Runtime: about 40 s on 2 CPU cores with one torch thread.
"""

from __future__ import annotations

import math
import sys
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

import ultra_ext
from ultra_ext.integration import LayerError
from ultra_ext.nn.goldyolo import (
    ConvAttention,
    EfficientDecoupledDetect,
    HighStageAlign,
    HighStageFusion,
    Injection,
    LocalFusion3,
    LowStageAlign,
    NeckBatchNorm2d,
    PoolConcat,
)
from ultra_ext.nn.shapes import MapSizeError
from ultra_ext.bench.cost import model_cost

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import layer_output_shapes, nudge, read_manifest, set_row  # noqa: E402

SCALES = "nslm"
# Paper Table 1: deployed params (M) and GFLOPs at 640 (fused, conv-only)
PAPER = {"n": (5.6, 12.1), "s": (21.5, 46.0), "m": (41.3, 87.5), "l": (75.1, 151.7)}
# training-time (unfused) parameters of our build (spec §7: ≈ 6.08 / 23.2 / 44.3 / 75.1 M)
UNFUSED = {"n": 6_062_556, "s": 23_202_957, "m": 44_326_789, "l": 75_114_682}
# spec §5 per-scale widths: B2..B5, Low-FAM, T0..T3, P4, p4_half, P3, High-FAM, N4, N5, transformer depth/heads
WIDTHS = {
    "n": dict(B=(32, 64, 128, 256), fam=480, T=(64, 32, 64, 128), p4=64, p4h=32, p3=32, en=352, n4=64, n5=128, tf=(2, 4)),
    "s": dict(B=(64, 128, 256, 512), fam=960, T=(128, 64, 128, 256), p4=128, p4h=64, p3=64, en=704, n4=128, n5=256, tf=(2, 4)),
    "m": dict(B=(96, 192, 384, 768), fam=1440, T=(192, 96, 192, 384), p4=192, p4h=96, p3=96, en=1056, n4=192, n5=384, tf=(2, 4)),
    "l": dict(B=(128, 256, 512, 1024), fam=1920, T=(256, 128, 256, 512), p4=256, p4h=128, p3=128, en=1408, n4=256, n5=512, tf=(3, 8)),
}  # fmt: skip

_models: dict[str, DetectionModel] = {}


def build(scale: str) -> DetectionModel:
    """``goldyolo-<scale>.yaml`` built once per session; tests must not mutate it."""
    if scale not in _models:
        torch.manual_seed(0)
        _models[scale] = DetectionModel(f"goldyolo-{scale}.yaml", verbose=False)
    return _models[scale]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bn_identity(module: torch.nn.Module) -> torch.nn.Module:
    """Every BN an exact identity in eval mode (running_var = 1 - eps), every conv weight 1: hand-computable."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1 - m.eps)
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
    return module.eval()


# ------------------------------------------------------------------------------------ modules, hand-computed
def test_injection_hand_computed_and_slice():
    """1 channel everywhere, identity convs: out = local · hsigmoid(g) + g, with g the chosen split only."""
    m = bn_identity(Injection(c_local=1, c_global=1, c2=1, offset=1))
    local = torch.full((1, 1, 4, 4), 2.0)
    glob = torch.cat((torch.full((1, 1, 2, 2), 100.0), torch.full((1, 1, 2, 2), 1.0)), 1)  # split 0 must be ignored
    out = m([local, glob])
    assert out.shape == (1, 1, 4, 4)
    assert torch.allclose(out, torch.full_like(out, 2.0 * (1.0 + 3.0) / 6.0 + 1.0))  # 2 · relu6(1+3)/6 + 1 = 2.333…


def test_injection_upsamples_gate_after_hsigmoid():
    """Non-constant global input: gate = bilinear(hsigmoid(g)), embedding = bilinear(g), both at the local size."""
    m = bn_identity(Injection(c_local=1, c_global=1, c2=1, offset=0))
    local = torch.randn(1, 1, 6, 6)
    g = torch.randn(1, 1, 3, 3) * 4
    up = lambda t: F.interpolate(t, size=(6, 6), mode="bilinear", align_corners=False)  # noqa: E731
    expected = local * up(F.relu6(g + 3) / 6) + up(g)
    assert torch.allclose(m([local, g]), expected, atol=1e-6)


def test_injection_pools_when_the_local_map_is_smaller():
    """No published config hits it: the global convs' outputs are mean-pooled by the integer ratio, and (a documented
    change) the gate is applied there too."""
    m = bn_identity(Injection(c_local=1, c_global=1, c2=1, offset=0))
    local = torch.randn(1, 1, 2, 2)
    g = torch.randn(1, 1, 4, 4) * 4
    pooled = g.reshape(1, 1, 2, 2, 2, 2).mean((3, 5))
    assert torch.allclose(m([local, g]), local * (F.relu6(pooled + 3) / 6) + pooled, atol=1e-6)


def test_local_fusion3_pools_convs_and_upsamples():
    """cv_fuse sees [avgpool2(fine), cv1(mid), up(coarse)]; pick each third of its input by hand."""
    m = bn_identity(LocalFusion3(c_mid=2, c2=1))
    fine = torch.arange(16.0).reshape(1, 1, 4, 4)
    mid = torch.ones(1, 2, 2, 2)
    coarse = torch.full((1, 1, 1, 1), 7.0)
    pooled = torch.tensor([[2.5, 4.5], [10.5, 12.5]])  # means of the 2×2 blocks of arange(16)
    with torch.no_grad():
        for third, expected in ((0, pooled), (1, torch.full((2, 2), 2.0)), (2, torch.full((2, 2), 7.0))):
            m.cv_fuse.conv.weight.zero_()
            m.cv_fuse.conv.weight[0, third] = 1.0
            assert torch.allclose(m([fine, mid, coarse])[0, 0], expected), third


def test_low_stage_align_blocks():
    """Channel blocks of the output: B2 mean-pooled 4×4, B3 2×2, B4 as is, B5 bilinear up (constant stays constant)."""
    b2, b3, b4 = torch.randn(1, 2, 16, 16), torch.randn(1, 3, 8, 8), torch.randn(1, 4, 4, 4)
    b5 = torch.full((1, 5, 2, 2), 3.0)
    out = LowStageAlign()([b2, b3, b4, b5])
    assert out.shape == (1, 14, 4, 4)
    block_mean = lambda x, r: x.reshape(1, x.shape[1], 4, r, 4, r).mean((3, 5))  # noqa: E731
    assert torch.allclose(out[:, :2], block_mean(b2, 4), atol=1e-6)
    assert torch.allclose(out[:, 2:5], block_mean(b3, 2), atol=1e-6)
    assert torch.equal(out[:, 5:9], b4) and torch.allclose(out[:, 9:], torch.full((1, 5, 4, 4), 3.0))


def test_high_stage_align_odd_grid_is_mean_of_valid_cells():
    """Last input 3×3, stride 2 → 2×2 grid; the edge windows average only the cells inside the map (ceil mode)."""
    last = torch.arange(9.0).reshape(1, 1, 3, 3)
    finer = last.repeat_interleave(2, -1).repeat_interleave(2, -2)  # 6×6, each value in a 2×2 block
    out = HighStageAlign(2)([finer, last])
    expected = torch.tensor([[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8.0]])
    assert out.shape == (1, 2, 2, 2)
    assert torch.allclose(out[0, 1], expected) and torch.allclose(out[0, 0], expected)


def test_pool_concat():
    fine, coarse = torch.arange(16.0).reshape(1, 1, 4, 4), torch.zeros(1, 2, 2, 2)
    out = PoolConcat()([fine, coarse])
    assert out.shape == (1, 3, 2, 2) and torch.allclose(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_conv_attention_matches_plain_torch_without_scale(backend):
    """softmax(q kᵀ) v with NO 1/sqrt(d) scale (TopFormer), heads split channel-major, then ReLU6 → proj."""
    torch.manual_seed(0)
    m = nudge(ConvAttention(dim=16, key_dim=4, heads=2, attn_ratio=2, backend=backend), seed=3)
    with torch.no_grad():
        m.proj[1].bn.weight.fill_(1.0)  # the zero init would hide everything
        x = torch.randn(2, 16, 3, 5)
        b, n = 2, 15
        q = m.to_q(x).reshape(b, 2, 4, n).transpose(-1, -2)  # (B, h, N, kd)
        k = m.to_k(x).reshape(b, 2, 4, n)  # (B, h, kd, N)
        v = m.to_v(x).reshape(b, 2, 8, n).transpose(-1, -2)  # (B, h, N, dv)
        o = (q @ k).softmax(-1) @ v  # (B, h, N, dv)
        expected = m.proj(o.transpose(-1, -2).reshape(b, 16, 3, 5))
        got = m(x)
    assert m.last_backend == backend
    assert (got - expected).abs().max().item() < 1e-5


def test_high_stage_fusion_init_and_schedule():
    """Zero-initialised attention output BN (block starts as x + mlp(x)), drop path linspace(0, 0.1), NeckBN eps."""
    m = HighStageFusion(32, [8, 16], depth=3, key_dim=8, heads=2).eval()
    assert [blk.drop_path.p if hasattr(blk.drop_path, "p") else 0.0 for blk in m.blocks] == pytest.approx(
        [0, 0.05, 0.1]
    )
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        assert m.blocks[0].attn(x).abs().max().item() == 0.0
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and all(type(b) is NeckBatchNorm2d and b.eps == 1e-5 and b.momentum == 0.1 for b in bns)
    assert m.out.bias is not None and m(x).shape == (1, 24, 4, 4)


def test_neck_bn_keeps_official_defaults_after_ultralytics_init():
    """Ultralytics' post-build init sets eps 1e-3 on exact BatchNorm2d only: the official SyncBN layers keep 1e-5."""
    model = build("n")
    eps = {type(m).__name__: set() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            eps[type(m).__name__].add((m.eps, m.momentum))
    assert eps == {"BatchNorm2d": {(1e-3, 0.03)}, "NeckBatchNorm2d": {(1e-5, 0.1)}}
    # 4 injections × 3 + 2 transformer blocks × 6, as in the official model
    assert sum(type(m) is NeckBatchNorm2d for m in model.modules()) == 24


def test_head_init_and_drop_in_outputs():
    """Ultralytics' Detect init (default prediction weights; box bias 2, class bias log(5 / nc / (640 / s)²)), not
    the published zero-weight init (docs/training.md: it stalls the first epochs under the stock trainer)."""
    model = build("s")
    head = model.model[-1]
    assert isinstance(head, EfficientDecoupledDetect) and head.reg_max == 17 and head.no == 80 + 68
    for box, cls, s in zip(head.cv2, head.cv3, (8, 16, 32)):
        assert box[-1].weight.abs().min() > 0 and cls[-1].weight.abs().max() > 0.01
        assert torch.allclose(cls[-1].bias, torch.full((80,), math.log(5 / 80 / (640 / s) ** 2)))
        assert torch.allclose(box[-1].bias, torch.full((68,), 2.0))
    assert head.stride.tolist() == [8.0, 16.0, 32.0]
    assert build("n").model[-1].reg_max == 1 and isinstance(build("n").model[-1].dfl, torch.nn.Identity)


def test_first_step_gradient_reaches_the_head_branches():
    """At initialisation the detection loss reaches the layers below the prediction convs (with zero prediction
    weights, as published, their gradient is exactly 0 until those weights move)."""
    from ultralytics.cfg import get_cfg

    torch.manual_seed(0)
    model = DetectionModel("goldyolo-n.yaml", verbose=False)  # its own copy: build()'s are shared and read-only
    model.args = get_cfg(overrides={"imgsz": 128})
    batch = {
        "img": torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.3, 0.4, 0.2, 0.2]]),
    }
    model.train()
    model.loss(batch)[0].sum().backward()
    head = model.model[-1]
    grad = [[b[0].conv.weight.grad.abs().sum().item() for b in branches] for branches in (head.cv2, head.cv3)]
    assert all(g > 0 for g in grad[1]), grad  # class branches: every anchor is a (negative) target
    assert any(g > 0 for g in grad[0]), grad  # box branches: the levels holding the two boxes' positives


# ------------------------------------------------------------------------------------------- whole models
@pytest.mark.parametrize("scale", SCALES)
def test_params_equal_official_training_graph(scale):
    """Unfused parameters == the official model's (from its committed state-dict manifest), less its fixed DFL
    projection (``proj`` 17 + ``proj_conv`` 17, ours: the DFL conv, 17, only when reg_max > 1)."""
    keys = read_manifest("goldyolo", f"official_state_dict_{scale}")["keys"]
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    official = sum(math.prod(shape) for key, shape in keys if not key.endswith(buffers))
    model = build(scale)
    dfl = 17 if model.model[-1].reg_max > 1 else 0
    assert n_params(model) == official - 34 + dfl == UNFUSED[scale]


@pytest.mark.parametrize("scale", SCALES)
def test_deployed_cost_within_3_percent_of_paper(scale):
    cost = model_cost(build(scale), 640)
    params_m, gflops = PAPER[scale]
    assert abs(cost.params_fused / 1e6 - params_m) / params_m <= 0.03, cost
    assert abs(cost.gflops_conv_fused - gflops) / gflops <= 0.03, cost
    assert cost.params == UNFUSED[scale]
    # attention matmuls on the 10×10 grid are tiny (spec: 1.9M MACs N/S/M, 5.8M L)
    assert 0 < cost.gflops_attn_fused - cost.gflops_conv_fused < 0.03


@pytest.mark.parametrize("scale", SCALES)
def test_layer_widths_and_strides_at_320(scale):
    """Every layer's output channels match the spec's per-scale table and its stride the GD layout."""
    w = WIDTHS[scale]
    b2, b3, b4, b5 = w["B"]
    t0, t1, t2, t3 = w["T"]
    expected = {
        2: (b2, 4), 4: (b3, 8), 6: (b4, 16), 9: (b5, 32), 10: (w["fam"], 16), 11: (t0 + t1, 16), 12: (w["p4"], 32),
        13: (w["p4"], 16), 14: (w["p4"], 16), 15: (w["p4"], 16), 16: (w["p4h"], 16), 17: (w["p3"], 8),
        18: (w["p3"], 8), 19: (w["p3"], 8), 20: (w["en"], 64), 21: (t2 + t3, 64), 22: (w["p3"] + w["p4h"], 16),
        23: (w["n4"], 16), 24: (w["n4"], 16), 25: (2 * w["p4"], 32), 26: (w["n5"], 32), 27: (w["n5"], 32),
    }  # fmt: skip
    model = build(scale)
    seen = layer_output_shapes(model, 320)
    for j, (c, stride) in expected.items():
        assert seen[j] == (1, c, 320 // stride, 320 // stride), (j, seen[j])
    assert model.model[11].splits == [t0, t1] and model.model[21].splits == [t2, t3]
    depth, heads = w["tf"]
    assert len(model.model[21].blocks) == depth and model.model[21].blocks[0].attn.heads == heads
    assert model.model[25].f == ([15, 12] if scale == "l" else [24, 12])  # L feeds N5 from P4 (GDNeck2)


@pytest.mark.parametrize("scale", SCALES)
def test_fuse_keeps_outputs(scale):
    """RepVGG merge + BN folding: same decoded boxes and scores (head weights randomised, BN stats nudged)."""
    model = nudge(deepcopy(build(scale)), seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for seq in (*model.model[-1].cv2, *model.model[-1].cv3):
            seq[-1].weight.copy_(torch.randn(seq[-1].weight.shape, generator=g) * 0.01)
    fused = deepcopy(model).fuse(verbose=False)
    assert not any(hasattr(m, "conv1") for m in fused.modules() if type(m).__name__ == "RepVGGBlock")
    x = torch.rand(1, 3, 256, 256, generator=g)
    with torch.no_grad():
        ref, out = model(x)[0], fused(x)[0]
    assert ref.shape == (1, 84, 1344)
    assert (ref[:, 4:] - out[:, 4:]).abs().max().item() <= 1e-4  # class scores
    assert ((ref[:, :4] - out[:, :4]).abs().max() / ref[:, :4].abs().max()).item() <= 1e-5  # boxes, in pixels


def test_onnx_dynamic_shapes_match_pytorch_at_two_sizes(tmp_path):
    """Dynamic-axes ONNX (no pooling kernel frozen from the traced 320 shape) == PyTorch at 256² and at 224×288,
    where the stride-32 map is odd (7×9) and the stride-64 grid uses edge windows."""
    import onnxruntime as ort

    model = nudge(deepcopy(build("n")), seed=4)
    with torch.no_grad():
        for seq in (*model.model[-1].cv2, *model.model[-1].cv3):
            torch.nn.init.normal_(seq[-1].weight, std=0.01)
    fused = deepcopy(model).fuse(verbose=False)
    head = fused.model[-1]
    head.export = True  # return the decoded tensor only, as Ultralytics' exporter does
    head.dynamic = True  # and rebuild the anchor grid from the traced shapes (not the cached grid of a past call)
    path = tmp_path / "goldyolo-n.onnx"
    torch.onnx.export(
        fused, torch.zeros(1, 3, 320, 320), str(path), opset_version=18, dynamo=False,
        input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in ((256, 256), (224, 288)):
        x = torch.rand(1, 3, *hw)
        with torch.no_grad():
            ref = model(x)[0].numpy()
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == ref.shape == (1, 84, sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32)))
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel <= 1e-5, (hw, rel)


def test_backends_agree_on_the_whole_model():
    model = nudge(deepcopy(build("n")), seed=5)
    x = torch.rand(1, 3, 128, 128)
    outs = {}
    for backend in ("sdpa", "math"):
        with ultra_ext.attn_backend(backend), torch.no_grad():
            outs[backend] = model(x)[1]["feats"][2]
    assert (outs["sdpa"] - outs["math"]).abs().max().item() < 1e-4


# ---------------------------------------------------------------------------------------------- bad input
def yaml_dict(scale: str = "n") -> dict:
    d = yaml_model_load(f"goldyolo-{scale}.yaml")
    return deepcopy(d)


@pytest.mark.parametrize(
    "i, row, fragments",
    [
        (10, [[2, 4, 6], 1, "LowStageAlign", []], ["layer 10", "LowStageAlign", "four maps", "[2, 4, 6]"]),
        (14, [[13, 11], 1, "Injection", [256, 2]], ["layer 14", "Injection", "split index 2", "2 splits [64, 32]"]),
        (14, [[13, 12], 1, "Injection", [256, 0]], ["layer 14", "layer 12", "SimConv", "no channel splits"]),
        (14, [13, 1, "Injection", [256, 0]], ["layer 14", "[local, global]"]),
        (21, [-1, 1, "HighStageFusion", [[256, 512], 2, 8, 0]], ["layer 21", "argument 3 (heads)=0"]),
        (21, [-1, 1, "HighStageFusion", [[256, 512], 2, 3, 4, 1.0, 0.5]], ["layer 21", "attn_ratio*key_dim = 0.5*3"]),
        (21, [-1, 1, "HighStageFusion", [[256, 0], 2, 8, 4]], ["layer 21", "list of positive ints"]),
        (13, [[4, 6, 12], 1, "LocalFusion3", [128]], ["layer 13", "LocalFusion3", "c2=32", "got 64 (layer 4)"]),
        (11, [-1, 1, "LowStageFusion", [96, [256, 128], 3, "C2f"]], ["layer 11", "block", "'C2f'"]),
        (28, [[19, 24, 27], 1, "EfficientDecoupledDetect", [0]], ["layer 28", "nc", "must be >= 1"]),
    ],
)
def test_bad_rows_name_layer_module_value(i, row, fragments):
    with pytest.raises(LayerError) as e:
        DetectionModel(set_row(yaml_dict(), i, row), verbose=False)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_end2end_is_refused():
    d = yaml_dict()
    d["end2end"] = True
    with pytest.raises(LayerError, match="layer 28.*end2end"):
        DetectionModel(d, verbose=False)


def test_gather_with_wrong_strides_is_refused_at_build():
    """Low-stage alignment fed [B3, B3, B4, B5]: the build-time stride pass names the layer and both sizes."""
    d = set_row(yaml_dict(), 10, [[4, 4, 6, 9], 1, "LowStageAlign", []])
    with pytest.raises(
        MapSizeError, match=r"layer 10 \(LowStageAlign\): input 0 \(stride 4\) is 32×32, but must be exactly 4× 16×16"
    ):
        DetectionModel(d, verbose=False)


def test_image_size_not_a_multiple_of_32_is_refused():
    model = build("n")
    with torch.no_grad(), pytest.raises(MapSizeError, match=r"layer 10 \(LowStageAlign\).*multiples of 32"):
        model.eval()(torch.zeros(1, 3, 100, 100))


def test_direct_module_errors():
    with pytest.raises(MapSizeError, match="is 5×5, which is not a whole multiple of 2×2"):
        PoolConcat()([torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 2, 2)])
    with pytest.raises(MapSizeError, match="input 2 \\(coarser level\\) is 3×3, but must be exactly 1/2 of 4×4"):
        LocalFusion3(1, 1)([torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3)])
    with pytest.raises(ValueError, match="heads=0"):
        ConvAttention(8, 4, 0)
    with pytest.raises(ValueError, match="end2end"):
        EfficientDecoupledDetect(2, 16, True, (8,))


def test_drop_path_equals_torchvision_stochastic_depth():
    """Our DropPath replaces torchvision's StochasticDepth(p, "row") (whose import costs seconds at start-up): the
    same random draws give the same bytes in training; both are the identity in eval."""
    from torchvision.ops import StochasticDepth

    from ultra_ext.nn.goldyolo import DropPath

    x = torch.randn(16, 8, 5, 5)
    for p in (0.1, 0.5):
        ours, ref = DropPath(p), StochasticDepth(p, "row")
        torch.manual_seed(3)
        a = ours(x)
        torch.manual_seed(3)
        b = ref(x)
        assert torch.equal(a, b) and not torch.equal(a, x)
        assert torch.equal(ours.eval()(x), x)
