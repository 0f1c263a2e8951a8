"""Published PST checkpoint → ultra_ext ``yolov12-pst`` converter, without the fork's code.

The published key names and shapes come from the committed manifests (tests/data/pst/official_state_dict_
yolov12-pst-<s>.json, dumped from the fork's build); tests fill them with random tensors, so a tensor that lands in
the wrong place is caught by value. Fork checkpoints are simulated by pickling our own model with its PST classes
swapped for classes registered at runtime under ``ultralytics.nn.modules.block`` (and one under a module that does
not exist), which are removed again before loading — as under stock Ultralytics, which lacks them. Numerical
parity with the fork itself (identical outputs at topk 0 and 8) is checked outside CI, where its code can run.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from ultra_ext.nn import set_pst_options
from ultra_ext.nn.pst import PST, PyramidSparseAttention, PyramidSparseBlock
from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint
from ultra_ext.convert.pst import (
    build_yolov12_pst,
    infer_scale,
    load_pst_checkpoint,
    map_pst_state_dict,
    pst_to_ultra_ext,
)
from ultra_ext.convert.unpickle import OfficialStub, StubPickle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import nudge, random_state_dict, read_manifest

GATES = {"model.11.attnlayer_0.attn.gate_trained", "model.14.attnlayer_0.attn.gate_trained"}
COUNTS = {"n": 695, "s": 695, "m": 755}  # published tensors; ours has the two gate_trained buffers more
FORK_CLASSES = {  # our class → the fork's (module, name)
    PST: ("ultralytics.nn.modules.block", "PST"),
    PyramidSparseBlock: ("ultralytics.nn.modules.block", "PSAttnBlock"),
    PyramidSparseAttention: ("ultralytics.nn.modules.block", "PSAttn"),
}
MISSING_MODULE = "ultralytics.nn.modules.pst_fork_only"  # a fork module stock Ultralytics does not have at all
INPUT = 128  # smallest square input whose layer-11 coarse map (4×4) has the 8 tokens top-k needs


def manifest(scale: str) -> list[tuple[str, tuple[int, ...]]]:
    data = read_manifest("pst", f"official_state_dict_yolov12-pst-{scale}")
    assert data["scale"] == scale and data["nc"] == 80
    return data["keys"]


def synthetic(scale: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the published names (distinct values everywhere; BN variances positive)."""
    return random_state_dict(manifest(scale), seed)


# --------------------------------------------------------------------------------------------- key mapping
@pytest.mark.parametrize("scale", ["n", "s", "m"])
def test_every_published_key_lands_in_place(scale):
    sd = synthetic(scale)
    assert len(sd) == COUNTS[scale]
    model = pst_to_ultra_ext(sd, verbose=False)  # scale read from the stem (and depth)
    ours = model.state_dict()
    assert model.yaml["scale"] == scale and model.yaml["nc"] == 80 and not model.training
    assert len(ours) == COUNTS[scale] + 2

    plan = map_pst_state_dict(sd, model)
    assert plan.nc == 80 and plan.mapping.keys() == sd.keys()
    assert all(src == dst for src, dst in plan.mapping.items())  # the published names are ours
    assert set(plan.mapping.values()) | plan.defaults.keys() == ours.keys()  # every key of ours filled, once
    assert plan.defaults == dict.fromkeys(GATES, 0.0)
    for key, value in sd.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    for key in GATES:  # "never trained": the auto policy blends 0.5
        assert ours[key].item() == 0.0
    attn = model.model[14].attnlayer_0.attn
    assert attn.gate_mode == "auto" and torch.equal(
        attn.gate_conv1d.bias, sd["model.14.attnlayer_0.attn.gate_conv1d.bias"]
    )


def test_scale_inference_and_checks():
    assert [infer_scale(synthetic(s)) for s in "nsm"] == list("nsm")
    stem = "model.0.conv.weight"
    depth = "model.2.m.1.cv1.conv.weight"  # second row-2 bottleneck: depth 1.0
    assert infer_scale({stem: torch.zeros(64, 3, 3, 3), depth: torch.zeros(1)}) == "l"
    assert infer_scale({stem: torch.zeros(96, 3, 3, 3), depth: torch.zeros(1)}) == "x"
    with pytest.raises(ValueError, match="stem width 48 matches no yolov12-pst scale"):
        infer_scale({stem: torch.zeros(48, 3, 3, 3)})
    with pytest.raises(ValueError, match=r"no stem weight \(model.0.conv.weight\)"):
        infer_scale({})
    sd = synthetic("n")
    with pytest.raises(ValueError, match="is yolov12n-pst .*not the requested scale 's'"):
        pst_to_ultra_ext(sd, "s")
    with pytest.raises(ValueError, match="unknown yolov12-pst scale 'q'; expected one of n, s, m, l, x"):
        pst_to_ultra_ext(sd, "q")
    with pytest.raises(ValueError, match="unknown yolov12-pst scale"):
        build_yolov12_pst("q")


def test_class_count_names_and_our_own_state_dicts():
    ours = build_yolov12_pst("n", nc=3).state_dict()  # keys as published; the cls branch narrows with nc (c3 64)
    ours["model.11.attnlayer_0.attn.gate_trained"].fill_(1.0)  # one of ours, trained: kept
    published = {k: v for k, v in ours.items() if k not in GATES}
    model = pst_to_ultra_ext(published, "n", names=["a", "b", "c"], verbose=False)
    assert model.yaml["nc"] == 3 and model.model[-1].nc == 3 and model.names == {0: "a", 1: "b", 2: "c"}
    assert tuple(model.model[-1].cv3[0][2].weight.shape) == (3, 64, 1, 1)
    assert model(torch.zeros(1, 3, INPUT, INPUT))[0].shape == (1, 4 + 3, 16 * 16 + 8 * 8 + 4 * 4)
    converted = pst_to_ultra_ext(ours, verbose=False).state_dict()
    assert converted["model.11.attnlayer_0.attn.gate_trained"].item() == 1.0
    assert converted["model.14.attnlayer_0.attn.gate_trained"].item() == 0.0
    with pytest.raises(ValueError, match="2 class names for a checkpoint with 3 classes"):
        pst_to_ultra_ext(published, names=["a", "b"])


def test_problems_are_listed_together():
    sd = synthetic("n")
    del sd["model.14.attnlayer_0.attn.pe.bn.running_mean"]  # missing
    sd["model.11.attnlayer_0.attn.tau"] = torch.ones(())  # a key we have no place for
    sd["model.14.attnlayer_1.mlp.0.conv.weight"] = torch.zeros(1)  # a second block (n=2 at depth 1.0)
    sd["model.11.attnlayer_0.attn.gate_conv1d.weight"] = torch.zeros(32, 64, 3)  # wrong kernel (ours: 1)
    with pytest.raises(ValueError) as e:
        pst_to_ultra_ext(sd, "n")
    msg = str(e.value)
    assert msg.startswith("published PST state dict does not fit yolov12n-pst.yaml (nc=80):")
    assert "2 published keys have no place in ours: model.11.attnlayer_0.attn.tau, model.14.attnlayer_1.mlp." in msg
    assert "1 keys of our model receive nothing: model.14.attnlayer_0.attn.pe.bn.running_mean\n" in msg
    shape = "model.11.attnlayer_0.attn.gate_conv1d.weight (32, 64, 3) → (32, 64, 1)"
    assert f"1 shape mismatches (published → ours): {shape}" in msg
    # row 2 (C3k2, one bottleneck at n): 4 Convs (cv1, cv2, m.0.cv1, m.0.cv2) × 6 tensors; 8 listed
    with pytest.raises(ValueError, match=r"24 keys of our model receive nothing: model\.2\.cv1.* … \(\+16 more\)"):
        pst_to_ultra_ext({k: v for k, v in synthetic("n").items() if not k.startswith("model.2.")}, "n")
    no_head = {k: v for k, v in synthetic("n").items() if not k.startswith("model.21.cv3.0.2.")}
    with pytest.raises(ValueError, match="cannot read the class count: no model.21.cv3.0.2.weight"):
        pst_to_ultra_ext(no_head, "n")


# --------------------------------------------------------------------------------------------- fork checkpoints
def _fork_class(monkeypatch, ours: type, module: str, name: str) -> type:
    """A class named like the fork's, registered at runtime (``monkeypatch.undo()`` removes it again)."""
    cls = type(name, (ours,), {"__module__": module, "__qualname__": name})
    if module not in sys.modules:
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
    return cls


def _as_fork_model(monkeypatch, model: nn.Module) -> nn.Module:
    """Our yolov12n-pst, pickling like a fork model: PST classes renamed, no gate_trained buffers; each block's
    MLP (an nn.Sequential) becomes a class of a module that does not exist in stock Ultralytics."""
    fork = {ours: _fork_class(monkeypatch, ours, *where) for ours, where in FORK_CLASSES.items()}
    mlp = _fork_class(monkeypatch, nn.Sequential, MISSING_MODULE, "ForkMLP")
    for m in list(model.modules()):
        if type(m) in fork:
            m.__class__ = fork[type(m)]
            m._buffers.pop("gate_trained", None)
        if isinstance(m, PyramidSparseBlock):
            m.mlp.__class__ = mlp
    return model


@pytest.fixture(scope="module")
def fork_checkpoint(tmp_path_factory):
    """A fork-style released checkpoint of a randomised yolov12n-pst, and our model with the same (fp16) weights."""
    torch.manual_seed(0)
    original = nudge(build_yolov12_pst("n"), seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in original.modules():
            if isinstance(m, PST):  # unit-gain convs: at the init's std 0.02 the PST layers barely act
                for conv in m.modules():
                    if isinstance(conv, nn.Conv2d):
                        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / conv.weight[0].numel() ** 0.5)
            if isinstance(m, PyramidSparseAttention):  # a gate far from 0.5 (published: PyTorch's default init)
                m.gate_conv1d.bias.copy_(torch.linspace(-3, 3, 32))
    original.half().float()  # released weights are fp16
    original.names = {i: f"class{i}" for i in range(80)}
    path = tmp_path_factory.mktemp("fork") / "yolo11n-pst.pt"
    with pytest.MonkeyPatch.context() as mp:  # the fork's classes exist only while pickling
        fork_model = _as_fork_model(mp, pickle.loads(pickle.dumps(original)))
        train_args = {"model": "yolo11n-pst.yaml", "data": "coco.yaml", "epochs": 600}
        ckpt = {"date": "2025-05-19", "version": "8.3.105", "model": fork_model.half(), "ema": None}
        torch.save({**ckpt, "optimizer": None, "train_args": train_args, "epoch": -1}, path)  # strip_optimizer's
    from ultralytics.nn.modules import block

    assert MISSING_MODULE not in sys.modules and not hasattr(block, "PSAttn") and not hasattr(block, "PST")
    with pytest.raises(AttributeError, match="Can't get attribute 'PST' on <module 'ultralytics.nn.modules.block'"):
        torch.load(path, weights_only=False)  # as under stock Ultralytics: plain loading fails
    return path, original


def test_only_unresolvable_classes_are_stubbed(fork_checkpoint):
    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.tasks import DetectionModel

    path, original = fork_checkpoint
    stubs = StubPickle(fallback=("ultralytics",), hint="test hint")
    model = torch.load(path, map_location="cpu", pickle_module=stubs, weights_only=False)["model"]
    assert set(stubs.stubbed) == {
        "ultralytics.nn.modules.block.PST",
        "ultralytics.nn.modules.block.PSAttnBlock",
        "ultralytics.nn.modules.block.PSAttn",
        f"{MISSING_MODULE}.ForkMLP",
    }
    assert type(model) is DetectionModel and type(model.model[0]) is Conv  # what resolves is the real class
    pst = model.model[11]
    assert isinstance(pst, OfficialStub) and type(pst).__module__ == "ultralytics.nn.modules.block"
    assert type(pst.attnlayer_0.attn).__name__ == "PSAttn" and type(pst.cv1) is Conv
    with pytest.raises(RuntimeError, match="ultralytics.nn.modules.block.PST is a stub: test hint"):
        pst([torch.zeros(1)])
    assert model.state_dict().keys() == original.state_dict().keys() - GATES

    sd, info = load_pst_checkpoint(path)
    assert len(sd) == 695 and all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())
    assert info["nc"] == 80 and info["scale"] == "n" and info["names"][79] == "class79"
    assert info["train_args"]["epochs"] == 600 and info["version"] == "8.3.105"
    assert set(info["stubbed"]) == set(stubs.stubbed)


def test_classes_outside_the_trusted_packages_never_run(tmp_path, monkeypatch):
    """Reading is restricted (weights_only): a class of any other package becomes a stub, never imported; a file
    that turns out not to be PST is then refused with what it holds."""
    calls = []
    cls = _fork_class(monkeypatch, nn.Module, "pst_fork_extras", "Thing")  # not an ultralytics.* class
    cls.__setstate__ = lambda self, state: calls.append(state)  # would run under full unpickling
    torch.save({"model": cls()}, tmp_path / "odd.pt")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="not an Ultralytics PST checkpoint: no 'model.\\*' keys"):
        load_pst_checkpoint(tmp_path / "odd.pt")
    assert calls == [] and "pst_fork_extras" not in sys.modules


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="PST checkpoint not found: .*missing.pt"):
        load_pst_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="cannot read it as a PyTorch checkpoint"):
        load_pst_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {"model.0.conv.weight": torch.zeros(1)}}, tmp_path / "plain.pt")  # no PST layer
    with pytest.raises(ValueError, match="no PST layer .*stock Ultralytics checkpoint loads with YOLO\\(path\\)"):
        load_pst_checkpoint(tmp_path / "plain.pt")
    torch.save({"backbone.stem.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no 'model.\\*' keys \\(prefixes: \\['backbone'\\]\\)"):
        load_pst_checkpoint(tmp_path / "other.pt")
    torch.save({"epoch": 3, "model": None}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match="a dict without a model"):
        load_pst_checkpoint(tmp_path / "nomodel.pt")
    sd = {f"module.{k}": v for k, v in synthetic("n").items()}  # DataParallel prefix, plain state dict
    torch.save({"model": sd}, tmp_path / "sd.pt")
    loaded, info = load_pst_checkpoint(tmp_path / "sd.pt")
    assert loaded.keys() == synthetic("n").keys() and info["stubbed"] == [] and "names" not in info


@torch.no_grad()
def test_converted_fork_checkpoint_reproduces_the_model(fork_checkpoint):
    path, original = fork_checkpoint
    sd, info = load_pst_checkpoint(path)
    model = pst_to_ultra_ext(sd, names=info["names"], verbose=False)
    x = torch.rand(2, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    outputs = {}
    for topk, gate in ((0, "auto"), (8, "learned"), (8, "auto")):
        for m in (model, original):
            set_pst_options(m, topk=topk, gate=gate)
        ours, ref = model(x)[0], original(x)[0]
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
        outputs[topk, gate] = ours
    assert (outputs[8, "learned"] - outputs[0, "auto"]).abs().max() > 1e-2  # the fine stage changes the output
    assert (outputs[8, "learned"] - outputs[8, "auto"]).abs().max() > 1e-2  # and so does the stored gate
    assert model.names[5] == "class5"


def test_saved_checkpoint_loads_with_yolo(fork_checkpoint, tmp_path):
    from ultralytics import YOLO

    sd, info = load_pst_checkpoint(fork_checkpoint[0])
    model = pst_to_ultra_ext(sd, names=info["names"], gate="learned", verbose=False)
    path = save_ultralytics_checkpoint(model, tmp_path / "yolov12n-pst.pt", names=info["names"], source="fork")
    yolo = YOLO(str(path))
    loaded = yolo.model.float().eval()
    assert yolo.task == "detect" and yolo.names[3] == "class3" and loaded.yaml["scale"] == "n"
    attns = [m for m in loaded.modules() if isinstance(m, PyramidSparseAttention)]
    assert [(a.gate_mode, a.topk, a.gate_trained.item()) for a in attns] == [("learned", 8, 0.0)] * 2
    x = torch.rand(1, 3, INPUT, INPUT)
    with torch.no_grad():  # weights were fp16 already: the fp16 checkpoint is lossless
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)


def test_cli_convert_pst(fork_checkpoint, tmp_path, capsys):
    from ultralytics import YOLO

    from ultra_ext.cli import main

    src, dst = fork_checkpoint[0], tmp_path / "out" / "yolov12n-pst.pt"
    assert main(["convert-pst", str(src), "-o", str(dst), "--gate", "fixed"]) == 0
    assert f"converted {src} → {dst} (yolov12n-pst, nc=80, gate=fixed)" in capsys.readouterr().out
    modes = {m.gate_mode for m in YOLO(str(dst)).model.modules() if isinstance(m, PyramidSparseAttention)}
    assert modes == {"fixed"}
    assert main(["convert-pst", str(src), "-o", str(dst)]) == 0  # default: auto
    modes = {m.gate_mode for m in YOLO(str(dst)).model.modules() if isinstance(m, PyramidSparseAttention)}
    assert modes == {"auto"}

    assert main(["convert-pst", str(tmp_path / "nope.pt"), "-o", str(dst)]) == 1
    assert "error: PST checkpoint not found" in capsys.readouterr().err
    assert main(["convert-pst", str(src), "-o", str(dst), "--scale", "m"]) == 1
    assert "is yolov12n-pst" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert-pst", str(src), "-o", str(dst), "--gate", "random"])
