"""The model catalog (``ultra-ext models``): every shipped YAML with family, task, names per scale, parameters."""

from __future__ import annotations

import pytest
from ultralytics import YOLO

from ultra_ext.integration.yaml_lookup import find_model_yaml
from ultra_ext.catalog import catalog
from ultra_ext.integration.yaml_lookup import scale_name

ENTRIES = {e.file: e for e in catalog()}


def test_every_yaml_is_listed_with_family_and_task():
    expected = {
        "yolov12.yaml": ("YOLOv12", "detect"), "yolov12-seg.yaml": ("YOLOv12", "segment"),
        "yolov12-cls.yaml": ("YOLOv12", "classify"), "goldyolo-n.yaml": ("Gold-YOLO", "detect"),
        "yolov12-pose.yaml": ("YOLOv12", "pose"), "yolov12-obb.yaml": ("YOLOv12", "obb"),
        "yolov12-pst-pose.yaml": ("PST", "pose"), "yolov12-pst-obb.yaml": ("PST", "obb"),
        "r18-pst.yaml": ("PST", "detect"), "r101-cls-pst.yaml": ("PST", "classify"),
        "yolo11-pst.yaml": ("PST", "detect"), "yolo11-cls-pst.yaml": ("PST", "classify"),
        "gyolo.yaml": ("Generalist YOLO", "detect"), "gyolo-seg.yaml": ("Generalist YOLO", "segment"),
        "gyolo-sem.yaml": ("Generalist YOLO", "semantic"), "gyolo-generalist.yaml": ("Generalist YOLO", "generalist"),
    }  # fmt: skip
    for file, (family, task) in expected.items():
        assert (ENTRIES[file].family, ENTRIES[file].task) == (family, task), file
    assert len(ENTRIES) == 25 and all(e.paper != "–" for e in ENTRIES.values())


@pytest.mark.parametrize(
    "file, scale, name",
    [("yolov12-turbo.yaml", "s", "yolov12s-turbo.yaml"), ("yolo11-cls-pst.yaml", "m", "yolo11m-cls-pst.yaml"),
     ("gyolo-seg.yaml", "x", "gyolo-seg-x.yaml"), ("goldyolo-l.yaml", "l", "goldyolo-l.yaml")],
)  # fmt: skip
def test_scale_names(file, scale, name):
    assert scale_name(file, scale) == name


def test_every_listed_name_resolves_to_its_file():
    for entry in ENTRIES.values():
        for name in entry.names:
            assert find_model_yaml(name)[0].name == entry.file, name


@pytest.mark.parametrize(
    "name", ["gyolo-generalist-n.yaml", "goldyolo-n.yaml", "yolo11n-pst.yaml", "yolov12n-cls.yaml"]
)
def test_meta_device_counts_equal_built_models(name):
    """Counted on the meta device without a forward; equal to the real model's count."""
    entry = next(e for e in ENTRIES.values() if name in e.names)
    built = sum(p.numel() for p in YOLO(name).model.parameters())
    assert entry.params[entry.names.index(name)] == built
