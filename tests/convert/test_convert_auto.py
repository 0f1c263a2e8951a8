"""``ultra-ext convert``: what a file is (from its pickled classes), one command for every source, clear refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import foreign_class, module_tree
from test_convert_goldyolo import _released_n
from test_convert_goldyolo import synthetic as goldyolo_state_dict
from test_convert_pst import fork_checkpoint  # noqa: F401  (a fixture)
from test_convert_yolov12 import _as_released_turbo
from ultralytics.nn.tasks import DetectionModel

from ultra_ext.cli import main
from ultra_ext.convert.auto import NotConvertible, convert_checkpoint, identify_for_conversion
from ultra_ext.convert.identify import identify


def official_goldyolo_file(path, monkeypatch):
    """A file as the official Gold-YOLO code writes it: its classes (yolov6.*, gold_yolo.*) pickled, fp16, N scale
    as released (distilled: an auxiliary DFL box branch beside the one the official inference uses)."""
    model = module_tree(
        _released_n(),
        {
            "": foreign_class(monkeypatch, "yolov6.models.yolo", "Model"),
            "neck": foreign_class(monkeypatch, "gold_yolo.reppan", "RepGDNeck"),
        },
    )
    torch.save({"model": model.half(), "ema": None, "optimizer": None, "epoch": -1}, path)
    monkeypatch.undo()  # the official packages are gone again
    return path


def released_turbo_file(path):
    ours, released = _as_released_turbo("n")
    torch.save({"model": released.half(), "ema": None, "epoch": -1, "train_args": {}}, path)
    return ours, path


# ------------------------------------------------------------------------------------------------ identify
def test_each_source_is_recognised_by_its_classes(tmp_path, monkeypatch, fork_checkpoint):  # noqa: F811
    torch.save({"model": DetectionModel("yolo11n.yaml", verbose=False)}, tmp_path / "yolo11n.pt")
    torch.save({"model": DetectionModel("yolo12n.yaml", verbose=False)}, tmp_path / "yolo12n.pt")
    torch.save({"model": DetectionModel("yolov12n.yaml", verbose=False)}, tmp_path / "ours.pt")
    released_turbo_file(tmp_path / "turbo.pt")
    official_goldyolo_file(tmp_path / "gold.pt", monkeypatch)
    expected = {
        "yolo11n.pt": ("ultralytics", ["ultralytics.nn.tasks.DetectionModel"]),
        "yolo12n.pt": ("yolov12", ["ultralytics.nn.modules.block.AAttn"]),
        "turbo.pt": ("yolov12", ["ultralytics.nn.modules.block.AAttn"]),
        "ours.pt": ("ultra_ext", None),
        "gold.pt": ("goldyolo", ["gold_yolo.reppan.RepGDNeck"]),
    }
    for name, (source, evidence) in expected.items():
        found = identify(tmp_path / name)
        assert found.source == source, name
        if evidence is not None:
            assert found.evidence == evidence, name
    pst = identify(fork_checkpoint[0])
    assert pst.source == "pst" and "ultralytics.nn.modules.block.PST" in pst.evidence


def test_bare_state_dicts_are_recognised_by_their_keys(tmp_path):
    torch.save(goldyolo_state_dict("n"), tmp_path / "gold_sd.pt")
    torch.save({"model": goldyolo_state_dict("n")}, tmp_path / "gold_wrapped.pt")
    assert identify_for_conversion(tmp_path / "gold_sd.pt").source == "goldyolo"
    assert identify_for_conversion(tmp_path / "gold_wrapped.pt").source == "goldyolo"
    torch.save({"layer.weight": torch.zeros(2)}, tmp_path / "other_sd.pt")
    with pytest.raises(NotConvertible, match=r"torch only \(a bare state dict\?\); top-level keys: layer.weight"):
        identify_for_conversion(tmp_path / "other_sd.pt")


def test_an_unknown_file_is_described_with_what_was_found(tmp_path, monkeypatch):
    detector = foreign_class(monkeypatch, "mmdet.models.detectors.retinanet", "RetinaNet")
    torch.save({"meta": {"epoch": 12}, "state_dict": None, "model": detector()}, tmp_path / "retina.pt")
    monkeypatch.undo()
    with pytest.raises(NotConvertible) as e:
        identify_for_conversion(tmp_path / "retina.pt")
    message = str(e.value)
    for fragment in (
        "retina.pt: cannot tell what this checkpoint is: classes from MMDetection",
        "pickled classes: mmdet.models.detectors.retinanet.RetinaNet",
        "top-level keys: meta, model, state_dict",
        "ultra_ext converts:",
        "an official Gold-YOLO checkpoint (the YOLOv6 fork)",
        "an official Generalist YOLO checkpoint",
    ):
        assert fragment in message, (fragment, message)
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(NotConvertible, match="not a torch.save zip archive"):
        identify_for_conversion(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        identify_for_conversion(tmp_path / "missing.pt")


def test_files_that_need_no_conversion_say_so(tmp_path):
    torch.save({"model": DetectionModel("yolo11n.yaml", verbose=False)}, tmp_path / "yolo11n.pt")
    with pytest.raises(NotConvertible, match="a stock Ultralytics checkpoint .* nothing to convert"):
        convert_checkpoint(tmp_path / "yolo11n.pt")


# ------------------------------------------------------------------------------------------------ one command
def test_convert_command_turbo(tmp_path, capsys):
    from ultralytics import YOLO

    from ultra_ext.nn.yolov12 import A2C2fTurbo

    ours, src = released_turbo_file(tmp_path / "yolov12n-turbo.pt")
    dst = tmp_path / "out" / "converted.pt"
    assert main(["convert", str(src), "-o", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "authors' turbo" in out and "(pickled ultralytics.nn.modules.block.AAttn)" in out
    assert "(turbo attention, 21 modules upgraded, nc=80)" in out
    loaded = YOLO(str(dst)).model
    assert type(loaded.model[6]) is A2C2fTurbo
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.float().eval()(x)[0], ours.half().float()(x)[0], rtol=1e-4, atol=1e-3)


def test_convert_command_goldyolo_and_pst(tmp_path, monkeypatch, capsys, fork_checkpoint):  # noqa: F811
    from ultralytics import YOLO

    gold = official_goldyolo_file(tmp_path / "Gold_n.pt", monkeypatch)
    assert main(["convert", str(gold), "-o", str(tmp_path / "gold.pt"), "--dfl"]) == 0
    out = capsys.readouterr().out
    assert "an official Gold-YOLO checkpoint" in out and "goldyolo-n (nc=80, reg_max=17)" in out
    assert "(pickled gold_yolo.reppan.RepGDNeck)" in out
    assert YOLO(str(tmp_path / "gold.pt")).model.model[-1].reg_max == 17
    written = torch.load(tmp_path / "gold.pt", weights_only=False)["model"]
    assert next(written.parameters()).dtype == torch.float16  # an fp16 source is written fp16: nothing lost

    assert main(["convert", str(fork_checkpoint[0]), "-o", str(tmp_path / "pst.pt"), "--gate", "learned"]) == 0
    assert "yolov12n-pst (nc=80, gate=learned)" in capsys.readouterr().out
    assert YOLO(str(tmp_path / "pst.pt")).model.model[11].attnlayer_0.attn.gate_mode == "learned"


def test_convert_command_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.pt")]) == 1
    assert "error: checkpoint not found" in capsys.readouterr().err
    torch.save({"layer.weight": torch.zeros(2)}, tmp_path / "odd.pt")
    assert main(["convert", str(tmp_path / "odd.pt"), "-o", str(tmp_path / "x.pt")]) == 1
    assert "cannot tell what this checkpoint is" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------------------------------ load as is
def test_yolo_loads_released_turbo_weights_as_they_are(tmp_path):
    """Stock Ultralytics fails on these ('AAttn' object has no attribute 'qkv'); with ultra_ext they just load."""
    import logging

    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    from ultra_ext.nn.yolov12 import AreaAttentionTurbo

    ours, src = released_turbo_file(tmp_path / "yolov12n-turbo.pt")
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        model = YOLO(str(src))
    finally:
        LOGGER.removeHandler(handler)
    notices = [r.getMessage() for r in records if "converted in memory" in r.getMessage()]
    assert len(notices) == 1 and f"ultra-ext convert {src}" in notices[0], notices
    assert "authors' turbo attention" in notices[0]
    assert type(model.model.model[6].m[0][0].attn) is AreaAttentionTurbo
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.model.float().eval()(x)[0], ours.half().float()(x)[0], rtol=1e-4, atol=1e-3)


def test_stock_yolo12_loads_untouched(tmp_path):
    from ultralytics import YOLO
    from ultralytics.nn.modules.block import AAttn

    torch.save({"model": DetectionModel("yolo12n.yaml", verbose=False)}, tmp_path / "yolo12n.pt")
    assert type(YOLO(str(tmp_path / "yolo12n.pt")).model.model[6].m[0][0].attn) is AAttn


def test_yolo_loads_official_goldyolo_and_pst_files_safe_load_included(
    tmp_path, monkeypatch, fork_checkpoint  # noqa: F811
):
    from ultralytics import YOLO
    from ultralytics.nn import tasks

    from ultra_ext.nn.pst import PST

    gold = official_goldyolo_file(tmp_path / "Gold_n.pt", monkeypatch)
    assert YOLO(str(gold)).model.yaml["yaml_file"].startswith("goldyolo-n")
    monkeypatch.setattr(tasks, "SAFE_LOAD", True)
    model = YOLO(str(fork_checkpoint[0])).model
    assert isinstance(model.model[11], PST) and model.names[79] == "class79"


def test_a_recognised_file_that_does_not_convert_fails_loading(tmp_path, monkeypatch):
    from ultralytics import YOLO

    sd = goldyolo_state_dict("n")
    del sd["neck.low_IFM.0.conv.weight"]
    classes = {"": foreign_class(monkeypatch, "yolov6.models.yolo", "Model"),
               "neck": foreign_class(monkeypatch, "gold_yolo.reppan", "RepGDNeck")}  # fmt: skip
    torch.save({"model": module_tree(sd, classes)}, tmp_path / "Gold_n.pt")
    monkeypatch.undo()
    expected = "an official Gold-YOLO checkpoint .* cannot convert it: (.|\n)*receive nothing: model.11.reduce"
    with pytest.raises(ValueError, match=expected):
        YOLO(str(tmp_path / "Gold_n.pt"))


def test_readers_cover_every_convertible_source():
    from ultra_ext.convert.auto import READERS
    from ultra_ext.convert.identify import CONVERTIBLE, SOURCES

    assert set(READERS) == set(CONVERTIBLE) and set(CONVERTIBLE) <= set(SOURCES)
    assert copy.copy(CONVERTIBLE) == ("yolov12", "pst", "goldyolo", "generalist")


def test_released_turbo_weights_load_under_safe_loading(tmp_path, monkeypatch):
    """ULTRALYTICS_SAFE_LOAD: the stock restricted load reads the stock classes, then the upgrade runs as usual."""
    from ultralytics import YOLO
    from ultralytics.nn import tasks

    from ultra_ext.nn.yolov12 import AreaAttentionTurbo

    ours, src = released_turbo_file(tmp_path / "yolov12n-turbo.pt")
    monkeypatch.setattr(tasks, "SAFE_LOAD", True)
    model = YOLO(str(src)).model
    assert type(model.model[6].m[0][0].attn) is AreaAttentionTurbo
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.float().eval()(x)[0], ours.half().float()(x)[0], rtol=1e-4, atol=1e-3)


def test_a_training_checkpoint_with_ema_only_and_numpy_state_converts(tmp_path, capsys):
    """What the fork writes mid-training: ``model`` None, the EMA model, numpy training state. The numpy objects are
    read as stubs (never run), dropped from the rewritten file, and the model converts."""
    import numpy as np
    from ultralytics import YOLO

    from ultra_ext.nn.yolov12 import A2C2fTurbo

    _, released = _as_released_turbo("n")
    src, dst = tmp_path / "last.pt", tmp_path / "converted.pt"
    torch.save({"model": None, "ema": released.half(), "best_fitness": np.float64(0.25), "epoch": 3,
                "train_metrics": {"fitness": np.float64(0.25)}}, src)  # fmt: skip
    assert type(YOLO(str(src)).model.model[6]) is A2C2fTurbo
    assert main(["convert", str(src), "-o", str(dst)]) == 0
    ckpt = torch.load(dst, weights_only=False)
    assert ckpt["best_fitness"] is None and ckpt["train_metrics"] is None and ckpt["epoch"] == 3
    assert type(YOLO(str(dst)).model.model[6]) is A2C2fTurbo


def test_plain_yolov6_is_not_called_gold_yolo(tmp_path, monkeypatch):
    model = foreign_class(monkeypatch, "yolov6.models.yolo", "Model")()
    torch.save({"model": model}, tmp_path / "yolov6n.pt")
    monkeypatch.undo()
    with pytest.raises(NotConvertible, match="classes from YOLOv6 .*pickled classes: yolov6.models.yolo.Model"):
        identify_for_conversion(tmp_path / "yolov6n.pt")


def test_stock_checkpoints_skip_the_class_scan(tmp_path, monkeypatch):
    """Ultralytics' own checkpoints have no marker class name: the translator returns before walking the pickle."""
    from ultralytics import YOLO

    from ultra_ext.convert import identify as identify_module

    torch.save({"model": DetectionModel("yolo11n.yaml", verbose=False)}, tmp_path / "yolo11n.pt")
    calls = []
    monkeypatch.setattr(identify_module, "identify", lambda p: calls.append(p))
    assert identify_module.might_be_foreign(tmp_path / "yolo11n.pt") is False
    YOLO(str(tmp_path / "yolo11n.pt"))
    assert calls == []
