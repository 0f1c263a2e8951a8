"""Stock YOLO12 → ultra_ext upgrade: same weights, our classes and backends, same outputs, rebuildable YAML."""

from __future__ import annotations

import copy

import pytest
import torch
from ultralytics.nn.modules import block as stock_block
from ultralytics.nn.tasks import DetectionModel

import ultra_ext
from ultra_ext.nn.yolov12 import A2C2f, AreaAttention, AreaAttentionBlock
from ultra_ext.convert.yolov12 import upgrade_yolo12, upgrade_yolo12_checkpoint


def _perturbed_stock(scale: str) -> DetectionModel:
    torch.manual_seed(0)
    model = DetectionModel(f"yolo12{scale}.yaml", verbose=False).eval()
    with torch.no_grad():
        for p in model.parameters():  # away from the init so attention is not near-uniform
            p.add_(0.05 * torch.randn_like(p))
    return model


def _head_outputs(model, x):
    with torch.no_grad():
        return model(x)[0]


@pytest.mark.parametrize("scale, expected_modules", [("n", 21), ("l", 37)])
def test_upgrade_in_place_keeps_outputs(scale, expected_modules):
    model = _perturbed_stock(scale)
    x = torch.rand(1, 3, 128, 160)
    reference = _head_outputs(model, x)
    keys = {k: v.clone() for k, v in model.state_dict().items()}

    assert upgrade_yolo12(model) == expected_modules  # A2C2f + ABlocks + AAttns of layers 6, 8 (+ neck A2C2f)
    assert not any(isinstance(m, (stock_block.AAttn, stock_block.ABlock, stock_block.A2C2f)) for m in model.modules())
    assert isinstance(model.model[6], A2C2f) and model.model[6].type == "ultra_ext.nn.yolov12.A2C2f"
    assert isinstance(model.model[6].m[0][0], AreaAttentionBlock)
    state = model.state_dict()
    assert state.keys() == keys.keys() and all(torch.equal(state[k], keys[k]) for k in keys)  # no weight touched

    for backend in ("math", "sdpa"):
        with ultra_ext.attn_backend(backend):
            out = _head_outputs(model, x)
        rel = ((out - reference).abs().max() / reference.abs().max()).item()
        assert rel <= 1e-6, (backend, rel)
        report = ultra_ext.backend_report(model)
        assert report and set(report.values()) == {backend}


@pytest.mark.parametrize("scale", ["n", "l"])
def test_upgraded_yaml_rebuilds_the_same_model(scale):
    """model.yaml names our classes afterwards, with stock's implicit L/X (residual, mlp 1.2) written out."""
    model = _perturbed_stock(scale)
    upgrade_yolo12(model)
    rows = model.yaml["backbone"] + model.yaml["head"]
    assert [r[2] for r in rows].count("ultra_ext.A2C2f") == 5 and "A2C2f" not in [r[2] for r in rows]
    rebuilt = DetectionModel(model.yaml, verbose=False).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())
    if scale == "l":
        assert rebuilt.model[6].gamma is not None and rebuilt.model[6].m[0][0].mlp[0].conv.out_channels == int(256 * 1.2)
    x = torch.rand(1, 3, 96, 96)
    torch.testing.assert_close(_head_outputs(rebuilt, x), _head_outputs(model, x), rtol=1e-5, atol=1e-4)


def test_upgrade_checkpoint_file(tmp_path):
    model = _perturbed_stock("n")
    src, dst = tmp_path / "stock.pt", tmp_path / "ours.pt"
    torch.save({"model": model, "ema": None, "epoch": -1}, src)
    assert upgrade_yolo12_checkpoint(src, dst) == 21
    loaded = torch.load(dst, map_location="cpu", weights_only=False)["model"]
    assert type(loaded.model[8]) is A2C2f and type(loaded.model[8].m[0][0].attn) is AreaAttention
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(_head_outputs(loaded, x), _head_outputs(model, x), rtol=1e-5, atol=1e-4)


def test_upgrade_checkpoint_without_yolo12_is_an_error(tmp_path):
    src = tmp_path / "yolo11.pt"
    torch.save({"model": DetectionModel("yolo11n.yaml", verbose=False)}, src)
    with pytest.raises(ValueError, match="a stock Ultralytics checkpoint without YOLO12 attention .*ultra-ext convert"):
        upgrade_yolo12_checkpoint(src, tmp_path / "out.pt")


def _as_released_turbo(scale: str, yaml: str = "yolov12{}-turbo.yaml", scale_args: dict | None = None, task=None):
    """Our turbo model, and a copy as the YOLOv12 authors' released turbo weights unpickle in stock Ultralytics:
    stock ``AAttn``/``ABlock``/``A2C2f`` objects holding the turbo submodules (``qk``, ``v``) and a stock-style YAML.
    ``yaml``/``scale_args``/``task`` (a model class) make the seg and cls branches' models the same way."""
    from ultralytics.nn.tasks import yaml_model_load

    from ultra_ext.nn.yolov12 import A2C2f, A2C2fTurbo, AreaAttentionBlockTurbo, AreaAttentionTurbo

    torch.manual_seed(0)
    cfg = copy.deepcopy(yaml_model_load(yaml.format(scale)))
    for name, value in (scale_args or {}).items():
        cfg["scale_args"][name][scale] = value
    ours = (task or DetectionModel)(cfg, verbose=False).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    released = copy.deepcopy(ours)
    back = {AreaAttentionTurbo: stock_block.AAttn, AreaAttentionBlockTurbo: stock_block.ABlock,
            A2C2fTurbo: stock_block.A2C2f, A2C2f: stock_block.A2C2f}  # fmt: skip
    for m in released.modules():
        if type(m) in back:
            if type(m) is AreaAttentionTurbo:
                del m.attn_backend, m.last_backend  # attributes of ours only
            m.__class__ = back[type(m)]
    stock_yaml = copy.deepcopy(cfg)
    stock_yaml.pop("scale_args", None)
    for row in stock_yaml["backbone"] + stock_yaml["head"]:
        if row[2] in ("ultra_ext.A2C2fTurbo", "ultra_ext.A2C2f"):  # the fork's YAML: stock name, l/x extras implicit
            row[2], row[3] = "A2C2f", [a for a in row[3] if a not in ("residual", "mlp_ratio")]
    released.yaml = stock_yaml
    return ours, released


@pytest.mark.parametrize("scale", ["n", "l"])
def test_released_turbo_weights_upgrade_to_our_turbo_classes(scale):
    """Stock Ultralytics cannot run the released turbo weights ('qkv'); the upgrade makes them our turbo model."""
    from ultra_ext.convert.yolov12 import attention_layout
    from ultra_ext.nn.yolov12 import A2C2fTurbo, AreaAttentionTurbo

    ours, released = _as_released_turbo(scale)
    x = torch.rand(1, 3, 128, 160)
    with pytest.raises(AttributeError, match="qkv"):
        _head_outputs(released, x)
    assert attention_layout(released.model[6].m[0][0].attn) == "turbo"
    assert upgrade_yolo12(released) > 0
    assert type(released.model[6]) is A2C2fTurbo and type(released.model[6].m[0][0].attn) is AreaAttentionTurbo
    torch.testing.assert_close(_head_outputs(released, x), _head_outputs(ours, x), rtol=0, atol=0)
    rows = released.yaml["backbone"] + released.yaml["head"]
    assert {r[2] for r in rows if "A2C2f" in r[2]} == {"ultra_ext.A2C2fTurbo"}
    rebuilt = DetectionModel(released.yaml, verbose=False).eval()
    rebuilt.load_state_dict(released.state_dict(), strict=True)  # the rewritten YAML builds the same model
    torch.testing.assert_close(_head_outputs(rebuilt, x), _head_outputs(ours, x), rtol=1e-5, atol=1e-4)


def test_turbo_checkpoint_file_upgrades_and_runs(tmp_path):
    ours, released = _as_released_turbo("n")
    src, dst = tmp_path / "yolov12n-turbo-release.pt", tmp_path / "ours.pt"
    torch.save({"model": released.half(), "ema": None, "epoch": -1}, src)
    assert upgrade_yolo12_checkpoint(src, dst) == 21
    loaded = torch.load(dst, map_location="cpu", weights_only=False)["model"].float().eval()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(_head_outputs(loaded, x), _head_outputs(ours.half().float(), x), rtol=1e-4, atol=1e-3)


def test_an_attention_of_neither_layout_is_refused_and_nothing_is_written(tmp_path):
    model = _perturbed_stock("n")
    attn = model.model[6].m[0][0].attn
    attn.extra = torch.nn.Conv2d(1, 1, 1)  # a layout neither v1.0 nor turbo
    src, dst = tmp_path / "odd.pt", tmp_path / "out.pt"
    torch.save({"model": model}, src)
    with pytest.raises(ValueError, match=r"submodules \['qkv', 'proj', 'pe', 'extra'\] is neither YOLO12 layout"):
        upgrade_yolo12_checkpoint(src, dst)
    assert not dst.exists()


def test_a_model_that_does_not_run_after_the_upgrade_is_never_written(tmp_path, monkeypatch):
    from ultra_ext.nn.yolov12 import AreaAttention

    src, dst = tmp_path / "stock.pt", tmp_path / "out.pt"
    torch.save({"model": _perturbed_stock("n")}, src)

    def broken(self, x):
        raise RuntimeError("simulated mismatch")

    monkeypatch.setattr(AreaAttention, "forward", broken)
    with pytest.raises(ValueError, match=r"upgraded YAML does not build \(RuntimeError: simulated mismatch\)"):
        upgrade_yolo12_checkpoint(src, dst)
    assert not dst.exists()


@pytest.mark.parametrize("scale, residual, mlp_ratio", [("n", True, 2.0), ("l", True, 1.0)])
def test_seg_branch_weights_get_their_extras_from_the_weights(scale, residual, mlp_ratio):
    """The official seg branch appends (1.5, True) at L/X and True at N/S/M: residual on everywhere, MLP ratio 1.0 at
    L/X. Nothing in its YAML says so; the upgrade reads both from the weights and writes them into every row."""
    from ultralytics.nn.tasks import SegmentationModel

    ours, released = _as_released_turbo(
        scale, "yolov12{}-seg.yaml", {"residual": residual, "mlp_ratio": mlp_ratio}, SegmentationModel
    )
    assert upgrade_yolo12(released, check=True) > 0
    rows = [r for r in released.yaml["backbone"] + released.yaml["head"] if r[2] == "ultra_ext.A2C2fTurbo"]
    assert len(rows) == 5 and all(r[3][3:] == [residual, mlp_ratio] for r in rows)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(released(x)[0], ours(x)[0], rtol=0, atol=0)


def test_mlp_widths_no_ratio_explains_are_refused():
    _, released = _as_released_turbo("n")
    block = released.model[6].m[0][0]
    block.mlp[0].conv = torch.nn.Conv2d(64, 100, 1, bias=False)  # 100 / 64: none of 2.0, 1.5, 1.2, 1.0
    with pytest.raises(ValueError, match=r"row 6 \(A2C2f\): MLP widths \[\(64, 100\), \(64, 128\)\] .* match none"):
        upgrade_yolo12(released)


def test_a_yaml_that_does_not_rebuild_the_checkpoint_is_refused_and_nothing_is_written(tmp_path):
    """A fork change the YAML cannot express (here an extra parameter in the stem) is caught by the rebuild check."""
    _, released = _as_released_turbo("n")
    released.model[0].extra = torch.nn.Parameter(torch.ones(3))
    src, dst = tmp_path / "odd.pt", tmp_path / "out.pt"
    torch.save({"model": released}, src)
    with pytest.raises(ValueError, match=r"does not rebuild the model:\n  in the checkpoint only: model\.0\.extra"):
        upgrade_yolo12_checkpoint(src, dst)
    assert not dst.exists()
