"""Official Gold-YOLO checkpoint → ultra_ext converter, without the official code.

The official key names and shapes come from the committed manifests (tests/data/goldyolo/official_state_dict_<s>.json,
dumped from the official build); each test fills them with random tensors, so a tensor that lands in the wrong
place is caught by value. Numerical parity with the official model (identical outputs at every scale) is checked
outside CI, where the GPL code can be run.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint
from ultra_ext.convert.goldyolo import (
    build_goldyolo,
    infer_scale,
    load_official_checkpoint,
    map_official_state_dict,
    official_to_ultra_ext,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import random_state_dict, read_manifest  # noqa: E402

PROJ = ("detect.proj", "detect.proj_conv.weight")
DFL = "model.28.dfl.conv.weight"


def manifest(scale: str) -> list[tuple[str, tuple[int, ...]]]:
    return read_manifest("goldyolo", f"official_state_dict_{scale}")["keys"]


def synthetic(scale: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names (distinct values everywhere; BN variances positive; DFL ramp)."""
    sd = random_state_dict(manifest(scale), seed)
    sd["detect.proj"] = torch.arange(17.0)
    sd["detect.proj_conv.weight"] = torch.arange(17.0).view(1, 17, 1, 1)
    return sd


# official key → our key, written out by hand from the YAML rows (one or more per rule, per scale)
SPOT_CHECKS = {
    "n": {
        "backbone.stem.rbr_dense.conv.weight": "model.0.conv1.conv.weight",
        "backbone.ERBlock_2.0.rbr_1x1.bn.bias": "model.1.conv2.bn.bias",
        "backbone.ERBlock_2.1.conv1.rbr_identity.weight": "model.2.0.bn.weight",
        "backbone.ERBlock_2.1.block.0.rbr_identity.running_var": "model.2.1.bn.running_var",
        "backbone.ERBlock_4.1.block.4.rbr_dense.bn.running_mean": "model.6.5.conv1.bn.running_mean",
        "backbone.ERBlock_5.2.cv7.bn.running_mean": "model.9.cv7.bn.running_mean",
        "neck.low_IFM.0.conv.weight": "model.11.reduce.conv.weight",
        "neck.low_IFM.3.rbr_1x1.conv.weight": "model.11.blocks.2.conv2.conv.weight",
        "neck.low_IFM.4.bn.weight": "model.11.expand.bn.weight",
        "neck.reduce_layer_c5.conv.weight": "model.12.conv.weight",
        "neck.LAF_p4.cv1.conv.weight": "model.13.cv1.conv.weight",
        "neck.Inject_p3.global_act.bn.bias": "model.18.global_act.bn.bias",
        "neck.Rep_p3.block.2.rbr_dense.conv.weight": "model.19.3.conv1.conv.weight",
        "neck.high_IFM.transformer_blocks.1.attn.proj.1.bn.weight": "model.21.blocks.1.attn.proj.1.bn.weight",
        "neck.high_IFM.transformer_blocks.0.attn.to_k.c.weight": "model.21.blocks.0.attn.to_k.conv.weight",
        "neck.high_IFM.transformer_blocks.0.mlp.dwconv.bias": "model.21.blocks.0.mlp.dwconv.bias",
        "neck.conv_1x1_n.bias": "model.21.out.bias",
        "neck.Rep_n5.conv1.rbr_1x1.conv.weight": "model.27.0.conv2.conv.weight",
        "detect.stems.1.bn.running_var": "model.28.stems.1.bn.running_var",
        "detect.cls_convs.0.conv.weight": "model.28.cv3.0.0.conv.weight",
        "detect.reg_convs.2.bn.bias": "model.28.cv2.2.0.bn.bias",
        "detect.cls_preds.1.bias": "model.28.cv3.1.1.bias",
        "detect.reg_preds.2.weight": "model.28.cv2.2.1.weight",
    },
    "s": {
        "neck.LAF_p3.cv_fuse.conv.weight": "model.17.cv_fuse.conv.weight",
        "neck.Inject_n4.global_act.bn.weight": "model.23.global_act.bn.weight",
        "neck.Rep_n4.block.0.rbr_identity.bias": "model.24.1.bn.bias",
        "detect.reg_preds.0.weight": "model.28.cv2.0.1.weight",  # 68 channels: 4 sides × 17 bins, same order
    },
    "m": {
        "backbone.ERBlock_2.1.cv3.bn.running_var": "model.2.cv3.bn.running_var",
        "backbone.ERBlock_4.1.m.block.3.conv2.rbr_dense.bn.bias": "model.6.m.4.conv2.conv1.bn.bias",
        "backbone.ERBlock_5.2.cv2.conv.weight": "model.9.cv2.conv.weight",  # SimSPPF
        "neck.Rep_p3.m.conv1.alpha": "model.19.m.0.alpha",
        "neck.Rep_n5.m.block.1.conv1.rbr_identity.running_mean": "model.27.m.2.conv1.bn.running_mean",
    },
    "l": {
        "backbone.stem.block.conv.bias": "model.0.conv.bias",  # ConvWrapper: conv with bias
        "backbone.ERBlock_3.0.block.bn.weight": "model.3.bn.weight",
        "backbone.ERBlock_5.2.cv1.bn.bias": "model.9.cv1.bn.bias",  # SPPF
        "neck.low_IFM.2.block.bn.running_var": "model.11.blocks.1.bn.running_var",
        "neck.Rep_n5.m.block.4.conv1.block.conv.weight": "model.27.m.5.conv1.conv.weight",
        "neck.Rep_n4.m.block.2.alpha": "model.24.m.3.alpha",
        "neck.high_IFM.transformer_blocks.2.mlp.fc2.bn.running_mean": "model.21.blocks.2.mlp.fc2.bn.running_mean",
    },
}
# official tensors / ours: ours has no proj/proj_conv but (S/M/L) a fixed DFL ramp; counts from the manifests
COUNTS = {"n": (929, 927), "s": (929, 928), "m": (1373, 1372), "l": (1191, 1190)}


@pytest.mark.parametrize("scale", ["n", "s", "m", "l"])
def test_every_official_key_lands_in_place(scale):
    sd = synthetic(scale)
    assert len(sd) == COUNTS[scale][0]
    model = official_to_ultra_ext(sd, scale, verbose=False)
    ours = model.state_dict()
    assert len(ours) == COUNTS[scale][1] and not model.training
    assert model.yaml["nc"] == 80 and model.model[-1].reg_max == (1 if scale == "n" else 17)

    plan = map_official_state_dict(sd, model)
    assert plan.dropped.keys() == set(PROJ)  # everything else is converted
    assert plan.mapping.keys() | plan.dropped.keys() == sd.keys()
    assert set(plan.mapping.values()) == set(ours) - {DFL}  # every key of ours but the fixed ramp, once
    for src, dst in plan.mapping.items():
        assert torch.equal(ours[dst], sd[src].to(ours[dst].dtype)), (src, dst)
    for src, dst in SPOT_CHECKS[scale].items():
        assert plan.mapping[src] == dst
        assert torch.equal(ours[dst], sd[src].to(ours[dst].dtype)), (src, dst)
    if scale != "n":  # the DFL ramp equals the official projection
        assert torch.equal(ours[DFL].flatten(), sd["detect.proj"])


def test_infer_scale_from_stem_width():
    assert [infer_scale(synthetic(s)) for s in "nslm"] == list("nslm")
    sd = synthetic("n")
    model = official_to_ultra_ext(sd, None, verbose=False)  # scale read from the checkpoint
    assert model.yaml["scale"] == "n"
    with pytest.raises(ValueError, match="is Gold-YOLO-N .*not the requested scale 's'"):
        official_to_ultra_ext(sd, "s")
    with pytest.raises(ValueError, match="unknown Gold-YOLO scale 'x'; expected one of n, s, m, l"):
        official_to_ultra_ext(sd, "x")
    with pytest.raises(ValueError, match="unknown Gold-YOLO scale"):
        build_goldyolo("x")


def test_class_count_comes_from_the_head():
    sd = synthetic("n")
    for i, c in enumerate((32, 64, 128)):  # N head widths
        sd[f"detect.cls_preds.{i}.weight"] = torch.randn(3, c, 1, 1)
        sd[f"detect.cls_preds.{i}.bias"] = torch.randn(3)
    model = official_to_ultra_ext(sd, "n", verbose=False)
    assert model.yaml["nc"] == 3 and model.model[-1].nc == 3
    assert torch.equal(model.model[-1].cv3[2][1].bias, sd["detect.cls_preds.2.bias"])
    assert model(torch.zeros(1, 3, 64, 64))[0].shape == (1, 4 + 3, 8 * 8 + 4 * 4 + 2 * 2)


def _released_n() -> dict[str, torch.Tensor]:
    """N as released (distilled): a 68-channel auxiliary DFL branch plus the 4-channel LRTB branch."""
    sd = synthetic("n")
    for i, c in enumerate((32, 64, 128)):
        sd[f"detect.reg_preds.{i}.weight"] = torch.randn(68, c, 1, 1)
        sd[f"detect.reg_preds.{i}.bias"] = torch.randn(68)
        sd[f"detect.reg_preds_lrtb.{i}.weight"] = torch.randn(4, c, 1, 1)
        sd[f"detect.reg_preds_lrtb.{i}.bias"] = torch.randn(4)
    return sd


def test_distilled_checkpoint_converts_the_inference_branch():
    sd = _released_n()
    model = official_to_ultra_ext(sd, "n", verbose=False)  # official inference decodes reg_preds_lrtb
    plan = map_official_state_dict(sd, model)
    assert model.model[-1].reg_max == 1 and plan.box_branch == "reg_preds_lrtb"
    assert torch.equal(model.model[-1].cv2[1][1].weight, sd["detect.reg_preds_lrtb.1.weight"])
    aux = {k for k, why in plan.dropped.items() if "auxiliary DFL" in why}
    assert aux == {f"detect.reg_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias")}

    model = official_to_ultra_ext(sd, "n", prefer_dfl=True, verbose=False)
    plan = map_official_state_dict(sd, model, prefer_dfl=True)
    assert model.model[-1].reg_max == 17 and plan.box_branch == "reg_preds"
    assert torch.equal(model.model[-1].cv2[1][1].weight, sd["detect.reg_preds.1.weight"])
    assert {k for k, why in plan.dropped.items() if "LRTB" in why} == {
        f"detect.reg_preds_lrtb.{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }
    with pytest.raises(ValueError, match="no DFL box branch"):
        official_to_ultra_ext({k: v for k, v in sd.items() if ".reg_preds." not in k}, "n", prefer_dfl=True)


def test_fuse_ab_checkpoint_keeps_the_anchor_free_branch():
    sd = {}
    for k, v in synthetic("s").items():  # fuse_ab training renames the preds *_af and adds anchor-based twins
        sd[k.replace("cls_preds.", "cls_preds_af.").replace("reg_preds.", "reg_preds_af.")] = v
    for i, c in enumerate((64, 128, 256)):
        for name, out in (("cls_preds_ab", 80 * 3), ("reg_preds_ab", 4 * 3)):  # 3 anchors per cell
            sd[f"detect.{name}.{i}.weight"], sd[f"detect.{name}.{i}.bias"] = torch.randn(out, c, 1, 1), torch.randn(out)
    model = official_to_ultra_ext(sd, "s", verbose=False)
    plan = map_official_state_dict(sd, model)
    assert model.model[-1].reg_max == 17 and plan.box_branch == "reg_preds_af"
    assert torch.equal(model.model[-1].cv3[0][1].weight, sd["detect.cls_preds_af.0.weight"])
    assert torch.equal(model.model[-1].cv2[2][1].bias, sd["detect.reg_preds_af.2.bias"])
    assert sum("anchor-based" in why for why in plan.dropped.values()) == 12


def test_problems_are_listed_together():
    sd = synthetic("n")
    del sd["neck.Inject_p3.global_act.bn.running_mean"]  # missing
    sd["neck.mystery.weight"] = torch.zeros(1)  # unknown module
    sd["backbone.ERBlock_2.1.block.7.rbr_dense.conv.weight"] = torch.zeros(1)  # known module, no such block in ours
    sd["neck.LAF_p4.cv1.conv.weight"] = torch.zeros(64, 100, 1, 1)  # wrong shape (ours: 64, 128, 1, 1)
    with pytest.raises(ValueError) as e:
        official_to_ultra_ext(sd, "n")
    msg = str(e.value)
    assert "does not fit goldyolo-n.yaml (nc=80, reg_max=1)" in msg
    assert "2 official keys match no rule: neck.mystery.weight, backbone.ERBlock_2.1.block.7.rbr_dense" in msg
    assert "(→ model.2.8.conv1.conv.weight, not in our model)" in msg
    assert "1 keys of our model receive nothing: model.18.global_act.bn.running_mean" in msg
    wrong = "neck.LAF_p4.cv1.conv.weight (64, 100, 1, 1) → model.13.cv1.conv.weight (64, 128, 1, 1)"
    assert f"1 shape mismatches: {wrong}" in msg


def test_long_lists_are_cut():
    sd = {k: v for k, v in synthetic("n").items() if not k.startswith("neck.Rep_n4.")}
    # 4 RepVGG blocks × 17 tensors (conv1, conv2: conv + 5 BN tensors each; identity BN: 5); 8 listed
    with pytest.raises(ValueError, match=r"68 keys of our model receive nothing: model\.24\.0\..* … \(\+60 more\)"):
        official_to_ultra_ext(sd, "n")


def test_deployed_and_odd_heads_are_refused():
    sd = synthetic("n")
    sd["backbone.stem.rbr_reparam.weight"] = sd.pop("backbone.stem.rbr_dense.conv.weight")
    with pytest.raises(ValueError, match="deployed .*rbr_reparam.*convert the training-time checkpoint"):
        official_to_ultra_ext(sd, "n")
    folded = {k.replace(".bn.", ".folded."): v for k, v in synthetic("n").items() if ".rbr_identity." not in k}
    with pytest.raises(ValueError, match="deployed .*no BatchNorm keys"):
        official_to_ultra_ext(folded, "n")
    sd = synthetic("s")
    sd["detect.proj"] = torch.arange(17.0) * 2
    with pytest.raises(ValueError, match="detect.proj is not the DFL ramp 0..16"):
        official_to_ultra_ext(sd, "s")
    sd = synthetic("s")
    sd["detect.reg_preds.0.weight"] = torch.zeros(66, 64, 1, 1)
    with pytest.raises(ValueError, match="66 output channels, not 4 × bins"):
        official_to_ultra_ext(sd, "s")


# --------------------------------------------------------------------------------------------- loading files
def _official_like_models(monkeypatch, copies: int = 1) -> list[nn.Module]:
    """Small models whose classes live in (fake) yolov6 / gold_yolo / mmcv modules, pickled by reference.

    The fake modules are registered in ``sys.modules`` through ``monkeypatch`` (``monkeypatch.undo()`` removes them).
    """

    def fake_module(name: str) -> types.ModuleType:
        for i in range(1, name.count(".") + 2):
            parent = name.rsplit(".", name.count(".") + 1 - i)[0]
            if parent not in sys.modules:
                monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
        return sys.modules[name]

    def fake_class(module: str, name: str, base: type, body=None) -> type:
        cls = type(name, (base,), {"__module__": module, "__qualname__": name, **(body or {})})
        setattr(fake_module(module), name, cls)
        return cls

    def init_conv_bn(self, c1, c2):
        nn.Module.__init__(self)
        self.conv, self.bn = nn.Conv2d(c1, c2, 3, 1, 1, bias=False), nn.BatchNorm2d(c2)

    def init_rep(self, c):
        nn.Module.__init__(self)
        self.rbr_dense, self.rbr_1x1, self.rbr_identity = ConvBN(c, c), ConvBN(c, c), nn.BatchNorm2d(c)

    ConvBN = fake_class("yolov6.layers.common", "ConvBN", nn.Module, {"__init__": init_conv_bn})
    RepVGG = fake_class("gold_yolo.fake_layers", "RepVGGBlock", nn.Module, {"__init__": init_rep})
    ConvModule = fake_class("mmcv.cnn.bricks", "ConvModule", nn.Module, {"__init__": init_conv_bn})
    ConfigDict = fake_class("yolov6.utils.config", "ConfigDict", dict)  # dict-like state kept on official modules
    Model = fake_class("yolov6.models.yolo", "Model", nn.Module)

    models = []
    for _ in range(copies):
        model = Model()
        model.backbone = nn.Module()
        model.backbone.stem = RepVGG(4)
        model.neck = nn.Module()
        model.neck.low_IFM = nn.Sequential(ConvModule(4, 8), RepVGG(8))
        model.neck.norm_cfg = ConfigDict(type="SyncBN", requires_grad=True)
        model.detect = nn.Module()
        model.detect.cls_preds = nn.ModuleList([nn.Conv2d(8, 3, 1)])
        with torch.no_grad():
            for i, t in enumerate(model.state_dict().values()):
                t.copy_(torch.randn(t.shape) if t.is_floating_point() else torch.tensor(i))
        models.append(model)
    return models


def test_stub_unpickler_reads_official_pickles_without_the_code(tmp_path, monkeypatch):
    (model,) = _official_like_models(monkeypatch)
    expected = {k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    path = tmp_path / "official.pt"
    torch.save({"model": model.half(), "ema": None, "optimizer": None, "epoch": -1}, path)  # YOLOv6's layout, fp16
    monkeypatch.undo()  # the fake official packages are gone again
    assert "gold_yolo" not in sys.modules and "yolov6" not in sys.modules and "mmcv" not in sys.modules
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        torch.load(path, weights_only=False)  # plain unpickling needs the official code

    sd = load_official_checkpoint(path)
    assert list(sd) == list(expected)
    for k, v in sd.items():
        assert v.dtype == (torch.float32 if expected[k].is_floating_point() else torch.int64), k
        assert torch.equal(v, expected[k]), k
    assert "gold_yolo" not in sys.modules  # stubs never import anything


def test_ema_entry_wins_and_plain_state_dicts_load(tmp_path, monkeypatch):
    model, ema = _official_like_models(monkeypatch, copies=2)
    torch.save({"model": model, "ema": ema}, tmp_path / "train.pt")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "wrapped.pt")
    monkeypatch.undo()
    key = "detect.cls_preds.0.weight"
    assert torch.equal(load_official_checkpoint(tmp_path / "train.pt")[key], ema.state_dict()[key])
    assert torch.equal(load_official_checkpoint(tmp_path / "plain.pt")[key], model.state_dict()[key])
    assert torch.equal(load_official_checkpoint(tmp_path / "wrapped.pt")[key], model.state_dict()[key])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Gold-YOLO checkpoint not found: .*missing.pt"):
        load_official_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="cannot read it as a PyTorch checkpoint"):
        load_official_checkpoint(tmp_path / "junk.pt")
    torch.save({"model.0.conv.weight": torch.zeros(1)}, tmp_path / "ultra.pt")
    with pytest.raises(ValueError, match="start with 'model.' .*YOLO\\(path\\)"):
        load_official_checkpoint(tmp_path / "ultra.pt")
    torch.save({"backbone.stem.weight": torch.zeros(1), "neck.reduce.weight": torch.zeros(1)}, tmp_path / "v6.pt")
    with pytest.raises(ValueError, match="not a Gold-YOLO checkpoint \\(a YOLOv6 checkpoint without the GD neck\\?\\)"):
        load_official_checkpoint(tmp_path / "v6.pt")
    torch.save({"epoch": 3, "optimizer": None}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match="a dict without a model"):
        load_official_checkpoint(tmp_path / "nomodel.pt")
    with open(tmp_path / "list.pt", "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ValueError):
        load_official_checkpoint(tmp_path / "list.pt")


# --------------------------------------------------------------------------------------------- saving
def test_saved_checkpoint_loads_with_yolo(tmp_path):
    from ultralytics import YOLO

    model = official_to_ultra_ext(synthetic("n"), "n", verbose=False)
    path = save_ultralytics_checkpoint(model, tmp_path / "goldyolo-n-coco.pt", source="synthetic")
    yolo = YOLO(str(path))
    assert yolo.task == "detect" and yolo.names[0] == "person" and len(yolo.names) == 80
    loaded = yolo.model
    assert type(loaded.model[-1]).__name__ == "EfficientDecoupledDetect" and loaded.yaml["reg_max"] == 1
    expected = model.state_dict()
    for k, v in loaded.state_dict().items():  # floats stored fp16, as Ultralytics ships weights
        e = expected[k]
        assert torch.equal(v, e.half().to(v.dtype) if e.is_floating_point() else e), k
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(x)[0], loaded.float().eval()(x)[0]
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(theirs, ours, rtol=0.02, atol=0.05)  # fp16 weights
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["converted_from"] == "synthetic" and ckpt["train_args"]["data"] == "coco.yaml"
    with pytest.raises(ValueError, match="3 class names for a model with 80 classes"):
        save_ultralytics_checkpoint(model, tmp_path / "x.pt", names=["a", "b", "c"])


def test_cli_convert_goldyolo(tmp_path, capsys):
    from ultralytics import YOLO

    from ultra_ext.cli import main

    src, dst = tmp_path / "Gold_n.pt", tmp_path / "out" / "goldyolo-n.pt"
    torch.save({"model": _released_n()}, src)
    assert main(["convert-goldyolo", str(src), "-o", str(dst), "--scale", "n", "--dfl"]) == 0
    assert "(Gold-YOLO-N, nc=80, reg_max=17)" in capsys.readouterr().out
    assert YOLO(str(dst)).model.model[-1].reg_max == 17

    assert main(["convert-goldyolo", str(tmp_path / "nope.pt"), "-o", str(dst)]) == 1
    assert "error: Gold-YOLO checkpoint not found" in capsys.readouterr().err
    assert main(["convert-goldyolo", str(src), "-o", str(dst), "--scale", "m"]) == 1
    assert "is Gold-YOLO-N" in capsys.readouterr().err
