"""COCO-style evaluation: the YOLO → COCO converter and pycocotools against Ultralytics' own mAP.

The agreement test runs Ultralytics' real ``DetectionValidator`` (dataloader, letterbox, ``match_predictions``,
``DetMetrics``, ``pred_to_json``) with a stub model; only ``postprocess`` is replaced, by deterministic jittered
ground truth (misses, duplicates, false positives, a spread of scores) in the letterboxed frame, so no training is
needed. Runtime: about 10 s on 2 CPU cores with one torch thread, most of it the untrained yolov12n ``val`` run.
"""

from __future__ import annotations

import json
import shutil
import sys
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ultra_ext
from ultra_ext.coco import STAT_NAMES, coco_eval, main, yolo_to_coco

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py (no package)
from helpers import make_tiny_dataset

RACCOON = Path(ultra_ext.__file__).parent / "data" / "raccoon-mini"
SPLITS = {"val": (12, 13), "train": (40, 46)}  # images, boxes in the shipped label files


@pytest.fixture(scope="module")
def raccoon(tmp_path_factory) -> Path:
    """A private copy of the shipped mini-dataset (Ultralytics writes labels/*.cache next to the labels)."""
    root = tmp_path_factory.mktemp("coco") / "raccoon-mini"
    shutil.copytree(RACCOON, root)
    return root / "data.yaml"


@pytest.mark.parametrize("split", SPLITS)
def test_converter_round_trip(raccoon, tmp_path, split):
    coco = json.loads(yolo_to_coco(raccoon, split, out=tmp_path / "a.json").read_text())
    images = {im["id"]: im for im in coco["images"]}
    assert coco["categories"] == [{"id": 1, "name": "raccoon", "supercategory": ""}]  # class_map: cls + 1
    assert (len(images), len(coco["annotations"])) == SPLITS[split]
    assert [a["id"] for a in coco["annotations"]] == list(range(1, SPLITS[split][1] + 1))

    files = sorted((raccoon.parent / "images" / split).glob("*.jpg"))
    assert sorted(images) == sorted(f.stem for f in files)  # ids are the (non-numeric) stems, as in predictions.json
    err = 0.0
    for f in files:
        im = images[f.stem]
        assert (im["width"], im["height"]) == Image.open(f).size
        assert im["file_name"] == f.name
        rows = np.loadtxt(raccoon.parent / "labels" / split / f"{f.stem}.txt", ndmin=2)
        anns = [a for a in coco["annotations"] if a["image_id"] == f.stem]
        assert len(anns) == len(rows)
        for a, (c, cx, cy, w, h) in zip(anns, rows):
            x, y, bw, bh = a["bbox"]
            assert (a["category_id"], a["iscrowd"]) == (int(c) + 1, 0)
            assert a["area"] == pytest.approx(bw * bh, rel=1e-4)  # area is from the unrounded box
            back = np.array(
                [(x + bw / 2) / im["width"], (y + bh / 2) / im["height"], bw / im["width"], bh / im["height"]]
            )
            err = max(err, float(np.abs((back - (cx, cy, w, h)) * np.tile((im["width"], im["height"]), 2)).max()))
    assert err < 0.01  # px; measured 6e-4 (3-decimal rounding in the JSON + float32 label parsing)


def test_converter_segments_numeric_ids_and_errors(tmp_path):
    data = make_tiny_dataset(tmp_path / "ds", n_train=1, n_val=4, nc=2, polygons=True)
    coco = json.loads(yolo_to_coco(data, "val").read_text())  # default out: <path>/annotations/instances_val.json
    assert (tmp_path / "ds" / "annotations" / "instances_val.json").is_file()
    assert [im["id"] for im in coco["images"]] == [0, 1, 2, 3]  # 000.jpg → 0: numeric stems become ints
    assert [c["id"] for c in coco["categories"]] == [1, 2]
    for a in coco["annotations"]:
        xs, ys = a["segmentation"][0][0::2], a["segmentation"][0][1::2]
        assert len(xs) == 4  # the rectangle's four corners, in px
        assert a["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], abs=2e-3)
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], rel=1e-4)  # polygon area of a rectangle

    # Perfect predictions (boxes and RLE masks from the ground truth) score exactly 1 for both IoU types.
    from pycocotools import mask as mask_utils

    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    preds = []
    for a in coco["annotations"]:
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], *sizes[a["image_id"]]))
        rle["counts"] = rle["counts"].decode()
        preds.append({k: a[k] for k in ("image_id", "category_id", "bbox")} | {"score": 0.9, "segmentation": rle})
    for iou_type in ("bbox", "segm"):
        stats = coco_eval(coco, preds, iou_type)
        assert list(stats) == list(STAT_NAMES)
        assert (stats["mAP50-95"], stats["mAP50"]) == (1.0, 1.0)
    assert coco_eval(coco, preds[1:])["mAP50"] < 1.0  # a missed object costs recall
    assert coco_eval(coco, [])["mAP50-95"] == 0.0

    with pytest.raises(ValueError, match="not in the annotations"):
        coco_eval(coco, [{**preds[0], "image_id": "0"}])  # the stem as a string is not Ultralytics' id
    boxes_only = json.loads(yolo_to_coco(data, "val", out=tmp_path / "b.json", segments=False).read_text())
    assert not any("segmentation" in a for a in boxes_only["annotations"])
    with pytest.raises(ValueError, match="segmentation"):
        coco_eval(boxes_only, preds, "segm")

    # A numeric and a non-numeric stem in one split: ids of two types, which COCOeval cannot sort unless unified.
    for d in ("images", "labels"):
        src = next((tmp_path / "ds" / d / "val").glob("003.*"))
        src.rename(src.with_name("cat" + src.suffix))
    coco = json.loads(yolo_to_coco(data, "val", out=tmp_path / "c.json").read_text())
    assert [im["id"] for im in coco["images"]] == [0, 1, 2, "cat"]
    preds = [{k: a[k] for k in ("image_id", "category_id", "bbox")} | {"score": 0.5} for a in coco["annotations"]]
    assert coco_eval(coco, preds)["mAP50-95"] == 1.0

    # Two images with the same stem in one split cannot be told apart in predictions.json.
    (tmp_path / "ds" / "images" / "val" / "sub").mkdir()
    shutil.copy(tmp_path / "ds" / "images" / "val" / "000.jpg", tmp_path / "ds" / "images" / "val" / "sub")
    with pytest.raises(ValueError, match="stems must be unique"):
        yolo_to_coco(data, "val", out=tmp_path / "d.json")


class _StubModel(nn.Module):
    """Stands in for a detector: the oracle validator below ignores its (empty) output."""

    names: ClassVar[dict[int, str]] = {0: "raccoon"}
    stride = torch.tensor([32.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 5, 0)


def _oracle_validator():
    """``DetectionValidator`` whose predictions are deterministic perturbations of each image's ground truth."""
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import ops

    class OracleValidator(DetectionValidator):
        def preprocess(self, batch):
            self._batch = super().preprocess(batch)
            return self._batch

        def postprocess(self, preds):
            """Per image (letterboxed px): each object found 0-2 times (IoU spread by a per-box jitter of 1-24 %
            of its size, the second find less confident), 0-3 false positives, sorted by confidence like NMS."""
            b, out = self._batch, []
            hh, ww = b["img"].shape[2:]
            for si, f in enumerate(b["im_file"]):
                rng = np.random.default_rng(zlib.crc32(Path(f).name.encode()))  # same boxes whatever the batching
                gt = (ops.xywh2xyxy(b["bboxes"][b["batch_idx"] == si]) * torch.tensor([ww, hh, ww, hh])).numpy()
                boxes, conf = [], []
                for g in gt:
                    size = np.tile(g[2:] - g[:2], 2)
                    for k in range(rng.integers(0, 3)):
                        boxes.append(g + rng.normal(0, rng.uniform(0.01, 0.12) * (1 + k), 4) * size)
                        conf.append(rng.uniform(0.2, 1.0) / (1 + k))
                for _ in range(rng.integers(0, 4)):
                    x0, y0 = rng.uniform(0, ww * 0.7), rng.uniform(0, hh * 0.7)
                    boxes.append(np.r_[x0, y0, x0 + rng.uniform(10, ww * 0.3), y0 + rng.uniform(10, hh * 0.3)])
                    conf.append(rng.uniform(0.01, 0.8))
                # Kept inside the image (not the letterbox padding): Ultralytics matches the unclipped boxes while
                # predictions.json holds them clipped to the image, which would be a second, unrelated difference.
                (r, _), (pw, ph) = b["ratio_pad"][si]
                lo = np.array([pw, ph, pw, ph])
                hi = lo + np.tile(np.array(b["ori_shape"][si][::-1]) * r, 2)
                boxes = np.clip(np.array(boxes, dtype=np.float32).reshape(-1, 4), lo, hi).astype(np.float32)
                order = np.argsort(-np.array(conf, dtype=np.float32))
                n = len(order)
                out.append(
                    {
                        "bboxes": torch.from_numpy(boxes[order]),
                        "conf": torch.tensor(conf, dtype=torch.float32)[order],
                        "cls": torch.zeros(n),
                        "extra": torch.zeros(n, 0),
                    }
                )
            return out

        def get_stats(self):
            self.matches = {k: np.concatenate(v, 0) for k, v in self.metrics.stats.items()}  # before they are cleared
            return super().get_stats()

        def eval_json(self, stats):
            return stats  # Ultralytics' own faster-coco-eval pass (absent offline) is what coco_eval replaces

    return OracleValidator


def _coco_101_point_ap(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> np.ndarray:
    """COCOeval.accumulate's AP (precision envelope sampled at recall 0, 0.01, ..., 1) per IoU column of ``tp``."""
    tp = tp[np.argsort(-conf, kind="mergesort")]
    aps = []
    for t in tp.T:
        tpc, fpc = np.cumsum(t), np.cumsum(~t)
        recall, precision = tpc / n_gt, np.maximum.accumulate((tpc / (tpc + fpc))[::-1])[::-1]
        idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
        aps.append(np.where(idx < len(t), precision[np.minimum(idx, len(t) - 1)], 0.0).mean())
    return np.array(aps)


@pytest.mark.parametrize("split", SPLITS)
def test_pycocotools_agrees_with_ultralytics(raccoon, tmp_path, split):
    validator = _oracle_validator()(
        save_dir=tmp_path / "val",
        args={"data": str(raccoon), "split": split, "imgsz": 320, "batch": 4, "save_json": True, "plots": False},
    )
    ours = validator(model=_StubModel())
    ul = np.array([ours["metrics/mAP50-95(B)"], ours["metrics/mAP50(B)"]])
    coco = coco_eval(yolo_to_coco(raccoon, split, out=tmp_path / "anno.json"), tmp_path / "val" / "predictions.json")
    pc = np.array([coco["mAP50-95"], coco["mAP50"]])

    m = validator.matches
    n_gt = SPLITS[split][1]
    assert len(m["target_cls"]) == n_gt
    assert 0.2 < ul[0] < ul[1] < 0.8  # a non-trivial PR curve: misses, duplicates, false positives
    # Same matches: COCO's interpolation applied to Ultralytics' true-positive matrix gives pycocotools' figure
    # exactly, so ids, categories, box scaling and the greedy matching all agree (JSON rounding flips no match).
    ap = _coco_101_point_ap(m["tp"], m["conf"], n_gt)
    np.testing.assert_allclose([ap.mean(), ap[0]], pc, atol=1e-9)
    # What remains is interpolation: Ultralytics integrates the envelope linearly between PR points (trapezoid on
    # 101 points), COCO averages it right-continuously at 101 recall points. Measured |Δ| (mAP50-95, mAP50):
    # val 9.7e-4, 8.4e-4 (13 boxes); train 4.9e-4, 1.2e-4 (46 boxes). The worst case is about 1/(2·n_gt) + 0.01
    # (half the envelope drop on each 1/n_gt recall step, plus the 101-point sampling), far above real curves;
    # 0.005 (half a mAP point) is the figure we state.
    np.testing.assert_allclose(ul, pc, atol=5e-3)


def test_save_json_end_to_end(raccoon, tmp_path, capsys):
    """Untrained yolov12n (nc=1) → ``val(save_json=True)`` → converter → pycocotools, through the CLI too."""
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    cfg = {k: v for k, v in yaml_model_load("yolov12n.yaml").items() if k != "yaml_file"}
    (tmp_path / "yolov12n.yaml").write_text(yaml.safe_dump({**cfg, "nc": 1}, sort_keys=False))
    # Default conf 0.001 keeps detections: at nc=1 the P5 class bias alone gives sigmoid(log(5 / 400)) ≈ 0.012.
    results = YOLO(tmp_path / "yolov12n.yaml").val(
        data=str(raccoon), save_json=True, imgsz=160, batch=12, plots=False, project=str(tmp_path), name="val"
    )
    pred_json = Path(results.save_dir) / "predictions.json"
    preds = json.loads(pred_json.read_text())

    anno = tmp_path / "anno.json"
    assert main(["convert", str(raccoon), "--split", "val", "-o", str(anno)]) == 0
    assert "12 images, 13 annotations" in capsys.readouterr().out
    coco = json.loads(anno.read_text())
    assert {p["image_id"] for p in preds} <= {im["id"] for im in coco["images"]}
    assert {p["category_id"] for p in preds} == {c["id"] for c in coco["categories"]} == {1}

    assert main(["eval", str(anno), str(pred_json), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats == coco_eval(anno, pred_json)
    assert all(0.0 <= stats[k] <= 1.0 for k in ("mAP50-95", "mAP50", "AR100"))
    assert main(["eval", str(anno), str(tmp_path / "missing.json")]) == 1
