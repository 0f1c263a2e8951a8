"""Convert an official Gold-YOLO checkpoint into one ``YOLO(path)`` loads, then use it like any Ultralytics model.

    python examples/convert_checkpoint.py Gold_n_dist.pt              # the released weights (download them first)
    python examples/convert_checkpoint.py Gold_n_dist.pt --out goldyolo-n-coco.pt

The same as ``ultra-ext convert-goldyolo Gold_n_dist.pt -o goldyolo-n-coco.pt``; PST checkpoints convert with
``ultra_ext.convert.pst`` (``ultra-ext convert-pst``) the same way. The official code is not needed: its classes are
replaced by weight-holding stubs while unpickling (only load files you trust).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

from ultralytics import YOLO  # noqa: E402

from ultra_ext.convert.checkpoint import save_ultralytics_checkpoint  # noqa: E402
from ultra_ext.convert.goldyolo import load_official_checkpoint, official_to_ultra_ext  # noqa: E402
from ultra_ext.integration.datasets import shipped_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="official Gold-YOLO checkpoint (.pt)")
    parser.add_argument("--out", default="goldyolo-converted.pt", help="Ultralytics checkpoint to write")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    model = official_to_ultra_ext(load_official_checkpoint(args.checkpoint))  # scale, nc and bins read from it
    save_ultralytics_checkpoint(model, args.out, source=os.path.basename(args.checkpoint))

    converted = YOLO(args.out)
    image = sorted((shipped_datasets()["raccoon-mini.yaml"].parent / "images" / "val").glob("*.jpg"))[0]
    result = converted.predict(image, imgsz=args.imgsz, conf=0.25, verbose=False)[0]
    labels = [result.names[int(c)] for c in result.boxes.cls]
    print(f"{args.out}: Gold-YOLO-{model.yaml['scale'].upper()}, {model.yaml['nc']} classes; "
          f"{len(labels)} detections on {image.name}: {', '.join(labels) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
