"""Shipped datasets by name (``data=raccoon-mini.yaml``), served from a copy under Ultralytics' ``datasets_dir``."""

from __future__ import annotations

from pathlib import Path

import pytest
from ultralytics.data.utils import check_det_dataset
from ultralytics.utils import SETTINGS

import ultra_ext
from ultra_ext.integration import datasets

PACKAGE_DATA = Path(ultra_ext.__file__).resolve().parent / "data"


@pytest.fixture
def datasets_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(SETTINGS, "datasets_dir", str(tmp_path / "datasets"))  # dict item only: no settings file write
    return tmp_path / "datasets"


def test_every_shipped_dataset_is_listed():
    assert {"raccoon-mini.yaml", "raccoon-mini-seg.yaml"} <= set(datasets.shipped_datasets())


@pytest.mark.parametrize("name", ["raccoon-mini", "raccoon-mini.yaml", "raccoon-mini-seg.yaml"])
def test_names_resolve_to_a_copy_outside_the_package(datasets_dir, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    data = check_det_dataset(name)
    root = datasets_dir / "ultra_ext" / name.removesuffix(".yaml")
    assert Path(data["yaml_file"]) == root / "data.yaml"
    assert Path(data["train"]) == root / "images" / "train" and Path(data["val"]).is_dir()
    assert data["names"] == {0: "raccoon"}


def test_copy_is_made_once_and_again_when_the_shipped_files_change(datasets_dir, monkeypatch):
    first = datasets.materialize("raccoon-mini.yaml")
    marker = first.parent / "images" / "marker.txt"
    marker.write_text("a file the copy did not have")
    assert datasets.materialize("raccoon-mini.yaml") == first and marker.exists()  # unchanged source: kept
    monkeypatch.setattr(datasets, "_fingerprint", lambda folder: "changed")
    datasets.materialize("raccoon-mini.yaml")
    assert not marker.exists()  # a new fingerprint: copied afresh


def test_training_caches_land_in_the_copy_not_the_package(datasets_dir, tmp_path, monkeypatch):
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in PACKAGE_DATA.rglob("*.cache")}  # other tests train on the files directly
    YOLO("yolo11n.yaml").val(data="raccoon-mini.yaml", imgsz=64, batch=4, workers=0, device="cpu", plots=False)
    assert list((datasets_dir / "ultra_ext" / "raccoon-mini").rglob("*.cache"))
    assert {p: p.stat().st_mtime_ns for p in PACKAGE_DATA.rglob("*.cache")} == before


def test_a_users_own_file_of_the_same_name_wins(datasets_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "raccoon-mini.yaml"
    mine.write_text((PACKAGE_DATA / "raccoon-mini" / "data.yaml").read_text() + f"path: {PACKAGE_DATA / 'raccoon-mini'}\n")
    assert Path(check_det_dataset("raccoon-mini.yaml")["yaml_file"]).resolve() == mine
