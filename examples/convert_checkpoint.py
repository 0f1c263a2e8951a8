"""Convert an official checkpoint of any family into one ``YOLO(path)`` loads, then use it like any Ultralytics model.

    python examples/convert_checkpoint.py Gold_n_dist.pt              # released weights (download them first):
    python examples/convert_checkpoint.py yolov12n.pt --out yolov12n-ultra.pt   # YOLOv12 turbo/seg/cls, Gold-YOLO,
    python examples/convert_checkpoint.py gyolo.pt                    # PST, Generalist YOLO

The same as ``ultra-ext convert Gold_n_dist.pt -o goldyolo-converted.pt``. What the file is comes from the class
names it pickles; the official code is not needed (its classes become weight-holding stubs, and nothing the file
names is run). ``YOLO("Gold_n_dist.pt")`` would also work directly, converting in memory at every load.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402

from ultra_ext.convert.auto import convert_checkpoint  # noqa: E402
from ultra_ext.convert.identify import SOURCES  # noqa: E402
from ultra_ext.integration.datasets import shipped_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="official checkpoint (.pt)")
    parser.add_argument("--out", default="converted.pt", help="Ultralytics checkpoint to write")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    done = convert_checkpoint(args.checkpoint)  # detects the source; scale, classes and settings read from it
    print(f"{args.checkpoint}: {SOURCES[done.source]}")
    for group in done.dropped:  # Generalist YOLO: the PGI branch and the captioner have no counterpart yet
        print(f"  dropped: {group}")
    torch.save(done.ckpt, args.out)

    converted = YOLO(args.out)
    image = sorted((shipped_datasets()["raccoon-mini.yaml"].parent / "images" / "val").glob("*.jpg"))[0]
    result = converted.predict(image, imgsz=args.imgsz, conf=0.25, verbose=False)[0]
    labels = [result.names[int(c)] for c in result.boxes.cls] if result.boxes is not None else []
    print(f"{args.out}: {done.summary}; {len(labels)} detections on {image.name}: {', '.join(labels) or 'none'}")


if __name__ == "__main__":
    main()
