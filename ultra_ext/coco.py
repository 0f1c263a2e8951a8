"""COCO-style evaluation of Ultralytics results with pycocotools, for datasets that only have YOLO labels.

``model.val(save_json=True)`` writes ``predictions.json`` (COCO result format) for any dataset, but Ultralytics
8.4.190 scores it only through ``faster-coco-eval`` (``DetectionValidator.coco_evaluate``), which is not a
dependency: offline or with ``YOLO_AUTOINSTALL=0`` it logs "faster-coco-eval unable to run" and keeps its own mAP.
It also has no YOLO → COCO annotation converter (``ultralytics.data.converter`` only goes COCO → YOLO). This module
fills both gaps:

* :func:`yolo_to_coco` writes a COCO ``instances`` JSON for one split of a YOLO dataset, with the image and
  category ids that ``DetectionValidator.pred_to_json`` writes, so that file and ``predictions.json`` line up;
* :func:`coco_eval` scores a ``predictions.json`` against it with pycocotools' ``COCOeval``.

Id conventions copied from Ultralytics 8.4.190 (``models/yolo/detect/val.py``):

* ``image_id`` is the image file stem, converted to ``int`` when it is numeric (``000123.jpg`` → ``123``,
  ``raccoon-4.jpg`` → ``"raccoon-4"``), so stems must be unique within a split;
* ``category_id`` is ``class_map[cls]``: ``cls + 1`` for every dataset except COCO itself (80 → 91 ids).

CLI::

    ultra-ext coco convert data.yaml --split val -o val.json
    ultra-ext coco eval val.json runs/detect/val/predictions.json [--iou-type segm]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STAT_NAMES", "coco_eval", "image_id", "main", "yolo_to_coco"]

# Names of COCOeval.stats (bbox / segm), in pycocotools' order; -1 means "no ground truth in that area range".
STAT_NAMES = (
    "mAP50-95",
    "mAP50",
    "mAP75",
    "mAP_small",
    "mAP_medium",
    "mAP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def image_id(path: str | Path) -> int | str:
    """The ``image_id`` Ultralytics writes into ``predictions.json`` for ``path``: the stem, as int when numeric."""
    stem = Path(path).stem
    return int(stem) if stem.isnumeric() else stem


def _image_files(source: str | list[str]) -> list[str]:
    """Image files of a dataset split, listed the way ``BaseDataset.get_img_files`` lists them.

    ``source`` is a folder (searched recursively), a ``.txt`` list (``./`` lines relative to the list's folder), or
    a list of those; the result is sorted and filtered to Ultralytics' image suffixes.
    """
    from ultralytics.data.utils import IMG_FORMATS

    files: list[str] = []
    for p in source if isinstance(source, list) else [source]:
        p = Path(p)
        if p.is_dir():
            files += [str(f) for f in p.rglob("*.*")]
        elif p.is_file():
            parent = str(p.parent) + os.sep
            lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
            files += [x.replace("./", parent, 1) if x.startswith("./") else x for x in lines]
        else:
            raise FileNotFoundError(f"{p} does not exist")
    files = sorted(x.replace("/", os.sep) for x in files if x.rpartition(".")[-1].lower() in IMG_FORMATS)
    if not files:
        raise FileNotFoundError(f"no images found in {source}")
    return files


def _category_ids(data: dict[str, Any], split: str) -> list[int]:
    """``DetectionValidator.class_map`` for this dataset: COCO's 91-id map for COCO itself, else ``1..nc``."""
    from ultralytics.data.converter import coco80_to_coco91_class

    val = data.get(split, "")
    is_coco = (
        isinstance(val, str) and "coco" in val and val.endswith((f"{os.sep}val2017.txt", f"{os.sep}test-dev2017.txt"))
    )
    return coco80_to_coco91_class() if is_coco else list(range(1, data["nc"] + 1))


def _polygon_area(xy: np.ndarray) -> float:
    """Area of a simple polygon ``xy`` (K, 2) in px² (shoelace formula)."""
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _build(data_yaml: str | Path, split: str, segments: bool | None) -> dict[str, Any]:
    """The COCO ``instances`` dict for one split of a YOLO dataset (see :func:`yolo_to_coco`)."""
    from ultralytics.data.utils import check_det_dataset, img2label_paths, verify_image_label
    from ultralytics.utils import LOGGER

    data = check_det_dataset(str(data_yaml), autodownload=False, split=split)
    if not data.get(split):
        raise KeyError(f"{data_yaml} has no '{split}' split")
    names, nc = data["names"], data["nc"]
    cat_ids = _category_ids(data, split)
    nkpt, ndim = data.get("kpt_shape") or (0, 0)  # pose labels: keep the box, drop the keypoints (as for task=detect)
    files = _image_files(data[split])

    images, annotations, seen = [], [], {}
    for im_file, lb_file in zip(files, img2label_paths(files)):
        # Ultralytics' own label check: same parsing (boxes from polygons, duplicate rows dropped, 1 % out-of-range
        # tolerance) and the same skip of corrupt images/labels, so the two agree on the ground truth.
        im, lb, shape, segs, _, *_, msg = verify_image_label((im_file, lb_file, "", False, nc, nkpt, ndim, False))
        if im is None:
            LOGGER.warning(f"yolo_to_coco: skipping {msg}")
            continue
        iid = image_id(im_file)
        if iid in seen:
            raise ValueError(
                f"image id {iid!r} of {im_file} is also that of {seen[iid]}: Ultralytics names predictions by file "
                "stem, so stems must be unique within a split"
            )
        seen[iid] = im_file
        h, w = shape  # EXIF-corrected, as the validator loads the image
        images.append({"id": iid, "file_name": Path(im_file).name, "width": int(w), "height": int(h)})
        for (c, cx, cy, bw, bh), seg in zip(lb.tolist(), segs if segs else [None] * len(lb)):
            # Clipped to the image like the validator's own ground truth (scale_boxes clips).
            x0, y0 = min(max((cx - bw / 2) * w, 0.0), w), min(max((cy - bh / 2) * h, 0.0), h)
            x1, y1 = min(max((cx + bw / 2) * w, 0.0), w), min(max((cy + bh / 2) * h, 0.0), h)
            ann = {
                "id": len(annotations) + 1,  # COCOeval stores matched ids with 0 meaning "unmatched": start at 1
                "image_id": iid,
                "category_id": cat_ids[int(c)],
                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                "area": round((x1 - x0) * (y1 - y0), 3),
                "iscrowd": 0,
            }
            if seg is not None and segments is not False:
                xy = np.clip(seg * (w, h), 0, (w, h))  # (K, 2) normalised → px
                ann["segmentation"] = [np.round(xy.reshape(-1), 3).tolist()]
                ann["area"] = round(_polygon_area(xy), 3)  # COCO's area is the mask area
            annotations.append(ann)
    if segments and not any("segmentation" in a for a in annotations):
        raise ValueError(f"segments=True but the '{split}' labels of {data_yaml} have no polygons")
    return {
        "info": {"description": f"{Path(data_yaml).name} '{split}' split, converted from YOLO labels by ultra_ext"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cat_ids[i], "name": names[i], "supercategory": ""} for i in range(nc)],
    }


def yolo_to_coco(
    data_yaml: str | Path, split: str = "val", out: str | Path | None = None, segments: bool | None = None
) -> Path:
    """Write a COCO ``instances`` JSON for one split of a YOLO-format dataset and return its path.

    Image and category ids follow ``DetectionValidator.pred_to_json`` (module docstring), so the
    ``predictions.json`` of ``model.val(data=data_yaml, split=split, save_json=True)`` evaluates against it as is.

    Args:
        data_yaml: Ultralytics dataset YAML (resolved with ``check_det_dataset``; never downloads).
        split: Split key in the YAML (``val``, ``train``, ``test``).
        out: Output file; default ``<dataset path>/annotations/instances_<split>.json``.
        segments: Polygon labels → ``segmentation`` polygons (px) and polygon ``area``: ``None`` (default) when the
            labels have polygons, ``False`` never (boxes only), ``True`` required (error if there are none).

    Returns:
        The written JSON: ``images`` (id, file_name, width, height), ``annotations`` (id from 1, image_id,
        category_id, ``bbox`` [x, y, w, h] in px clipped to the image, area, iscrowd 0[, segmentation]),
        ``categories`` (id, name).
    """
    coco = _build(data_yaml, split, segments)
    if out is None:
        from ultralytics.data.utils import check_det_dataset

        out = Path(check_det_dataset(str(data_yaml), autodownload=False)["path"]) / "annotations"
        out = out / f"instances_{split}.json"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(coco))
    return out


def _load(x: str | Path | dict | list) -> Any:
    """A JSON file's content, or a deep copy of an in-memory object (pycocotools mutates what it is given)."""
    return json.loads(Path(x).read_text()) if isinstance(x, (str, Path)) else copy.deepcopy(x)


def coco_eval(
    anno_json: str | Path | dict,
    pred_json: str | Path | list,
    iou_type: str = "bbox",
    verbose: bool = False,
) -> dict[str, float]:
    """pycocotools ``COCOeval`` of COCO-format predictions against COCO-format annotations.

    Args:
        anno_json: Annotations (file or dict), e.g. from :func:`yolo_to_coco`.
        pred_json: Results (file or list of dicts with image_id, category_id, bbox [x, y, w, h] px, score[,
            segmentation RLE]), e.g. the ``predictions.json`` of ``model.val(save_json=True)``.
        iou_type: ``"bbox"`` or ``"segm"`` (needs polygons in the annotations and RLE masks in the predictions).
        verbose: Print pycocotools' loading messages and its 12-line summary.

    Returns:
        ``{name: value}`` for the 12 ``COCOeval.stats`` (:data:`STAT_NAMES`; ``mAP50-95`` and ``mAP50`` first),
        all 0.0 when there are no predictions. Scored over every image of the annotations (maxDets 100, COCO's
        101-point interpolated precision).

    Raises:
        ValueError: A prediction names an image id that the annotations do not have (ids are file stems, see
            :func:`image_id`), or ``iou_type="segm"`` without polygons in the annotations.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in {"bbox", "segm"}:
        raise ValueError(f"iou_type must be 'bbox' or 'segm', not {iou_type!r}")
    gt, dt = _load(anno_json), _load(pred_json)
    ids = [im["id"] for im in gt["images"]]
    if len({type(i) for i in ids}) > 1:  # int and str stems in one split: COCOeval sorts ids, so make them all str
        for im in gt["images"]:
            im["id"] = str(im["id"])
        for item in (*gt["annotations"], *dt):
            item["image_id"] = str(item["image_id"])
        ids = [str(i) for i in ids]
    unknown = sorted({d["image_id"] for d in dt} - set(ids), key=str)  # type-exact: "0" is not image 0
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted image id(s) are not in the annotations, e.g. {unknown[:3]}; Ultralytics uses "
            "the file stem (int when numeric) as image_id: convert the same split with yolo_to_coco"
        )
    if iou_type == "segm" and not all("segmentation" in a for a in gt["annotations"]):
        raise ValueError("iou_type='segm' needs 'segmentation' polygons in every annotation (segment dataset)")
    if not dt:
        return dict.fromkeys(STAT_NAMES, 0.0)

    with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dt), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``convert`` a YOLO dataset split to COCO JSON, or ``eval`` predictions against COCO annotations."""
    parser = argparse.ArgumentParser(prog="ultra-ext coco", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("convert", help="YOLO dataset split → COCO instances JSON")
    p.add_argument("data", help="dataset YAML")
    p.add_argument("--split", default="val")
    p.add_argument("-o", "--out", default=None, help="default: <dataset path>/annotations/instances_<split>.json")
    p.add_argument("--no-segments", action="store_true", help="boxes only, even for polygon labels")
    p = sub.add_parser("eval", help="pycocotools COCOeval of predictions.json against annotations")
    p.add_argument("anno", help="COCO annotations JSON (e.g. from `convert`)")
    p.add_argument("pred", help="COCO results JSON (e.g. predictions.json of `yolo val save_json=True`)")
    p.add_argument("--iou-type", default="bbox", choices=("bbox", "segm"))
    p.add_argument("--json", action="store_true", help="print only the metrics, as one JSON object")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "convert":
            out = yolo_to_coco(args.data, args.split, args.out, segments=False if args.no_segments else None)
            coco = json.loads(out.read_text())
            print(f"{out}: {len(coco['images'])} images, {len(coco['annotations'])} annotations")
        else:
            stats = coco_eval(args.anno, args.pred, args.iou_type, verbose=not args.json)
            print(json.dumps(stats) if args.json else "\n".join(f"{k:>10s} {v:.4f}" for k, v in stats.items()))
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
