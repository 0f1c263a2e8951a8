"""Which names the YAML parser sees and which classes the safe loader allows (ultra_ext/integration/registry.py).

Runtime: about 2 s (models are built with parse_model alone: no stride forward).
"""

from __future__ import annotations

import logging

import pytest
import torch
import ultralytics.nn.tasks as tasks
from ultralytics.nn.modules.block import A2C2f as StockA2C2f
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import LOGGER

import ultra_ext
from ultra_ext.integration import LayerError, registry
from ultra_ext.nn import efficientrep, generalist, goldyolo, pst, yolov12

def _layers(name: str) -> torch.nn.Sequential:
    """The layers DetectionModel(name) would hold, without its stride forward (slow on a busy 2-core box)."""
    d = yaml_model_load(name)
    return tasks.parse_model(d, d.get("channels", 3), verbose=False)[0]


OURS = ("A2C2f", "A2C2fTurbo", "AreaAttention", "AreaAttentionTurbo", "AreaAttentionBlock", "AreaAttentionBlockTurbo")


def test_namespaced_aliases_in_tasks_globals():
    g = tasks.__dict__
    assert g["ultra_ext.A2C2f"] is yolov12.A2C2f
    assert g["ultra_ext.A2C2fTurbo"] is yolov12.A2C2fTurbo


def test_plain_names_only_where_free():
    g = tasks.__dict__
    assert g["A2C2f"] is StockA2C2f  # the stock name keeps meaning the stock class
    assert g["A2C2fTurbo"] is yolov12.A2C2fTurbo  # a free name is ours
    assert yolov12.A2C2f is not StockA2C2f


def test_only_yaml_classes_are_registered():
    """Sub-blocks without ul_parse are not YAML-visible (a row naming them would hit the stock fallback)."""
    assert set(registry.yaml_classes()) == {
        yolov12.A2C2f, yolov12.A2C2fTurbo,
        efficientrep.RepVGGBlock, efficientrep.BiasConv, efficientrep.SimConv, efficientrep.BepC3,
        efficientrep.SimSPPF, efficientrep.SimCSPSPPF,
        goldyolo.LowStageAlign, goldyolo.LowStageFusion, goldyolo.LocalFusion3, goldyolo.Injection,
        goldyolo.HighStageAlign, goldyolo.HighStageFusion, goldyolo.PoolConcat, goldyolo.EfficientDecoupledDetect,
        pst.PST,
        generalist.ScaledRepNCSPELAN4, generalist.RepNCSPELAN4B, generalist.ScaledSPPELAN, generalist.GeneralistDetect,
        generalist.GeneralistSegment, generalist.GeneralistSemanticSegment, generalist.GeneralistHead,
    }  # fmt: skip
    assert all("ul_parse" in dir(c) for c in registry.yaml_classes())
    inner_blocks = ("AreaAttention", "BottleRep", "ConvBN", "ConvAttention", "ConvTransformerBlock", "PyramidSparseBlock")
    for inner in inner_blocks:
        assert inner not in tasks.__dict__ and "ultra_ext." + inner not in tasks.__dict__


def test_stock_and_our_yolo12_layouts_are_separate_classes_with_one_state_dict():
    """``yolo12n.yaml`` builds Ultralytics' A2C2f, ``yolov12n.yaml`` ours; the v1.0 layout keeps the stock
    state-dict keys and shapes (its YAML promises weight compatibility)."""
    stock, ours = _layers("yolo12n.yaml"), _layers("yolov12n.yaml")
    for i in (6, 8, 11, 14, 17):
        assert type(stock[i]) is StockA2C2f
        assert type(ours[i]) is yolov12.A2C2f
    assert not any(type(m).__module__.startswith("ultra_ext") for m in stock.modules())
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(ours) == shapes(stock)


def _dict_with(module: str) -> dict:
    return {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, module, [16]]],
        "head": [[[-1], 1, "Detect", ["nc"]]],
    }


@pytest.mark.parametrize("name", ["NoSuchBlock", "ultra_ext.NoSuchBlock", "nn.NoSuchLayer", "AreaAttention"])
def test_unknown_module_lists_ours(name):
    with pytest.raises(LayerError) as e:
        DetectionModel(_dict_with(name), verbose=False)
    msg = str(e.value)
    assert msg.startswith(f"model YAML layer 1: unknown module {name!r}")
    assert "ultra_ext.A2C2f" in msg and "ultra_ext.A2C2fTurbo" in msg


def test_unknown_module_without_ultra_ext_is_the_stock_keyerror():
    """Control: the message above is ours; stock parse_model raises a bare KeyError."""
    ultra_ext.deactivate()
    try:
        with pytest.raises(KeyError, match="NoSuchBlock"):
            DetectionModel(_dict_with("NoSuchBlock"), verbose=False)
    finally:
        ultra_ext.activate()


@pytest.mark.parametrize("row", [[-1, 1, "Conv"], "Conv", [-1, 1, "Conv", [16], "extra"]])
def test_malformed_row(row):
    d = _dict_with("Conv")
    d["backbone"][1] = row
    with pytest.raises(LayerError, match="layer 1: a row must be"):
        DetectionModel(d, verbose=False)


def test_model_classes_cover_every_class_a_model_holds():
    classes = registry.model_classes()
    assert {c.__name__ for c in classes} >= set(OURS)
    assert all(issubclass(c, torch.nn.Module) and c.__module__.startswith("ultra_ext.nn") for c in classes)
    assert len(set(classes)) == len(classes)
    for name in ("yolov12n.yaml", "yolov12n-turbo.yaml"):
        held = {type(m) for m in _layers(name).modules() if type(m).__module__.startswith("ultra_ext")}
        assert held and held <= set(classes), name


def test_model_classes_are_safe_globals():
    safe = set(torch.serialization.get_safe_globals())
    missing = [c for c in registry.model_classes() if c not in safe]
    assert missing == []


def test_name_collision_keeps_the_existing_class_and_warns():
    class Occupant:
        pass

    ns = {"A2C2fTurbo": Occupant, "A2C2f": StockA2C2f}
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        added = registry.register_names(ns)
    finally:
        LOGGER.removeHandler(handler)
    assert ns["A2C2fTurbo"] is Occupant and ns["A2C2f"] is StockA2C2f
    assert ns["ultra_ext.A2C2fTurbo"] is yolov12.A2C2fTurbo and ns["ultra_ext.A2C2f"] is yolov12.A2C2f
    assert {k for k in added if "A2C2f" in k} == {"ultra_ext.A2C2f", "ultra_ext.A2C2fTurbo"}
    assert added["RepVGGBlock"] is added["ultra_ext.RepVGGBlock"] is efficientrep.RepVGGBlock  # free: both names
    warned = [r.getMessage() for r in records]
    assert len(warned) == 1 and "'A2C2fTurbo'" in warned[0] and "'ultra_ext.A2C2fTurbo'" in warned[0]  # not A2C2f
    registry.unregister_names(ns, added)
    assert ns == {"A2C2fTurbo": Occupant, "A2C2f": StockA2C2f}
