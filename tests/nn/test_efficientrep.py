"""EfficientRep / CSPBep blocks: re-parameterisation, block structure and the YAML rows that must fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel

import ultra_ext  # noqa: F401  (activates the integration)
from ultra_ext.integration import LayerError
from ultra_ext.nn.efficientrep import BepC3, BiasConv, BottleRep, RepVGGBlock, SimConv, SimCSPSPPF, SimSPPF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import fused_copy, nudge  # noqa: E402


@pytest.mark.parametrize("c1, c2, s, identity", [(16, 16, 1, True), (16, 32, 1, False), (16, 16, 2, False)])
def test_repvgg_branches_and_fusion(c1, c2, s, identity):
    """Three branches in training (identity only for c1 == c2, s == 1), one 3×3 conv with bias after fuse."""
    block = nudge(RepVGGBlock(c1, c2, 3, s), seed=0)
    assert (block.bn is not None) == identity
    assert block.conv1.conv.kernel_size == (3, 3) and block.conv2.conv.kernel_size == (1, 1)
    assert isinstance(block.act, nn.ReLU)
    x = torch.randn(2, c1, 12, 12)
    with torch.no_grad():
        ref = block(x)
        fused = fused_copy(block)
        out = fused(x)
    assert not hasattr(fused, "conv1") and fused.conv.kernel_size == (3, 3) and fused.conv.bias is not None
    assert out.shape == (2, c2, 12 // s, 12 // s)
    assert (out - ref).abs().max().item() <= 1e-5
    assert ref.min().item() == 0.0  # ReLU really clips (not SiLU)


def test_repvgg_identity_branch_is_really_added():
    """With the 3×3 and 1×1 kernels zeroed, the output is ReLU(BN(x)) of the identity branch alone."""
    block = RepVGGBlock(4, 4).eval()
    with torch.no_grad():
        block.conv1.conv.weight.zero_()
        block.conv2.conv.weight.zero_()
        x = torch.randn(1, 4, 5, 5)
        bn = block.bn
        expected = torch.relu(
            (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var + bn.eps).view(1, -1, 1, 1)
        )
        assert torch.allclose(
            block(x), expected * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1) * (expected > 0)
        )


def test_bias_conv_and_simconv():
    """BiasConv: the conv has a bias (c2 extra params vs Conv) and SiLU; SimConv: ReLU, padding k//2."""
    bc = BiasConv(8, 16, 3, 2)
    assert bc.conv.bias is not None and isinstance(bc.act, nn.SiLU)
    assert sum(p.numel() for p in bc.parameters()) == 8 * 16 * 9 + 16 + 2 * 16
    sc = SimConv(8, 16, 3)
    assert isinstance(sc.act, nn.ReLU) and sc.conv.padding == (1, 1) and sc.conv.bias is None
    x = torch.randn(1, 8, 8, 8)
    assert bc(x).shape == (1, 16, 4, 4) and sc(x).shape == (1, 16, 8, 8)
    ref = nudge(bc, 1)
    with torch.no_grad():
        assert (fused_copy(ref)(x) - ref(x)).abs().max().item() <= 1e-5


def test_bottlerep_learnable_shortcut():
    """alpha is one learnable scalar (init 1) and scales the shortcut; no shortcut when c1 != c2."""
    m = BottleRep(8, 8, RepVGGBlock).eval()
    assert isinstance(m.alpha, nn.Parameter) and m.alpha.shape == (1,) and m.alpha.item() == 1.0
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        inner = m.conv2(m.conv1(x))
        m.alpha.fill_(0.25)
        assert torch.allclose(m(x), inner + 0.25 * x)
    assert not BottleRep(8, 16, RepVGGBlock).shortcut


@pytest.mark.parametrize("n, reps", [(1, 1), (2, 1), (3, 1), (4, 2), (7, 3), (11, 5), (12, 6)])
def test_bepc3_holds_n_halved_bottlereps(n, reps):
    """YOLOv6 RepBlock(block=BottleRep) semantics: max(1, n // 2) BottleReps of two blocks each."""
    m = BepC3(32, 32, n=n, e=2 / 3)
    assert len(m.m) == reps and all(isinstance(b, BottleRep) for b in m.m)
    assert m.cv1.conv.out_channels == int(32 * 2 / 3) == 21


@pytest.mark.parametrize("block, act", [(RepVGGBlock, nn.ReLU), (BiasConv, nn.SiLU)])
def test_bepc3_activation_follows_block(block, act):
    m = BepC3(16, 16, n=2, e=0.5, block=block)
    assert all(isinstance(c.act, act) for c in (m.cv1, m.cv2, m.cv3))
    assert isinstance(m.m[0].conv1, block)
    assert m(torch.randn(1, 16, 8, 8)).shape == (1, 16, 8, 8)


def test_sppf_variants():
    """SimSPPF: stock SPPF structure with ReLU on both convs; SimCSPSPPF: 7 SimConvs, hidden int(c2*e)."""
    sp = SimSPPF(32, 48)
    assert isinstance(sp.cv1.act, nn.ReLU) and isinstance(sp.cv2.act, nn.ReLU) and sp.cv1.conv.out_channels == 16
    assert sp(torch.randn(1, 32, 8, 8)).shape == (1, 48, 8, 8)
    csp = SimCSPSPPF(32, 48)
    assert [getattr(csp, f"cv{i}").conv.out_channels for i in range(1, 8)] == [24, 24, 24, 24, 24, 24, 48]
    assert csp.cv5.conv.in_channels == 4 * 24 and csp.cv7.conv.in_channels == 2 * 24
    assert csp(torch.randn(1, 32, 8, 8)).shape == (1, 48, 8, 8)


# ---------------------------------------------------------------------------------------------- YAML rows
def tiny(tmp_path: Path, rows: list[str]) -> DetectionModel:
    text = "nc: 2\nscales:\n  n: [1.0, 0.25, 1024]\nbackbone:\n" + "".join(f"  - {r}\n" for r in rows)
    text += "head:\n  - [[-1], 1, Detect, [nc]]\n"
    path = tmp_path / "tiny-n.yaml"
    path.write_text(text)
    return DetectionModel(str(path), verbose=False)


def test_rows_build_with_width_scaling_and_repeats(tmp_path):
    model = tiny(
        tmp_path,
        [
            "[-1, 1, RepVGGBlock, [64, 3, 2]]",  # 16 channels at width 0.25
            "[-1, 3, RepVGGBlock, [64]]",  # stacked: 3 blocks
            "[-1, 4, BepC3, [128, 0.5, BiasConv]]",  # 32, 2 BottleReps
            "[-1, 1, SimConv, [128, 3, 2]]",
            "[-1, 1, SimCSPSPPF, [128, 5]]",
        ],
    )
    layers = model.model
    assert layers[0].conv1.conv.out_channels == 16
    assert len(layers[1]) == 3 and all(isinstance(b, RepVGGBlock) for b in layers[1])
    assert isinstance(layers[2], BepC3) and len(layers[2].m) == 2 and isinstance(layers[2].m[0].conv1, BiasConv)
    assert layers[3].conv.stride == (2, 2) and layers[4].cv7.conv.out_channels == 32


@pytest.mark.parametrize(
    "row, fragments",
    [
        ("[-1, 2, RepVGGBlock, [64, 3, 2]]", ["layer 0", "RepVGGBlock", "repeats=2", "s=2"]),
        ("[-1, 1, RepVGGBlock, [64, 5]]", ["layer 0", "kernel size k=5"]),
        ("[-1, 1, BepC3, [64, 0.5, C2f]]", ["layer 0", "BepC3", "'C2f'", "BiasConv", "RepVGGBlock"]),
        ("[-1, 1, BepC3, [64, 0.001]]", ["layer 0", "hidden width", "must be >= 1"]),
        ("[-1, 1, SimSPPF, [64, 4]]", ["layer 0", "argument 1 (k)=4", "odd"]),
        ("[-1, 1, SimConv, [64, 1, 1, 1]]", ["layer 0", "at most 3 arguments"]),
        ("[-1, 1, SimConv, [sixty]]", ["layer 0", "SimConv", "c2='sixty'"]),
    ],
)
def test_bad_rows_name_layer_module_value(tmp_path, row, fragments):
    with pytest.raises(LayerError) as e:
        tiny(tmp_path, [row])
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))
