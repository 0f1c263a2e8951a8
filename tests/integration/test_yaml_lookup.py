"""Model YAML lookup by name (ultra_ext/integration/yaml_lookup.py) through the stock ``yaml_model_load``.

Every test runs from an empty temporary working directory, so nothing is found by accident in the repository.
Runtime: about 2 s (one n-scale parse_model build; the rest only loads YAMLs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import ultralytics
import ultralytics.nn.tasks as tasks
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import YAML

import ultra_ext
from ultra_ext.integration import LayerError

OUR_MODELS = Path(ultra_ext.__file__).resolve().parent / "cfg" / "models" / "yolov12"
STOCK_ROOT = Path(ultralytics.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ultra_ext.is_active()


def _layout(path: Path) -> dict:
    d = YAML.load(path)
    return {k: d[k] for k in ("scales", "backbone", "head")}


def _loaded_layout(d: dict) -> dict:
    return {k: d[k] for k in ("scales", "backbone", "head")}


@pytest.mark.parametrize(
    "name,file,scale",
    [
        ("yolov12n.yaml", "yolov12.yaml", "n"),
        ("yolov12x.yaml", "yolov12.yaml", "x"),
        ("yolov12-s.yaml", "yolov12.yaml", "s"),
        ("yolov12s-turbo.yaml", "yolov12-turbo.yaml", "s"),
        ("yolov12n-turbo.yaml", "yolov12-turbo.yaml", "n"),
        ("yolov12-turbo-m.yaml", "yolov12-turbo.yaml", "m"),
    ],
)
def test_our_names_resolve_from_any_cwd(name, file, scale):
    d = yaml_model_load(name)
    assert d["scale"] == scale
    assert d["yaml_file"] == name
    assert _loaded_layout(d) == _layout(OUR_MODELS / file)
    assert Path(tasks.check_yaml(name)).resolve() == OUR_MODELS / file


def test_unified_names_are_the_same_file():
    a, b = yaml_model_load("yolov12n-turbo.yaml"), yaml_model_load("yolov12-turbo-n.yaml")
    assert _loaded_layout(a) == _loaded_layout(b) and a["scale"] == b["scale"] == "n"
    assert _loaded_layout(a) != _loaded_layout(yaml_model_load("yolov12n.yaml"))  # turbo ≠ v1.0 layout


def test_user_yaml_next_to_the_given_path(tmp_path):
    shutil.copy(OUR_MODELS / "yolov12.yaml", tmp_path / "mynet.yaml")
    for name in (tmp_path / "mynet-s.yaml", tmp_path / "mynet_l.yaml"):
        d = yaml_model_load(name)
        assert d["scale"] == name.stem[-1], name
        assert _loaded_layout(d) == _layout(tmp_path / "mynet.yaml")
    assert Path(tasks.check_yaml(str(tmp_path / "mynet-s.yaml"))).resolve() == (tmp_path / "mynet.yaml").resolve()


def test_user_yaml_in_cwd_by_bare_name(tmp_path):
    shutil.copy(OUR_MODELS / "yolov12.yaml", tmp_path / "mynet.yaml")
    d = yaml_model_load("mynet-s.yaml")
    assert d["scale"] == "s" and _loaded_layout(d) == _layout(tmp_path / "mynet.yaml")


def test_user_yaml_in_another_folder(tmp_path):
    sub = tmp_path / "models"
    sub.mkdir()
    shutil.copy(OUR_MODELS / "yolov12-turbo.yaml", sub / "othernet.yaml")
    assert yaml_model_load(str(sub / "othernet-x.yaml"))["scale"] == "x"
    with pytest.raises(FileNotFoundError):  # not in cwd, not registered: not found by bare name
        yaml_model_load("othernet-x.yaml")


@pytest.mark.parametrize("name", ["yolov12-turbo-q.yaml", "yolov12-b.yaml"])
def test_unknown_scale_letter_names_the_scales(name):
    with pytest.raises(FileNotFoundError) as e:
        yaml_model_load(name)
    msg = str(e.value)
    assert name in msg and "n, s, m, l, x" in msg


def test_scale_missing_from_a_user_yaml(tmp_path):
    d = YAML.load(OUR_MODELS / "yolov12.yaml")
    d["scales"] = {k: d["scales"][k] for k in ("n", "s")}
    YAML.save(tmp_path / "tinynet.yaml", d)
    assert yaml_model_load(tmp_path / "tinynet-s.yaml")["scale"] == "s"
    with pytest.raises(FileNotFoundError, match="tinynet.yaml has no scale 'm'; its scales are n, s$"):
        yaml_model_load(tmp_path / "tinynet-m.yaml")


def test_stock_scale_guess_outside_our_scales_is_an_error(tmp_path):
    """``yolov77m.yaml``: stock lookup finds ``yolov77.yaml`` in cwd and guesses 'm', which the file lacks; stock
    parse_model would fail with a bare KeyError, ours names the scales."""
    d = YAML.load(OUR_MODELS / "yolov12.yaml")
    d["scales"] = {k: d["scales"][k] for k in ("n", "s")}
    YAML.save(tmp_path / "yolov77.yaml", d)
    assert yaml_model_load("yolov77m.yaml")["scale"] == "m"
    with pytest.raises(LayerError, match=r"scale 'm' is not one of this model's scales \(n, s\)"):
        DetectionModel("yolov77m.yaml", verbose=False)


def test_no_scale_is_an_error_for_our_yaml():
    """Stock would silently build the first scale; a YAML using our modules must name it."""
    d = yaml_model_load("yolov12.yaml")
    assert d["scale"] == ""
    with pytest.raises(LayerError, match="no model scale given") as e:
        DetectionModel("yolov12.yaml", verbose=False)
    assert "n, s, m, l, x" in str(e.value) and "yolov12.yaml" in str(e.value)


def test_scale_set_in_a_dict():
    d = yaml_model_load("yolov12.yaml")
    d["scale"] = "n"
    by_name = yaml_model_load("yolov12n.yaml")
    assert {k: v for k, v in d.items() if k != "yaml_file"} == {k: v for k, v in by_name.items() if k != "yaml_file"}
    layers, _ = tasks.parse_model(d, 3, verbose=False)  # what DetectionModel builds, minus its stride forward
    assert type(layers[6]).__module__ == "ultra_ext.nn.yolov12"
    assert layers[6].cv1.conv.in_channels == 128  # Conv 512 at width 0.25: the n scale was used
    d = yaml_model_load("yolov12.yaml")
    d["scale"] = "q"
    with pytest.raises(LayerError, match="scale 'q' is not one of"):
        DetectionModel(d, verbose=False)


@pytest.mark.parametrize(
    "name,file,scale",
    [
        ("yolo11n.yaml", "11/yolo11.yaml", "n"),
        ("yolo12s.yaml", "12/yolo12.yaml", "s"),
        ("yolov8m.yaml", "v8/yolov8.yaml", "m"),
        ("yolo26n-seg.yaml", "26/yolo26-seg.yaml", "n"),
        ("yolov8s-worldv2.yaml", "v8/yolov8-worldv2.yaml", "s"),
        ("yolov10n.yaml", "v10/yolov10n.yaml", "n"),
    ],
)
def test_stock_names_still_resolve_to_stock_files(name, file, scale):
    d = yaml_model_load(name)
    assert d["scale"] == scale
    assert _loaded_layout(d) == _layout(STOCK_ROOT / "cfg" / "models" / file)
    unified = name if (STOCK_ROOT / "cfg" / "models" / file).name == name else Path(file).name
    assert Path(tasks.check_yaml(unified)).resolve() == STOCK_ROOT / "cfg" / "models" / file


def test_stock_names_resolve_the_same_without_ultra_ext():
    names = ["yolo11n.yaml", "yolo12s.yaml", "yolov8m-p6.yaml", "yolo26n-seg.yaml"]
    ours = [yaml_model_load(n) for n in names]
    ultra_ext.deactivate()
    try:
        stock = [yaml_model_load(n) for n in names]
    finally:
        ultra_ext.activate()
    assert ours == stock


def test_missing_names_keep_the_stock_error():
    with pytest.raises(FileNotFoundError) as e:
        yaml_model_load("nosuchnet-n.yaml")
    assert "nosuchnet" in str(e.value)
    assert tasks.check_yaml("nosuchnet.yaml", hard=False) == []  # stock check_file's "not found" value


@pytest.mark.parametrize(
    "typed, suggested",
    [
        ("goldyolo-q.yaml", "goldyolo-n.yaml"),
        ("yolov12q.yaml", "yolov12n.yaml"),
        ("yolov12n.yml", "yolov12n.yaml"),  # the name as typed, not the unified 'yolov12.yml' looked up second
        ("gyolo-sge-n.yaml", "gyolo-seg-n.yaml"),
        ("yolo11q.yaml", "yolo11n.yaml"),  # stock names are suggested too
    ],
)
def test_mistyped_model_names_get_the_nearest_names(typed, suggested):
    from ultralytics import YOLO

    from ultra_ext.integration.yaml_lookup import ModelNotFoundError

    with pytest.raises(ModelNotFoundError) as e:
        YOLO(typed)
    message = str(e.value)
    assert message.startswith(f"model YAML '{typed}' not found") and f"'{suggested}'" in message
    assert "ultra-ext models" in message and "\n" not in message


def test_missing_scale_of_our_family_names_the_scales():
    from ultra_ext.integration.yaml_lookup import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match=r"'gyolo-q.yaml' not found: gyolo.yaml has no scale 'q'; its scales are n, s"):
        yaml_model_load("gyolo-q.yaml")


def test_a_name_like_nothing_keeps_the_stock_error():
    with pytest.raises(FileNotFoundError, match="'zzqqy.yaml' does not exist"):
        yaml_model_load("zzqqy.yaml")
