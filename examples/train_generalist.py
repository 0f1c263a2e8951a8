"""The joint Generalist YOLO task: one model, one pass → boxes, instance masks and a semantic map.

    python examples/train_generalist.py                        # gyolo-generalist-n, 30 epochs at 320 px
    python examples/train_generalist.py --epochs 3

Trains on the shipped ``raccoon-mini-seg`` set (real photos; polygons derived from the hand-drawn boxes with
GrabCut, see its README), then reports box and mask mAP and the semantic mIoU, and predicts one image.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import numpy as np  # noqa: E402
from ultralytics import YOLO  # noqa: E402

import ultra_ext  # noqa: E402,F401
from ultra_ext.integration.datasets import shipped_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gyolo-generalist-n.yaml")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--project", default="runs/examples")
    args = parser.parse_args()

    model = YOLO(args.model)
    assert model.task == "generalist", model.task
    model.train(data="raccoon-mini-seg.yaml", epochs=args.epochs, imgsz=args.imgsz, batch=8, workers=0,
                project=args.project, name="train_generalist", exist_ok=True, plots=False)  # fmt: skip
    best = YOLO(model.trainer.best)
    metrics = best.val(data="raccoon-mini-seg.yaml", imgsz=args.imgsz, batch=8, workers=0, plots=False)
    print(
        f"{args.model}: box mAP50 {metrics.box.map50:.3f}, mask mAP50 {metrics.seg.map50:.3f}, "
        f"semantic mIoU {metrics.results_dict['metrics/mIoU(S)']:.3f}"
    )
    images = shipped_datasets()["raccoon-mini-seg.yaml"].parent / "images" / "val"
    result = best.predict(sorted(images.glob("*.jpg"))[0], imgsz=args.imgsz, conf=0.05, verbose=False)[0]
    semantic = result.semantic_mask.data.cpu().numpy()
    print(
        f"prediction: {len(result.boxes)} boxes, {0 if result.masks is None else len(result.masks)} instance masks, "
        f"semantic map {list(semantic.shape)} with {np.mean(semantic == 0):.0%} of pixels 'raccoon'"
    )


if __name__ == "__main__":
    main()
