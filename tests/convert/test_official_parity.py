"""Official checkpoints load through ``YOLO(path)`` and compute what the official code computes.

Reference data (``tests/data/yolov12``, ``tests/data/generalist``) was made by running the official code in a scratch
folder: the official model of each manifest got the seeded weights of ``helpers.random_state_dict(manifest, 0)``,
BatchNorm statistics calibrated in float64 on 16 real raccoon images (stored, rounded to float32), and its float64
eval outputs on two real images were saved (inputs as uint8). Only manifests and those small files are committed;
the weights are regenerated here from the seed.

Each test writes a checkpoint as the official code base pickles it (its classes, its YAML and layout), loads it with
the stock ``YOLO(path)`` — which converts it in memory — and compares every stored output: float64 to 1e-9 and
float32 to 1e-4 of the output's largest magnitude; then scales one weight by 1.01 and shows the float64 comparison
fails.

Sources: sunsmarterjie/yolov12 branch ``main`` @ d3cbe10 (turbo detection), ``Seg`` @ 97a5f2c, ``Cls`` @ 726014c;
WongKinYiu/GeneralistYOLO @ 42d565e (``models/caption/gyolo.yaml``); huawei-noah/Efficient-Computing @ 225ddd2
(``Detection/Gold-YOLO``, ``configs/gold_yolo-n.py``; its one mmcv layer, 1×1 conv + BN, stood in by a scratch shim);
inlmouse/PyramidSparseTransformer @ 77608f8 (``yolo11-pst.yaml`` n, fine stage off and at k = 8 without the fork's
Gumbel noise).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from helpers import MANIFESTS, foreign_class, module_tree, random_state_dict
from test_convert_yolov12 import _as_released_turbo
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, SegmentationModel

DFL_RAMP = torch.arange(16.0).view(1, 16, 1, 1)  # fixed DFL projection: the official models keep their own


def reference(family: str, name: str) -> tuple[dict, dict]:
    """``(manifest, reference)`` of ``tests/data/<family>/``."""
    manifest = json.loads((MANIFESTS / family / f"official_state_dict_{name}.json").read_text())
    manifest["keys"] = [(k, tuple(s)) for k, s in manifest["keys"]]
    return manifest, torch.load(MANIFESTS / family / f"reference_{name}.pt", weights_only=True)


def official_weights(manifest: dict, ref: dict, ramps: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The official model's state: seeded tensors, calibrated BN statistics, the fixed DFL ramps."""
    sd = random_state_dict(manifest["keys"], 0)
    sd.update(ref["bn_stats"])
    for key in ramps:
        sd[key] = DFL_RAMP.clone()
    return sd


def relative_errors(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> list[float]:
    """max |ours - theirs| / max |theirs| for each pair."""
    assert len(ours) == len(theirs)
    out = []
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape, (a.shape, b.shape)
        out.append(((a.double() - b.double()).abs().max() / b.double().abs().max()).item())
    return out


# ------------------------------------------------------------------------------------------------ YOLOv12
# name → (our YAML, scale, A2C2f extras the official code base builds at that scale, model class)
YOLOV12 = {
    "det-l": ("yolov12{}-turbo.yaml", "l", {"residual": True, "mlp_ratio": 1.5}, DetectionModel),
    "seg-l": ("yolov12{}-seg.yaml", "l", {"residual": True, "mlp_ratio": 1.0}, SegmentationModel),  # the Seg branch's
    "cls-n": ("yolov12{}-cls.yaml", "n", {"residual": True, "mlp_ratio": 2.0}, ClassificationModel),
}


def _yolov12_outputs(model, x) -> list[torch.Tensor]:
    """What the official fork's eval forward returns first, in its order: det the decoded ``(B, 4 + nc, A)``; seg
    that with 32 mask coefficients appended, and the prototypes; cls the probabilities and logits."""
    with torch.no_grad():
        out = model(x)
    if isinstance(model, ClassificationModel):
        return list(out)
    first = out[0]
    return list(first) if isinstance(first, (tuple, list)) else [first]


@pytest.fixture(scope="module", params=list(YOLOV12))
def yolov12_case(request, tmp_path_factory):
    """``(name, loaded model, reference)``: the official weights in the fork's classes, saved, loaded by YOLO()."""
    from ultralytics import YOLO

    name = request.param
    yaml, scale, extras, task = YOLOV12[name]
    manifest, ref = reference("yolov12", name)
    _, released = _as_released_turbo(scale, yaml, extras, task)  # stock classes holding turbo attention, stock YAML
    if task is ClassificationModel:
        assert released.yaml["nc"] == manifest["nc"] == 1000
    sd = official_weights(manifest, ref, tuple(ref.get("kept_model_values", ())))
    released.load_state_dict(sd, strict=True)  # same keys and shapes as the official model, in any order
    assert list(released.state_dict()) == [k for k, _ in manifest["keys"]]  # and in the same order
    path = tmp_path_factory.mktemp(name) / f"yolov12{scale}-{name}.pt"
    torch.save({"model": released.float(), "ema": None, "epoch": -1, "train_args": {}}, path)
    return name, YOLO(str(path)).model, ref


def _reference_tensors(name: str, ref: dict) -> list[torch.Tensor]:
    out = ref["outputs"]
    if name.startswith("cls"):
        return list(out)
    if name.startswith("seg"):
        decoded, (_, _, protos) = out
        return [decoded, protos]
    return [out[0]]


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_yolov12_official_outputs(yolov12_case, dtype, tolerance):
    from ultra_ext.nn.yolov12 import A2C2fTurbo

    name, model, ref = yolov12_case
    assert type(model.model[6]) is A2C2fTurbo  # converted in memory by YOLO(path)
    model = copy.deepcopy(model).to(dtype).eval()
    x = (ref["inputs"].double() / 255).to(dtype)
    errors = relative_errors(_yolov12_outputs(model, x), _reference_tensors(name, ref))
    print(f"\nPARITY yolov12 {name} {dtype} max relative error {max(errors):.1e}")
    assert max(errors) <= tolerance, (name, errors)
    if dtype is torch.float64:  # the comparison can fail: one weight of the first attention layer × 1.01
        with torch.no_grad():
            model.model[6].m[0][0].attn.v.conv.weight.mul_(1.01)
        perturbed = relative_errors(_yolov12_outputs(model, x), _reference_tensors(name, ref))
        print(f"PARITY yolov12 {name} one weight × 1.01: {max(perturbed):.1e}")
        assert max(perturbed) > 1e3 * tolerance, (name, perturbed)


# ------------------------------------------------------------------------------------------------ Generalist
def _official_generalist_file(path: Path, monkeypatch) -> Path:
    """The official state dict in the official classes (models.yolo.SegmentationModel, DualDPanoptic, ...)."""
    manifest, ref = reference("generalist", "gyolo")
    sd = official_weights(manifest, ref, ("model.55.dfl.conv.weight", "model.55.dfl2.conv.weight",
                                          "model.55.dfl3.conv.weight"))  # fmt: skip
    elan_b = foreign_class(monkeypatch, "models.common", "RepNCSPELAN4B")
    classes = {
        "": foreign_class(monkeypatch, "models.yolo", "SegmentationModel"),
        "model.55": foreign_class(monkeypatch, "models.yolo", "DualDPanoptic"),
        "model.56": foreign_class(monkeypatch, "models.grit", "Grit"),
        **{f"model.{i}": elan_b for i in (17, 20, 23)},
    }
    model = module_tree(sd, classes)
    torch.save({"epoch": -1, "best_fitness": None, "model": model, "ema": None, "updates": None,
                "optimizer": None, "optimizer2": None, "opt": {"cfg": "models/caption/gyolo.yaml"}}, path)  # fmt: skip
    monkeypatch.undo()  # the official packages are gone again
    return path


def _generalist_outputs(model, x, channels) -> list[torch.Tensor]:
    """Ours in the layout of the official layer-55 eval output: the one-to-one head decoded (xywh, sigmoid scores,
    mask coefficients), its raw box/class logits, mask coefficients, prototypes, the stored semantic channels."""
    head = model.model[-1]
    with torch.no_grad():
        (_, protos, semantic), preds = model(x)
        o2o = preds["one2one"]
        decoded = head._inference(o2o)
    raw = torch.cat((o2o["boxes"], o2o["scores"]), 1)
    return [decoded, raw, o2o["mask_coefficient"], protos, semantic[:, channels]]


def _generalist_reference(ref: dict) -> list[torch.Tensor]:
    decoded, (levels, coefficients, protos, semantic) = ref["outputs"]
    raw = torch.cat([level.flatten(2) for level in levels], 2)  # (B, 64 + 80, A), anchors row-major per level
    return [decoded, raw, coefficients, protos, semantic]


def test_generalist_official_checkpoint_loads_and_matches(tmp_path, monkeypatch, capsys):
    from ultralytics import YOLO

    from ultra_ext.cli import main

    from ultra_ext.models.generalist import GeneralistModel

    _, ref = reference("generalist", "gyolo")
    path = _official_generalist_file(tmp_path / "gyolo.pt", monkeypatch)
    yolo = YOLO(str(path))
    assert yolo.task == "generalist" and type(yolo.model) is GeneralistModel
    head = yolo.model.model[-1]
    assert (head.nc, head.sem_nc, head.semantic.out_channels) == (80, 93, 173)
    assert sum(p.numel() for p in yolo.model.parameters()) == 26_488_701  # the official vision path, exactly
    channels = ref["semantic_channels"]
    expected = _generalist_reference(ref)
    for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        model = copy.deepcopy(yolo.model).to(dtype).eval()
        x = (ref["inputs"].double() / 255).to(dtype)
        errors = relative_errors(_generalist_outputs(model, x, channels), expected)
        print(f"\nPARITY generalist {dtype} max relative error {max(errors):.1e}")
        assert max(errors) <= tolerance, (dtype, errors)
    with torch.no_grad():  # the comparison can fail: one weight of the P3 RepNCSPELAN4B × 1.01
        model = copy.deepcopy(yolo.model).double().eval()
        model.model[16].cv5.conv.weight.mul_(1.01)
    perturbed = relative_errors(_generalist_outputs(model, ref["inputs"].double() / 255, channels), expected)
    print(f"PARITY generalist one weight × 1.01: {max(perturbed):.1e}")
    assert max(perturbed) > 1e-6, perturbed

    capsys.readouterr()  # `ultra-ext convert` writes what YOLO(path) built, and says what it dropped
    assert main(["convert", str(path), "-o", str(tmp_path / "gyolo-ultra.pt")]) == 0
    out = capsys.readouterr().out
    assert "an official Generalist YOLO checkpoint" in out and "gyolo-generalist-l (nc=80, sem_nc=93)" in out
    assert "dropped (no counterpart yet): PGI auxiliary branch (training only): 726 tensors" in out
    assert "dropped (no counterpart yet): captioner (Grit): 127 tensors" in out
    written = YOLO(str(tmp_path / "gyolo-ultra.pt")).model.state_dict()
    loaded = yolo.model.state_dict()
    assert written.keys() == loaded.keys() and all(torch.equal(written[k], loaded[k]) for k in loaded)


def test_generalist_dropped_groups_are_reported_exactly():
    """The PGI branch and the captioner have no counterpart yet: every official tensor is either converted or in
    a dropped group, with the counts of the released layout."""
    from ultra_ext.convert.generalist import build_generalist, map_generalist_state_dict

    manifest, ref = reference("generalist", "gyolo")
    sd = official_weights(manifest, ref)
    model = build_generalist(80, 93)
    mapping, dropped = map_generalist_state_dict(sd, model)
    assert len(mapping) == len(model.state_dict()) == 1491 and len(sd) == 2516
    assert [line.split(":")[0] for line in dropped] == [
        "PGI auxiliary branch (training only)",
        "PGI auxiliary head parts",
        "captioner (Grit)",
        "spare DFL ramp of the one-to-one head (the same fixed 0..15 as ours)",
    ]
    counts = [int(line.split(": ")[1].split()[0]) for line in dropped]
    assert counts == [726, 171, 127, 1] and sum(counts) + 1491 == 2516
    # spot checks of the renames, one per rule
    for official, ours in {
        "model.1.conv.weight": "model.0.conv.weight",
        "model.17.cvcap.conv.weight": "model.16.cv5.conv.weight",
        "model.43.cv1.conv.weight": "model.23.cv1.conv.weight",
        "model.54.bn.running_var": "model.30.bn.running_var",
        "model.55.cv4.1.2.weight": "model.31.cv2.1.2.weight",
        "model.55.cv5.2.3.conv.weight": "model.31.cv3.2.1.1.conv.weight",
        "model.55.cv7.0.4.bias": "model.31.one2one_cv3.0.2.bias",
        "model.55.cv9.0.0.conv.weight": "model.31.cv4.0.0.conv.weight",
        "model.55.uconv2.weight": "model.31.semantic.weight",
    }.items():
        assert mapping[official] == ours, official
    del sd["model.55.cv9.0.0.conv.weight"]
    sd["model.55.extra.weight"] = torch.zeros(1)
    sd["model.5.cv1.conv.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(ValueError) as e:
        map_generalist_state_dict(sd, model)
    message = str(e.value)
    for fragment in ("official keys no rule places: model.55.extra.weight",
                     "keys of ours that receive nothing: model.31.cv4.0.0.conv.weight",
                     "shape mismatches: model.5.cv1.conv.weight (3, 3, 1, 1) → model.4.cv1.conv.weight"):  # fmt: skip
        assert fragment in message, message


# ------------------------------------------------------------------------------------------------ every scale
# manifest → (our YAML, model class, A2C2f extras of that code base at that scale)
MANIFEST_CASES = {
    **{f"det-{s}": ("yolov12{}-turbo.yaml", DetectionModel, (s in "lx", 1.5 if s in "lx" else 2.0)) for s in "nsmlx"},
    "seg-n": ("yolov12{}-seg.yaml", SegmentationModel, (True, 2.0)),
    "seg-l": ("yolov12{}-seg.yaml", SegmentationModel, (True, 1.0)),
    "cls-n": ("yolov12{}-cls.yaml", ClassificationModel, (True, 2.0)),
    "cls-l": ("yolov12{}-cls.yaml", ClassificationModel, (True, 1.0)),
}


@pytest.mark.parametrize("name", MANIFEST_CASES)
def test_every_official_yolov12_scale_has_the_official_state_dict(name):
    """At every scale and task the official code builds, the released-style model (stock classes, turbo attention)
    has the official keys and shapes in the official order, and the upgrade reads back the extras the official
    parse_model appended."""
    from ultra_ext.convert.yolov12 import upgrade_yolo12

    yaml, task, (residual, mlp_ratio) = MANIFEST_CASES[name]
    manifest = json.loads((MANIFESTS / "yolov12" / f"official_state_dict_{name}.json").read_text())
    scale = manifest["scale"]
    _, released = _as_released_turbo(scale, yaml, {"residual": residual, "mlp_ratio": mlp_ratio}, task)
    ours = [(k, list(v.shape)) for k, v in released.state_dict().items()]
    assert ours == [(k, s) for k, s in manifest["keys"]]
    assert upgrade_yolo12(released, check=True) > 0
    rows = [r for r in released.yaml["backbone"] + released.yaml["head"] if r[2] == "ultra_ext.A2C2fTurbo"]
    assert {tuple(r[3][3:]) for r in rows} == {(residual, mlp_ratio)}


# ------------------------------------------------------------------------------------------------ Gold-YOLO
def test_goldyolo_official_checkpoint_loads_and_matches(tmp_path, monkeypatch):
    """Gold-YOLO-N as the official code pickles it (yolov6/gold_yolo/mmcv classes, fp32 here). Its eval output is
    (B, A, 4 + 1 + nc): xywh boxes in pixels, a constant 1 where YOLOv6 once had objectness, sigmoid scores."""
    from ultralytics import YOLO

    manifest = read_goldyolo_manifest()
    ref = torch.load(MANIFESTS / "goldyolo" / "reference_n.pt", weights_only=True)
    sd = random_state_dict(manifest, 0)
    sd.update(ref["bn_stats"])
    sd["detect.proj"] = torch.arange(17.0)  # the official model's own fixed DFL ramp (unused by N, checked by us)
    sd["detect.proj_conv.weight"] = torch.arange(17.0).view(1, 17, 1, 1)
    classes = {
        "": foreign_class(monkeypatch, "yolov6.models.yolo", "Model"),
        "neck": foreign_class(monkeypatch, "gold_yolo.reppan", "RepGDNeck"),
        "detect": foreign_class(monkeypatch, "yolov6.models.effidehead", "Detect"),
    }
    path = tmp_path / "Gold_n.pt"
    torch.save({"model": module_tree(sd, classes), "ema": None, "optimizer": None, "epoch": 0}, path)
    monkeypatch.undo()
    yolo = YOLO(str(path))
    assert yolo.model.yaml["reg_max"] == 1 and yolo.model.yaml["scale"] == "n"
    det = ref["outputs"][0]  # (B, A, 85)
    assert torch.equal(det[..., 4], torch.ones_like(det[..., 4]))
    expected = [det[..., :4].transpose(1, 2), det[..., 5:].transpose(1, 2)]
    for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        model = copy.deepcopy(yolo.model).to(dtype).eval()
        with torch.no_grad():
            y = model((ref["inputs"].double() / 255).to(dtype))[0]
        errors = relative_errors([y[:, :4], y[:, 4:]], expected)
        print(f"\nPARITY goldyolo n {dtype} max relative error {max(errors):.1e}")
        assert max(errors) <= tolerance, (dtype, errors)
    model = copy.deepcopy(yolo.model).double().eval()
    with torch.no_grad():  # the comparison can fail: one weight of the low-stage gather × 1.01
        model.model[11].reduce.conv.weight.mul_(1.01)
        y = model(ref["inputs"].double() / 255)[0]
    perturbed = relative_errors([y[:, :4], y[:, 4:]], expected)
    print(f"PARITY goldyolo n one weight × 1.01: {max(perturbed):.1e}")
    assert max(perturbed) > 1e-6, perturbed


def read_goldyolo_manifest() -> list[tuple[str, tuple]]:
    data = json.loads((MANIFESTS / "goldyolo" / "official_state_dict_n.json").read_text())
    return [(k, tuple(s)) for k, s in data["keys"]]


# ------------------------------------------------------------------------------------------------ PST
@pytest.mark.parametrize("topk", [0, 8])
def test_pst_official_checkpoint_loads_and_matches(tmp_path, monkeypatch, topk):
    """The PST release's n model as its fork pickles it (the fork's PST classes, which stock Ultralytics lacks),
    coarse-only (the fork's default) and with the fine stage at k = 8 (the stored gate: ``gate='learned'``)."""
    from ultralytics import YOLO

    from ultra_ext.nn.pst import set_pst_options

    data = json.loads((MANIFESTS / "pst" / "official_state_dict_yolov12-pst-n.json").read_text())
    ref = torch.load(MANIFESTS / "pst" / "reference_yolov12-pst-n.pt", weights_only=True)
    sd = random_state_dict([(k, tuple(s)) for k, s in data["keys"]], 0)
    sd.update(ref["bn_stats"])
    sd["model.21.dfl.conv.weight"] = DFL_RAMP.clone()
    fork_pst = foreign_class(monkeypatch, "ultralytics.nn.modules.block", "PST")
    fork_attn = foreign_class(monkeypatch, "ultralytics.nn.modules.block", "PSAttn")
    classes = {"model.11": fork_pst, "model.14": fork_pst,
               "model.11.attnlayer_0.attn": fork_attn, "model.14.attnlayer_0.attn": fork_attn}  # fmt: skip
    path = tmp_path / "yolo11n-pst.pt"
    torch.save({"model": module_tree(sd, classes), "ema": None, "epoch": -1, "train_args": {}}, path)
    monkeypatch.undo()
    yolo = YOLO(str(path))
    assert set_pst_options(yolo.model, topk=topk, gate="learned") == 2
    expected = [ref["outputs"][f"k{topk}"][0]]
    for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        model = copy.deepcopy(yolo.model).to(dtype).eval()
        with torch.no_grad():
            y = model((ref["inputs"].double() / 255).to(dtype))[0]
        errors = relative_errors([y], expected)
        print(f"\nPARITY pst n k={topk} {dtype} max relative error {max(errors):.1e}")
        assert max(errors) <= tolerance, (dtype, errors)
    model = copy.deepcopy(yolo.model).double().eval()
    with torch.no_grad():  # the comparison can fail: one weight of the first PST × 1.01
        model.model[11].cv1.conv.weight.mul_(1.01)
        y = model(ref["inputs"].double() / 255)[0]
    perturbed = relative_errors([y], expected)
    print(f"PARITY pst n k={topk} one weight × 1.01: {max(perturbed):.1e}")
    assert max(perturbed) > 1e-6, perturbed
