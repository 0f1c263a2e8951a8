"""YOLOv12 modules and model YAMLs: stock parity, every scale, scale extras, and YAML rows that must fail.

Reference values are the spec's (measured on stock Ultralytics 8.4.190 and the official YAML summaries) or come
from stock Ultralytics' own classes built next to ours. Models are built once per session (module cache).
Runtime: about 20 s on 2 CPU cores with one torch thread.
"""

from __future__ import annotations

import math

import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.modules import block as stock_block
from ultralytics.nn.tasks import DetectionModel

import ultra_ext
from ultra_ext.integration import LayerError
from ultra_ext.nn.attention import AreaSplitError
from ultra_ext.nn.yolov12 import (
    A2C2f,
    A2C2fTurbo,
    AreaAttention,
    AreaAttentionBlock,
    AreaAttentionBlockTurbo,
    AreaAttentionTurbo,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import nudge, randomize_bn  # noqa: E402

SCALES = "nsmlx"
# unfused parameters: v1.0 == stock yolo12{s}.yaml (8.4.190); turbo == the official turbo YAML summaries
V1_PARAMS = {"n": 2_602_288, "s": 9_284_096, "m": 20_199_168, "l": 26_450_784, "x": 59_210_784}
TURBO_PARAMS = {"n": 2_553_904, "s": 9_127_424, "m": 19_670_784, "l": 26_506_496, "x": 59_414_176}
# A2C2f hidden width c_ at layers 6 / 8 (spec §7.2)
HIDDEN = {"n": (64, 128), "s": (128, 256), "m": (256, 256), "l": (256, 256), "x": (384, 384)}
UNITS = {"n": 2, "s": 2, "m": 2, "l": 4, "x": 4}  # A2C2f units at layers 6 / 8 (two ABlocks each)

_models: dict[str, torch.nn.Module] = {}



def build(name: str) -> DetectionModel:
    """Build (once per test session) a model by YAML name; tests must not mutate what they get."""
    if name not in _models:
        torch.manual_seed(0)
        _models[name] = DetectionModel(name, verbose=False)
    return _models[name]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _restore_backend():
    previous = ultra_ext.get_attn_backend()
    yield
    ultra_ext.set_attn_backend(previous)


def randomize(module: torch.nn.Module, seed: int, attn_gain: float = 1.0) -> torch.nn.Module:
    """Random weights that keep activations O(1), random BN statistics, sharp attention; eval mode.

    Conv weights ~ N(0, 1/fan_in) (unit gain), so q·k/sqrt(d) already spreads over about one unit; the q/k/v
    projections get ``attn_gain`` on top to make the softmax sharper still.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                gain = attn_gain if name.endswith(("qkv.conv", "qk.conv")) else 1.0
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * gain / math.sqrt(m.weight[0].numel()))
            elif isinstance(m, torch.nn.BatchNorm2d):
                randomize_bn(m, g)
            if isinstance(getattr(m, "gamma", None), torch.nn.Parameter):
                m.gamma.copy_(torch.rand(m.gamma.shape, generator=g) * 0.5 + 0.5)
    return module.eval()


def shapes(sd: dict) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in sd.items()]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------------------------------------
# module-level stock parity
# --------------------------------------------------------------------------------------------------------
MODULE_PAIRS = [
    # (id, stock factory, ours factory, input shapes); 5×4 and 6×10 with area 4: areas start mid-row
    (
        "AAttn-area1",
        lambda: stock_block.AAttn(64, 2, 1),
        lambda: AreaAttention(64, 2, 1),
        [(2, 64, 8, 8), (1, 64, 7, 3)],
    ),
    (
        "AAttn-area4",
        lambda: stock_block.AAttn(64, 2, 4),
        lambda: AreaAttention(64, 2, 4),
        [(2, 64, 8, 8), (2, 64, 5, 4), (1, 64, 6, 10)],
    ),
    (
        "ABlock-area4",
        lambda: stock_block.ABlock(64, 2, 1.2, 4),
        lambda: AreaAttentionBlock(64, 2, 1.2, 4),
        [(2, 64, 8, 8), (2, 64, 5, 4)],
    ),
    (
        "A2C2f-a2-area4",
        lambda: stock_block.A2C2f(48, 128, 1, True, 4),
        lambda: A2C2f(48, 128, 1, True, 4),
        [(2, 48, 8, 8), (1, 48, 6, 10)],
    ),
    (
        "A2C2f-a2-residual",
        lambda: stock_block.A2C2f(128, 128, 1, True, 1, True, 1.2),
        lambda: A2C2f(128, 128, 1, True, 1, True, 1.2),
        [(2, 128, 6, 6), (1, 128, 3, 7)],
    ),
    (
        "A2C2f-C3k",
        lambda: stock_block.A2C2f(96, 64, 2, False, -1),
        lambda: A2C2f(96, 64, 2, False, -1),
        [(2, 96, 8, 8)],
    ),
]


PAIR_IDS = [p[0] for p in MODULE_PAIRS]
PAIRS = [p[1:] for p in MODULE_PAIRS]


@pytest.mark.parametrize("stock_fn,ours_fn,input_shapes", PAIRS, ids=PAIR_IDS)
def test_module_state_dict_and_outputs_match_stock(stock_fn, ours_fn, input_shapes):
    """Same keys and shapes; weights load both ways; fp32 outputs within 1e-5 on both backends."""
    stock, ours = stock_fn(), ours_fn()
    assert shapes(stock.state_dict()) == shapes(ours.state_dict())
    for seed, (src, dst) in enumerate([(stock, ours), (ours, stock)]):
        randomize(src, seed=seed + 10)
        dst.load_state_dict(src.state_dict(), strict=True)
        dst.eval()
        for i, shape in enumerate(input_shapes):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(i))
            with torch.no_grad():
                ref = stock(x)
                for backend in ("math", "sdpa"):
                    with ultra_ext.attn_backend(backend):
                        out = ours(x)
                    assert out.shape == ref.shape
                    assert max_diff(out, ref) <= 1e-5, (backend, shape, max_diff(out, ref), ref.abs().max().item())


@pytest.mark.parametrize("stock_fn,ours_fn,input_shapes", PAIRS, ids=PAIR_IDS)
def test_module_matches_stock_fp64_sharp_attention(stock_fn, ours_fn, input_shapes):
    """Sharper attention (q/k/v gain 2.5) amplifies fp32 rounding through chained blocks; in fp64 the
    functions are equal to rounding error."""
    stock, ours = stock_fn().double(), ours_fn().double()
    randomize(stock, seed=20, attn_gain=2.5)
    ours.load_state_dict(stock.state_dict(), strict=True)
    ours.eval()
    for i, shape in enumerate(input_shapes):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        with torch.no_grad():
            ref = stock(x)
            for backend in ("math", "sdpa"):
                with ultra_ext.attn_backend(backend):
                    assert max_diff(ours(x), ref) <= 1e-10 * max(1.0, ref.abs().max().item()), backend


@pytest.mark.parametrize("gain,threshold", [(1.0, 2 / 16), (2.5, 4 / 16)])
def test_randomized_attention_is_sharp(gain, threshold):
    """Guard for the parity tests above: the randomized attention is far from uniform (not a trivial average)."""
    m = randomize(AreaAttention(64, 2, 4), seed=10, attn_gain=gain)
    x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = m.qkv(x).reshape(2, 2, 96, 64)  # (B, h, 3d, N)
    q, k = t[:, :, :32, :16], t[:, :, 32:64, :16]  # first area, per head
    p = torch.softmax(q.transpose(-1, -2) @ k / 32**0.5, dim=-1)  # (B, h, 16, 16)
    assert p.amax(-1).mean() > threshold  # uniform would be 1/16


# --------------------------------------------------------------------------------------------------------
# whole-model stock parity
# --------------------------------------------------------------------------------------------------------
def test_stock_yaml_still_builds_stock_classes():
    stock, ours = build("yolo12n.yaml"), build("yolov12n.yaml")
    assert ultra_ext.is_active()
    assert type(stock.model[6]) is stock_block.A2C2f
    assert type(stock.model[6].m[0][0]) is stock_block.ABlock
    assert type(ours.model[6]) is A2C2f
    assert type(ours.model[6].m[0][0].attn) is AreaAttention


@pytest.fixture(scope="module")
def n_pair():
    """Stock yolo12n and our yolov12n, weights loaded both ways strictly, with nudged BN statistics."""
    torch.manual_seed(0)
    stock, ours = DetectionModel("yolo12n.yaml", verbose=False), DetectionModel("yolov12n.yaml", verbose=False)
    assert shapes(stock.state_dict()) == shapes(ours.state_dict())
    nudge(ours, seed=1)
    stock.load_state_dict(ours.state_dict(), strict=True)  # ours -> stock
    nudge(stock, seed=2)
    ours.load_state_dict(stock.state_dict(), strict=True)  # stock -> ours
    assert all(torch.equal(a, b) for a, b in zip(stock.state_dict().values(), ours.state_dict().values()))
    return stock.eval(), ours.eval()


@pytest.mark.parametrize("hw", [(320, 320), (256, 384), (288, 416)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_whole_model_matches_stock_fp32(n_pair, hw):
    """288×416: the P4 map is 18×26, so its 4 areas of 117 tokens start mid-row."""
    stock, ours = n_pair
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(hw[1]))
    with torch.no_grad():
        ref_y, ref = stock(x)
        for backend in ("math", "sdpa"):
            with ultra_ext.attn_backend(backend):
                y, raw = ours(x)
            assert y.shape == ref_y.shape == (2, 84, hw[0] * hw[1] // 64 * 21 // 16)
            for key in ("boxes", "scores"):  # raw head outputs, O(1)
                assert max_diff(raw[key], ref[key]) <= 1e-5, (backend, key)
            for a, b in zip(raw["feats"], ref["feats"]):
                assert max_diff(a, b) <= 1e-5, backend
            # decoded boxes are in pixels (hundreds): same tolerance relative to their scale
            assert max_diff(y, ref_y) <= 1e-5 * ref_y.abs().max().item(), backend


def test_whole_model_matches_stock_fp64_sharp_attention():
    """Strongly randomized weights (sharp attention everywhere) in float64: equal to rounding error."""
    torch.manual_seed(0)
    stock, ours = DetectionModel("yolo12n.yaml", verbose=False), DetectionModel("yolov12n.yaml", verbose=False)
    randomize(stock, seed=3)
    ours.load_state_dict(stock.state_dict(), strict=True)
    stock.double().eval(), ours.double().eval()
    x = torch.randn(1, 3, 160, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # P4 10×14
    with torch.no_grad():
        ref_y, ref = stock(x)
        for backend in ("math", "sdpa"):
            with ultra_ext.attn_backend(backend):
                y, raw = ours(x)
            scale = max(t.abs().max().item() for t in ref["feats"])
            assert max(max_diff(a, b) for a, b in zip(raw["feats"], ref["feats"])) <= 1e-9 * scale
            assert max_diff(y, ref_y) <= 1e-9 * ref_y.abs().max().item()


# --------------------------------------------------------------------------------------------------------
# every scale
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s", SCALES)
def test_v1_scale_matches_stock(s):
    ours, stock = build(f"yolov12{s}.yaml"), build(f"yolo12{s}.yaml")
    assert n_params(ours) == n_params(stock) == V1_PARAMS[s]
    assert shapes(ours.state_dict()) == shapes(stock.state_dict())
    assert ours.yaml["scale"] == s


@pytest.mark.parametrize("s", SCALES)
def test_turbo_scale_params(s):
    m = build(f"yolov12{s}-turbo.yaml")
    assert n_params(m) == TURBO_PARAMS[s]
    assert m.yaml["scale"] == s
    assert type(m.model[6]) is A2C2fTurbo and type(m.model[8]) is A2C2fTurbo
    assert type(m.model[6].m[0][0]) is AreaAttentionBlockTurbo
    assert m.model[1].conv.groups == 2 and m.model[3].conv.groups == 4


@pytest.mark.parametrize("s", "ns")
def test_turbo_both_names_build_the_same_model(s):
    a, b = build(f"yolov12{s}-turbo.yaml"), build(f"yolov12-turbo-{s}.yaml")
    assert b.yaml["scale"] == s
    assert n_params(b) == TURBO_PARAMS[s]
    assert shapes(a.state_dict()) == shapes(b.state_dict())
    assert [type(x) for x in a.modules()] == [type(x) for x in b.modules()]


@pytest.mark.parametrize("layout", ["v1", "turbo"])
@pytest.mark.parametrize("s", SCALES)
def test_scale_extras(s, layout):
    """L/X: gamma (0.01) on layers 6 and 8 only, MLP 1.2 (v1.0) / 1.5 (turbo); N/S/M: no gamma, MLP 2.0."""
    model = build(f"yolov12{s}-turbo.yaml" if layout == "turbo" else f"yolov12{s}.yaml")
    big = s in "lx"
    ratio = (1.5 if layout == "turbo" else 1.2) if big else 2.0
    attn_cls, pe_k = (AreaAttentionTurbo, 5) if layout == "turbo" else (AreaAttention, 7)
    with_gamma = {i for i, m in enumerate(model.model) if getattr(m, "gamma", None) is not None}
    assert with_gamma == ({6, 8} if big else set())
    for layer, c_, area in ((6, HIDDEN[s][0], 4), (8, HIDDEN[s][1], 1)):
        a2c2f = model.model[layer]
        if big:
            assert torch.equal(a2c2f.gamma.detach(), torch.full((a2c2f.cv2.conv.out_channels,), 0.01))
        assert len(a2c2f.m) == UNITS[s] and all(len(unit) == 2 for unit in a2c2f.m)
        for block in (b for unit in a2c2f.m for b in unit):
            assert type(block.attn) is attn_cls
            assert block.attn.area == area and block.attn.num_heads == c_ // 32 and block.attn.head_dim == 32
            assert block.attn.pe.conv.kernel_size == (pe_k, pe_k)
            assert block.mlp[0].conv.in_channels == c_
            assert block.mlp[0].conv.out_channels == int(c_ * ratio)
    for layer in (11, 14, 17):  # neck rows: C3k units, no attention, no gamma
        assert type(model.model[layer].m[0]) is stock_block.C3k
        assert model.model[layer].gamma is None


@pytest.mark.parametrize("name", [f"yolov12{s}.yaml" for s in SCALES] + [f"yolov12{s}-turbo.yaml" for s in SCALES])
def test_forward_shapes_at_320(name):
    model = build(name)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    model.train()
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, 320, 320))
    finally:
        model.eval()
    feats = out["feats"]
    assert [tuple(f.shape[2:]) for f in feats] == [(40, 40), (20, 20), (10, 10)]
    chans = [model.model[i].cv2.conv.out_channels for i in (14, 17, 20)]
    assert [f.shape[:2] for f in feats] == [(1, c) for c in chans]
    assert tuple(out["boxes"].shape) == (1, 64, 2100) and tuple(out["scores"].shape) == (1, 80, 2100)


# --------------------------------------------------------------------------------------------------------
# bad input: YAML rows through the parser, and direct calls
# --------------------------------------------------------------------------------------------------------
TINY = """\
nc: 2
backbone:
  - [-1, 1, Conv, [32, 3, 2]] # 0 /2
  - [-1, 1, Conv, [64, 3, 2]] # 1 /4
  - [-1, 1, Conv, [64, 3, 2]] # 2 /8
  - [-1, 1, Conv, [64, 3, 2]] # 3 /16
  - {row} # 4 /16
  - [-1, 1, Conv, [64, 3, 2]] # 5 /32
head:
  - [[2, 4, 5], 1, Detect, [nc]]
"""


def tiny_model(tmp_path, row: str, name: str = "tiny.yaml") -> DetectionModel:
    f = tmp_path / name
    f.write_text(TINY.format(row=row))
    return DetectionModel(str(f), verbose=False)


def test_tiny_yaml_builds(tmp_path):
    """The template itself is valid: the failures below come from the row under test."""
    m = tiny_model(tmp_path, "[-1, 1, ultra_ext.A2C2f, [64, True, 4]]")
    assert type(m.model[4]) is A2C2f and m.model[4].m[0][0].attn.area == 4


@pytest.mark.parametrize(
    "row,fragments",
    [
        # c2=80 at width 1.0 -> hidden int(80*0.5) = 40, not a multiple of 32
        ("[-1, 1, ultra_ext.A2C2f, [80, True, 1]]", ["= 40", "multiple of the head width 32"]),
        ("[-1, 1, ultra_ext.A2C2fTurbo, [96, True, 1, False, 2.0, 0.5]]", ["= 48", "multiple of the head width 32"]),
        # a string where a number belongs
        ("[-1, 1, ultra_ext.A2C2f, [64, True, four]]", ["area", "'four'"]),
        ("[-1, 1, ultra_ext.A2C2f, [wide, True, 1]]", ["c2", "'wide'"]),
        ("[-1, 1, ultra_ext.A2C2f, [64, True, 1, False, 2.0, half]]", ["e='half'"]),
        # residual needs c1 == c2 (input is 64 channels)
        ("[-1, 1, ultra_ext.A2C2f, [128, True, 1, True]]", ["residual", "c1=64, c2=128"]),
        # zero repeats
        ("[-1, 0, ultra_ext.A2C2f, [64, True, 1]]", ["repeats", "got 0"]),
        # extra arguments are rejected, not ignored
        ("[-1, 1, ultra_ext.A2C2f, [64, True, 1, False, 2.0, 0.5, 1, True, 7]]", ["at most 8", "7"]),
    ],
    ids=["hidden40", "hidden48-turbo", "area-str", "c2-str", "e-str", "residual", "zero-repeats", "arity"],
)
def test_bad_rows_name_layer_module_value(tmp_path, row, fragments):
    with pytest.raises(LayerError) as e:
        tiny_model(tmp_path, row)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "layer 4" in msg and ("A2C2fTurbo" if "Turbo" in row else "A2C2f") in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_area_not_dividing_tokens_at_build(tmp_path):
    """DetectionModel runs a 256×256 forward for the strides: the 16×16 map has 256 tokens, 256 % 5 == 1."""
    with pytest.raises(AreaSplitError) as e:
        tiny_model(tmp_path, "[-1, 1, ultra_ext.A2C2f, [64, True, 5]]")
    msg = str(e.value)
    assert "layer 4" in msg and "A2C2f" in msg and "(16, 16)" in msg and "256 tokens" in msg and "area=5" in msg


def test_area_not_dividing_tokens_at_forward(tmp_path):
    model = tiny_model(tmp_path, "[-1, 1, ultra_ext.A2C2fTurbo, [64, True, 8]]").eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 128))  # 4×8 = 32 tokens at stride 16: fine
        with pytest.raises(AreaSplitError) as e:
            model(torch.zeros(1, 3, 32, 96))  # 2×6 = 12 tokens, 12 % 8 == 4
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "layer 4" in msg and "A2C2fTurbo" in msg and "(2, 6)" in msg and "12 tokens" in msg and "area=8" in msg


def test_direct_construction_and_call_errors():
    with pytest.raises(ValueError, match="64.*3 heads"):
        AreaAttention(64, 3)
    with pytest.raises(ValueError, match="= 40 must be a positive multiple of the head width 32"):
        A2C2f(64, 80)
    with pytest.raises(ValueError, match="c1=64, c2=128"):
        A2C2f(64, 128, 1, True, 1, True)
    with pytest.raises(AreaSplitError, match=r"A2C2f.*\(3, 5\).*15 tokens.*area=4"):
        A2C2f(64, 64, 1, True, 4).eval()(torch.randn(1, 64, 3, 5))
