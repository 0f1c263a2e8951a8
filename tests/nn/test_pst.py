"""PST: attention against plain-torch references (coarse only; the fine stage with topk = every coarse token is
dense attention over the fine map), the top-k switch, the gate policy, determinism, every scale of both YAMLs,
dynamic ONNX with the fine stage on and off, and the inputs that must fail.

Runtime: about 30 s on 2 CPU cores with one torch thread.
"""

from __future__ import annotations

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
from ultra_ext.nn.pst import PST, PyramidSparseAttention, set_pst_options
from ultra_ext.nn.shapes import MapSizeError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import nudge  # noqa: E402

D = 32  # head width


def reference(m: PyramidSparseAttention, x: torch.Tensor, upper: torch.Tensor, fine_idx=None, gate=None):
    """Plain-torch PST attention. ``fine_idx``: (B, h, K) fine-token ids the fine stage attends to (None = coarse
    only); ``gate``: the mixing weight of the fine output (a float, or None for the learned gate)."""
    b, c, h, w = x.shape
    heads = c // D
    q = m.q(x).reshape(b, heads, D, h * w).transpose(-1, -2)  # (B, h, N, d)
    kv = m.kv(upper).reshape(b, heads, 2 * D, -1)  # per head: [k | v]
    k, v = kv[:, :, :D].transpose(-1, -2), kv[:, :, D:].transpose(-1, -2)  # (B, h, M, d)
    out = ((q @ k.transpose(-1, -2)) * D**-0.5).softmax(-1) @ v
    if fine_idx is not None:
        kvf = m.kv(x).reshape(b, heads, 2 * D, h * w)
        kf = torch.stack([kvf[i, j, :D, fine_idx[i, j]].T for i in range(b) for j in range(heads)]).reshape(
            b, heads, -1, D
        )
        vf = torch.stack([kvf[i, j, D:, fine_idx[i, j]].T for i in range(b) for j in range(heads)]).reshape(
            b, heads, -1, D
        )
        fine = ((q @ kf.transpose(-1, -2)) * D**-0.5).softmax(-1) @ vf
        if gate is None:
            z = torch.cat((out, fine), -1)  # (B, h, N, 2d)
            gate = torch.sigmoid(z @ m.gate_conv1d.weight.squeeze(-1).T + m.gate_conv1d.bias)
        out = gate * fine + (1 - gate) * out
    out = out.transpose(-1, -2).reshape(b, c, h, w)
    pe = F.interpolate(
        m.pe(kv[:, :, D:].reshape(b, c, *upper.shape[-2:])), size=(h, w), mode="bilinear", align_corners=False
    )
    return m.proj(out + pe)


@pytest.fixture
def attn():
    torch.manual_seed(0)
    return nudge(PyramidSparseAttention(64), seed=1)


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(2)
    return torch.randn(2, 64, 8, 12, generator=g), torch.randn(2, 64, 4, 6, generator=g)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_coarse_only_matches_plain_torch(attn, pair, backend):
    attn.configure(topk=0)
    attn.attn_backend = backend
    with torch.no_grad():
        assert (attn(*pair) - reference(attn, *pair)).abs().max().item() < 1e-5
    assert attn.last_backend == backend


def test_fine_stage_with_every_coarse_token_is_dense_attention(attn, pair):
    """topk = M: the 4·M gathered fine tokens are all N fine tokens → dense attention over kv(x)."""
    attn.configure(topk=24, gate="fixed")
    n = 8 * 12
    every = torch.arange(n).expand(2, 2, n)
    with torch.no_grad():
        assert (attn(*pair) - reference(attn, *pair, fine_idx=every, gate=0.5)).abs().max().item() < 1e-5


def test_fine_stage_picks_the_2x2_patches_under_the_top_coarse_tokens(attn, pair):
    """The selected coarse ids (highest mean pre-softmax score over queries) map to their 2×2 fine patches."""
    attn.configure(topk=3, gate="learned")
    x, upper = pair
    with torch.no_grad():
        q = attn.q(x).reshape(2, 2, D, -1).transpose(-1, -2)
        k = attn.kv(upper).reshape(2, 2, 2 * D, -1)[:, :, :D].transpose(-1, -2)
        saliency = ((q @ k.transpose(-1, -2)) * D**-0.5).mean(2)  # (B, h, M), via the full score matrix
        top = saliency.topk(3, -1).indices
        r, c = top // 6, top % 6
        fine = torch.cat([(2 * r + dr) * 12 + 2 * c + dc for dr in (0, 1) for dc in (0, 1)], -1)
        expected = reference(attn, x, upper, fine_idx=fine)
        assert (attn(x, upper) - expected).abs().max().item() < 1e-5


def test_inference_is_deterministic(attn, pair):
    attn.configure(topk=8)
    with torch.no_grad():
        torch.manual_seed(0)
        a = attn(*pair)
        torch.manual_seed(123)
        b = attn(*pair)
    assert torch.equal(a, b)


def test_gumbel_is_training_only_and_opt_in(attn, pair):
    attn.configure(topk=2, train_topk=2, gumbel=True)
    x, upper = pair
    q = torch.randn(2, 96, 2, D)
    k = torch.randn(2, 24, 2, D)
    attn.eval()
    assert torch.equal(attn.select(q, k, 2), attn.select(q, k, 2))
    attn.train()
    picks = {tuple(attn.select(q, k, 2).flatten().tolist()) for _ in range(20)}
    assert len(picks) > 1  # noise changes the selection
    attn.configure(gumbel=False)
    assert len({tuple(attn.select(q, k, 2).flatten().tolist()) for _ in range(5)}) == 1


def test_gate_policy(attn, pair):
    """Untrained gate: fixed 0.5 in 'auto' (not its random init); 'learned' uses the stored weights; a training
    step with the fine stage on gives the gate a gradient and marks it trained."""
    x, upper = pair
    attn.configure(topk=4, train_topk=4)
    with torch.no_grad():
        out_auto = attn(x, upper)
        attn.configure(gate="fixed")
        assert torch.equal(attn(x, upper), out_auto)
        attn.configure(gate="learned")
        assert not torch.allclose(attn(x, upper), out_auto)
    attn.configure(gate="auto")
    assert attn.gate_trained.item() == 0.0
    attn.train()
    attn(x, upper).square().mean().backward()
    assert attn.gate_conv1d.weight.grad is not None and attn.gate_conv1d.weight.grad.abs().sum() > 0
    assert attn.gate_trained.item() == 1.0
    attn.eval()
    with torch.no_grad():
        learned = attn(x, upper)
        attn.configure(gate="learned")
        assert torch.equal(attn(x, upper), learned)  # once trained, auto == learned


def test_coarse_only_training_leaves_the_gate_untrained(attn, pair):
    attn.configure(topk=8, train_topk=0)
    attn.train()
    attn(*pair).square().mean().backward()
    assert attn.gate_conv1d.weight.grad is None and attn.gate_trained.item() == 0.0


def test_gate_flag_survives_ultralytics_ema():
    """Ultralytics' ModelEMA averages floating-point state only: the flag is a float, so the EMA copy sees it."""
    from ultralytics.utils.torch_utils import ModelEMA

    model = torch.nn.Sequential(PyramidSparseAttention(32, topk=1, train_topk=1))
    ema = ModelEMA(model)
    model.train()
    model[0](torch.randn(1, 32, 4, 4), torch.randn(1, 32, 2, 2)).sum().backward()
    ema.update(model)
    assert ema.ema[0].gate_trained.item() > 0


# -------------------------------------------------------------------------------------------------- PST layer
def test_pst_layer_structure_and_published_names():
    m = PST(64, 96, 128, n=2, mlp_ratio=2.0, e=0.5)
    names = {k.split(".")[0] for k in m.state_dict()}
    assert names == {"cv1", "cvup", "cv2", "attnlayer_0", "attnlayer_1"}
    assert m.cv1.conv.out_channels == m.cvup.conv.out_channels == 64 and m.cv2.conv.in_channels == 3 * 64
    assert m.attnlayer_0.attn.heads == 2 and m.attnlayer_0.mlp[0].conv.out_channels == 128
    assert tuple(m.attnlayer_0.attn.gate_conv1d.weight.shape) == (32, 64, 1)
    assert m([torch.randn(1, 64, 8, 8), torch.randn(1, 96, 4, 4)]).shape == (1, 128, 8, 8)


def test_set_pst_options_reaches_every_module():
    model = DetectionModel("yolo11n-pst.yaml", verbose=False)
    assert set_pst_options(model, topk=4, train_topk=2, gate="fixed") == 2
    attns = [m for m in model.modules() if isinstance(m, PyramidSparseAttention)]
    assert [(a.topk, a.train_topk, a.gate_mode) for a in attns] == [(4, 2, "fixed")] * 2
    with pytest.raises(ValueError, match="gate must be one of"):
        set_pst_options(model, gate="random")
    with pytest.raises(ValueError, match="topk must be an int >= 0"):
        set_pst_options(model, topk=-1)


# ------------------------------------------------------------------------------------------------ whole models
# unfused parameters (nc 80); yolov12-pst n/s/m equal the published release's (its model summary)
PARAMS = {
    "yolo11n-pst.yaml": 2_606_544, "yolov12n-pst.yaml": 2_617_232, "yolov12s-pst.yaml": 9_320_064,
    "yolov12m-pst.yaml": 20_176_832, "yolov12l-pst.yaml": 26_208_736, "yolo11x-pst.yaml": 55_123_232,
}  # fmt: skip


@pytest.mark.parametrize("name", list(PARAMS))
def test_scales_build_with_stable_params(name):
    model = DetectionModel(name, verbose=False)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    rows = [i for i, m in enumerate(model.model) if isinstance(m, PST)]
    assert rows == ([13, 16] if name.startswith("yolo11") else [11, 14])
    blocks = 2 if name[len("yolov12") if "v12" in name else len("yolo11")] in "lx" else 1
    assert all(model.model[i].n == blocks for i in rows)
    with torch.no_grad():
        y = model.eval()(torch.zeros(1, 3, 128, 128))
    assert y[0].shape == (1, 84, 16 * 16 + 8 * 8 + 4 * 4)


@pytest.mark.parametrize("name", ["yolo11-pst.yaml", "yolov12-pst.yaml"])
def test_all_scales_n_to_x_build(name):
    d = yaml_model_load(name)
    for scale in "nslmx":
        d = deepcopy(yaml_model_load(name))
        d["scale"] = scale
        model = DetectionModel(d, verbose=False)
        assert sum(isinstance(m, PST) for m in model.model) == 2


def test_yaml_topk_arguments():
    d = deepcopy(yaml_model_load("yolo11n-pst.yaml"))
    d["head"][2] = [[-1, 10], 2, "PST", [512, 2.0, 0.5, 4, 2]]
    model = DetectionModel(d, verbose=False)
    a = model.model[13].attnlayer_0.attn
    assert (a.topk, a.train_topk) == (4, 2)


def test_fine_stage_cost_is_small():
    """The fine stage adds a 1×1 kv conv on the fine map and 4·topk-key attention: yolo11n-pst +1.5% GFLOPs."""
    from ultra_ext.bench.cost import model_cost

    model = DetectionModel("yolo11n-pst.yaml", verbose=False)
    set_pst_options(model, topk=0)
    coarse = model_cost(model, 320)
    set_pst_options(model, topk=8)
    fine = model_cost(model, 320)
    assert coarse.params == fine.params
    assert 0 < fine.gflops_attn_fused - coarse.gflops_attn_fused < 0.03 * coarse.gflops_attn_fused


@pytest.mark.parametrize("topk", [0, 8])
def test_onnx_dynamic_parity_fine_stage_on_and_off(tmp_path, topk):
    import onnxruntime as ort

    model = nudge(DetectionModel("yolo11n-pst.yaml", verbose=False), seed=3)
    set_pst_options(model, topk=topk, gate="learned")
    fused = deepcopy(model).fuse(verbose=False)
    head = fused.model[-1]
    head.export, head.dynamic = True, True
    path = tmp_path / f"pst-k{topk}.onnx"
    torch.onnx.export(
        fused, torch.zeros(1, 3, 256, 256), str(path), opset_version=18, dynamo=False,
        input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
    )  # fmt: skip
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("TopK" in ops) == (topk > 0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in ((256, 256), (192, 320)):
        x = torch.rand(1, 3, *hw)
        with torch.no_grad():
            ref = model(x)[0].numpy()
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == ref.shape
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel <= 1e-5, (hw, rel)


# ---------------------------------------------------------------------------------------------------- bad input
def test_topk_above_coarse_tokens_names_the_layer():
    model = DetectionModel("yolo11n-pst.yaml", verbose=False).eval()
    set_pst_options(model, topk=20)  # 64×64 input: layer 13's coarse map is 2×2 = 4 tokens
    with torch.no_grad(), pytest.raises(ValueError, match=r"layer 13 \(PST\): topk=20 exceeds the 4 coarse tokens"):
        model(torch.zeros(1, 3, 64, 64))


def test_coarse_map_not_half_the_fine_map_is_refused():
    d = deepcopy(yaml_model_load("yolo11n-pst.yaml"))
    d["head"][2] = [[-1, 4], 2, "PST", [512, 2.0, 0.5]]  # keys/values from P3 (80²) for a 40² query map
    with pytest.raises(
        MapSizeError, match=r"layer 13 \(PST\): input 0 \(fine map\) is \d+×\d+, but must be exactly 2×"
    ):
        DetectionModel(d, verbose=False)


@pytest.mark.parametrize(
    "args, fragments",
    [
        ([512, 2.0, 0.3], ["layer 13", "PST", "int(128*0.3) = 38", "multiple of the head width 32"]),
        ([512, 2.0, 0.5, -1], ["layer 13", "argument 3 (topk)=-1"]),
        ([512, 2.0, 0.5, 8, 0, 1], ["layer 13", "at most 5 arguments"]),
    ],
)
def test_bad_rows(args, fragments):
    d = deepcopy(yaml_model_load("yolo11n-pst.yaml"))
    d["head"][2] = [[-1, 10], 2, "PST", args]
    with pytest.raises(LayerError) as e:
        DetectionModel(d, verbose=False)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_single_input_row_is_refused():
    d = deepcopy(yaml_model_load("yolo11n-pst.yaml"))
    d["head"][2] = [-1, 2, "PST", [512]]
    with pytest.raises(LayerError, match=r"layer 13.*\[fine, coarse\]"):
        DetectionModel(d, verbose=False)


def test_backend_switch_applies(pair):
    m = PyramidSparseAttention(64, topk=2).eval()
    with ultra_ext.attn_backend("math"), torch.no_grad():
        m(*pair)
    assert m.last_backend == "math"


# ------------------------------------------------------------------------------------- the published module
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "pst" / "official_pst_reference.pt"


@pytest.mark.parametrize("topk", [0, 8])
def test_matches_the_published_module(topk):
    """Outputs of the official PST (2 heads, 2 blocks, random weights and BN statistics, Gumbel noise off), computed
    by running the published code, reproduced with its state dict (gate 'learned' = the published mixing)."""
    ref = torch.load(REFERENCE, weights_only=True)
    m = PST(**ref["config"])
    missing, unexpected = m.load_state_dict(ref["state_dict"], strict=False)
    assert not unexpected and sorted(missing) == ["attnlayer_0.attn.gate_trained", "attnlayer_1.attn.gate_trained"]
    m.eval()
    set_pst_options(m, topk=topk, gate="learned")
    x, upper = ref["inputs"]["x"], ref["inputs"]["upper"]
    with torch.no_grad():
        out = m([x, upper])
        expected = ref["outputs"][topk]
        assert (out - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()
        if topk:  # the same coarse tokens are selected in the first block
            a, b = m.attnlayer_0.attn, x.shape[0]
            q = a.q(m.cv1(x)).reshape(b, a.heads, D, -1).permute(0, 3, 1, 2)
            k = a.kv(m.cvup(upper)).reshape(b, a.heads, 2 * D, -1)[:, :, :D].permute(0, 3, 1, 2)
            picked = a.select(q, k, topk).sort(-1).values
            assert torch.equal(picked, ref["topk_indices_block0"].sort(-1).values)


# the published release's yolo11-cls-pst parameters (its model summary; nc 1000); l/x are our scales
CLS_PARAMS = {"n": 4_020_072, "s": 11_529_928, "m": 17_685_320, "l": 20_840_808, "x": 44_736_264}


@pytest.mark.parametrize("scale", "nsmlx")
def test_classification_variant(scale):
    from ultralytics.nn.tasks import ClassificationModel

    model = ClassificationModel(f"yolo11{scale}-cls-pst.yaml", verbose=False).eval()
    assert sum(p.numel() for p in model.parameters()) == CLS_PARAMS[scale]
    assert isinstance(model.model[8], PST) and model.model[8].f == [6, -1]
    with torch.no_grad():
        y = model(torch.zeros(1, 3, 224, 224))
    assert (y[0] if isinstance(y, tuple) else y).shape == (1, 1000)  # eval: (softmax, logits)


@pytest.mark.parametrize("scale", ["n", "l"])
@pytest.mark.parametrize("task", ["pose", "obb"])
def test_pose_and_obb_variants_are_the_detection_release_with_the_stock_head(task, scale):
    """Head parameters equal the stock head's (our YOLO12 neck and the stock one have the same channels); the
    backbone is the detection release's plus the R-ELAN residual scales at N/S/M."""
    from ultralytics.nn.tasks import OBBModel, PoseModel

    cls = PoseModel if task == "pose" else OBBModel
    model = cls(f"yolov12{scale}-pst-{task}.yaml", verbose=False)
    det = DetectionModel(f"yolov12{scale}-pst.yaml", verbose=False)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    def gammas(m):
        return sum(layer.gamma.numel() for layer in m.model if getattr(layer, "gamma", None) is not None)

    stock_head = count(cls(f"yolo12{scale}-{task}.yaml", verbose=False)) - count(
        DetectionModel(f"yolo12{scale}.yaml", verbose=False)
    )
    assert count(model) - count(det) == stock_head + gammas(model) - gammas(det)
    assert gammas(model) == (1024 if scale == "l" else 128 + 256)  # rows 6 and 8: c2 at the scale's width
    assert gammas(det) == (1024 if scale == "l" else 0)
    assert isinstance(model.model[11], PST) and isinstance(model.model[14], PST)


# the PST release's ResNet configs at their one released scale: parameters of the release (its fork built them)
RESNET_PARAMS = {
    "r18-pst-n.yaml": 16_487_664, "r50-pst-n.yaml": 26_049_520, "r101-pst-s.yaml": 50_276_608,
    "r18-cls-pst-n.yaml": 19_698_632, "r50-cls-pst-n.yaml": 29_260_488, "r101-cls-pst-s.yaml": 54_423_368,
}  # fmt: skip


@pytest.mark.parametrize("name", RESNET_PARAMS)
def test_resnet_variants_have_the_release_parameters(name):
    from ultralytics.nn.tasks import ClassificationModel

    cls = ClassificationModel if "-cls-" in name else DetectionModel
    model = cls(name, verbose=False).eval()
    assert sum(p.numel() for p in model.parameters()) == RESNET_PARAMS[name]
    pst = [m for m in model.model if isinstance(m, PST)]
    assert len(pst) == (1 if "-cls-" in name else 2)
    size = 224 if "-cls-" in name else 128
    with torch.no_grad():
        y = model(torch.rand(1, 3, size, size))
    if "-cls-" in name:
        assert y[0].shape == (1, 1000)
    else:
        assert y[0].shape == (1, 84, 16 * 16 + 8 * 8 + 4 * 4)


@pytest.mark.parametrize("name", ["r18-pst-n", "r18-cls-pst-n"])
def test_resnet_variants_have_the_release_state_dict(name):
    """Keys and shapes in order equal the fork's model (``tests/data/pst``), plus our ``gate_trained`` per PST."""
    import json

    from ultralytics.nn.tasks import ClassificationModel

    cls = ClassificationModel if "-cls-" in name else DetectionModel
    ours = [(k, list(v.shape)) for k, v in cls(f"{name}.yaml", verbose=False).state_dict().items()]
    theirs = [tuple(e) for e in json.loads((REFERENCE.parent / f"official_state_dict_{name}.json").read_text())]
    assert [e for e in ours if not e[0].endswith("gate_trained")] == theirs
    assert len(ours) - len(theirs) == (1 if "-cls-" in name else 2)
