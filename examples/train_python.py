"""Train, validate and predict with the ``YOLO()`` Python API, on the shipped mini-dataset.

    python examples/train_python.py                           # YOLOv12-N, 30 epochs at 320 px
    python examples/train_python.py --model goldyolo-n.yaml --epochs 3

``import ultra_ext`` is only needed where the startup hook is not installed (editable installs); it is harmless
otherwise.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: no network calls
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

from ultralytics import YOLO  # noqa: E402

import ultra_ext  # noqa: E402,F401  (activates ultra_ext without the startup hook)
from ultra_ext.integration.datasets import shipped_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolov12n.yaml", help="any model YAML name (ultra-ext models lists ours)")
    parser.add_argument("--data", default="raccoon-mini.yaml")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--project", default="runs/examples")
    args = parser.parse_args()

    model = YOLO(args.model)
    model.train(data=args.data, epochs=args.epochs, imgsz=args.imgsz, batch=8, workers=0, project=args.project,
                name="train_python", exist_ok=True, plots=False)  # fmt: skip
    best = YOLO(model.trainer.best)  # the checkpoint written by training, reloaded as a user would
    metrics = best.val(data=args.data, imgsz=args.imgsz, batch=8, workers=0, plots=False)
    print(f"{args.model}: box mAP50 {metrics.box.map50:.3f}, mAP50-95 {metrics.box.map:.3f}")
    images = shipped_datasets()["raccoon-mini.yaml"].parent / "images" / "val"
    result = best.predict(sorted(images.glob("*.jpg"))[0], imgsz=args.imgsz, conf=0.05, verbose=False)[0]
    print(f"prediction on {os.path.basename(result.path)}: {len(result.boxes)} boxes")


if __name__ == "__main__":
    main()
