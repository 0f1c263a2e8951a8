"""Cost reporter: published parameter/GFLOP figures, exact stock values, and the attention matmul term.

Each of the ten YOLOv12 models is built and profiled at 640 once (module-level cache). Runtime: about 18 s on
2 CPU cores with one torch thread, most of it building and profiling the L/X models.
"""

from __future__ import annotations

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

import ultra_ext
from ultra_ext.nn.yolov12 import AreaAttention, AreaAttentionTurbo
from ultra_ext.bench.cost import Cost, format_costs, model_cost

IMGSZ = 640
# published (README / paper Table 1): fused, conv-only; params in M, GFLOPs, both rounded to 0.1
PAPER = {
    "yolov12n.yaml": (2.6, 6.5),
    "yolov12s.yaml": (9.3, 21.4),
    "yolov12m.yaml": (20.2, 67.5),
    "yolov12l.yaml": (26.4, 88.9),
    "yolov12x.yaml": (59.1, 199.0),
    "yolov12n-turbo.yaml": (2.5, 6.0),
    "yolov12s-turbo.yaml": (9.1, 19.4),
    "yolov12m-turbo.yaml": (19.6, 59.8),
    "yolov12l-turbo.yaml": (26.5, 82.4),
    "yolov12x-turbo.yaml": (59.3, 184.6),
}
# measured on stock Ultralytics 8.4.190 yolo12{s}.yaml (spec §8): fused params, fused conv-only GFLOPs
STOCK_FUSED = {
    "yolov12n.yaml": (2_590_824, 6.49),
    "yolov12s.yaml": (9_261_840, 21.38),
    "yolov12m.yaml": (20_166_592, 67.45),
    "yolov12l.yaml": (26_400_752, 88.88),
    "yolov12x.yaml": (59_135_744, 199.02),
}

_cache: dict[str, tuple[Cost, float]] = {}


def attention_gflops(model: torch.nn.Module, imgsz: int) -> float:
    """Σ over area-attention layers of 4·N²·C/area (q kᵀ and attn·v, 2 FLOPs per MAC), N tokens at ``imgsz``.

    Each layer's stride is read from a small forward pass (64×64): N = (imgsz / stride)².
    """
    strides = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: strides.__setitem__(mod, 64 // inp[0].shape[-1]))
        for m in model.modules()
        if isinstance(m, (AreaAttention, AreaAttentionTurbo))
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    assert strides, "no area-attention layers found"
    total = 0.0
    for m, stride in strides.items():
        n_tokens = (imgsz // stride) ** 2
        width = m.num_heads * m.head_dim
        total += 4 * n_tokens**2 * width / m.area
    return total / 1e9


def cost_of(name: str) -> tuple[Cost, float]:
    """(model_cost at 640, analytic attention GFLOPs at 640), computed once per model."""
    if name not in _cache:
        torch.manual_seed(0)
        model = DetectionModel(name, verbose=False)
        cost = model_cost(model, IMGSZ, name=name)
        _cache[name] = (cost, attention_gflops(model, IMGSZ))
        print("\n" + format_costs([cost]))
    return _cache[name]


def close_to_paper(measured: float, published: float) -> bool:
    """Within 1 %, or equal after rounding to the paper's precision (0.1)."""
    return abs(measured - published) <= 0.01 * published or round(measured, 1) == published


@pytest.mark.parametrize("name", list(PAPER))
def test_fused_conv_only_matches_paper(name):
    cost, _ = cost_of(name)
    params_m, gflops = PAPER[name]
    print(
        f"{name}: fused {cost.params_fused / 1e6:.3f}M / {cost.gflops_conv_fused:.2f} GFLOPs conv-only "
        f"(paper {params_m}M / {gflops}G); with attention {cost.gflops_attn_fused:.2f} fused, "
        f"{cost.gflops_attn:.2f} unfused"
    )
    assert close_to_paper(cost.params_fused / 1e6, params_m), (cost.params_fused, params_m)
    assert close_to_paper(cost.gflops_conv_fused, gflops), (cost.gflops_conv_fused, gflops)
    # the conventions are ordered: fusing removes BN params/FLOPs, attention matmuls add FLOPs
    assert cost.params_fused < cost.params
    assert cost.gflops_conv_fused < cost.gflops_conv < cost.gflops_attn
    assert cost.gflops_conv_fused < cost.gflops_attn_fused < cost.gflops_attn


@pytest.mark.parametrize("name", list(STOCK_FUSED))
def test_v1_fused_values_equal_stock(name):
    cost, _ = cost_of(name)
    params_fused, gflops = STOCK_FUSED[name]
    assert cost.params_fused == params_fused
    assert abs(cost.gflops_conv_fused - gflops) <= 0.005


def test_v1_n_exact_values():
    cost, _ = cost_of("yolov12n.yaml")
    assert cost.params == 2_602_288
    assert cost.params_fused == 2_590_824
    assert abs(cost.gflops_conv_fused - 6.49) <= 0.005
    assert abs(cost.gflops_attn - 7.63) <= 0.005  # what stock 8.4.190 model.info() prints for yolo12n
    assert cost.imgsz == IMGSZ and cost.name == "yolov12n.yaml"


@pytest.mark.parametrize("name", list(PAPER))
def test_attention_term_is_the_analytic_matmul_flops(name):
    cost, analytic = cost_of(name)
    assert analytic > 0.5  # non-trivial: n is 0.98 GFLOPs, x 9.83
    assert abs((cost.gflops_attn - cost.gflops_conv) - analytic) <= 0.01
    assert abs((cost.gflops_attn_fused - cost.gflops_conv_fused) - analytic) <= 0.01


def test_attention_term_independent_of_backend_and_equal_to_stock():
    """The count does not depend on the kernel that runs (SDPA vs explicit matmuls), nor on stock vs ours."""
    ours, _ = cost_of("yolov12n.yaml")
    with ultra_ext.attn_backend("math"):
        math = model_cost(DetectionModel("yolov12n.yaml", verbose=False), IMGSZ)
    stock = model_cost(DetectionModel("yolo12n.yaml", verbose=False), IMGSZ)
    for other in (math, stock):
        assert other.params == ours.params and other.params_fused == ours.params_fused
        for field in ("gflops_conv", "gflops_conv_fused", "gflops_attn", "gflops_attn_fused"):
            assert abs(getattr(other, field) - getattr(ours, field)) <= 1e-6, field


def test_cost_scales_with_input_and_leaves_model_untouched():
    model = DetectionModel("yolov12n.yaml", verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = model_cost(model, 320)
    assert sum(p.numel() for p in model.parameters()) == 2_602_288  # not fused in place
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    big, analytic_640 = cost_of("yolov12n.yaml")
    # conv FLOPs scale with pixels (4×); attention matmuls with pixels² per area (16×)
    assert abs(big.gflops_conv / small.gflops_conv - 4) < 1e-6
    assert abs((small.gflops_attn - small.gflops_conv) - analytic_640 / 16) <= 0.01
    assert abs((small.gflops_attn - small.gflops_conv) - attention_gflops(model, 320)) <= 0.01
