"""Export a model to ONNX the stock way and run it in onnxruntime, next to PyTorch on the same image.

    python examples/export_onnx.py                            # YOLOv12-N (random weights) at 640 px
    python examples/export_onnx.py --model runs/examples/train_python/weights/best.pt --imgsz 320

Area attention exports through its explicit math path (plain MatMul/Softmax nodes, no custom ops), so the file runs
in any ONNX runtime; ``docs/deployment.md`` lists every format we test.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.augment import LetterBox  # noqa: E402
from ultralytics.utils.patches import imread  # noqa: E402

import ultra_ext  # noqa: E402,F401
from ultra_ext.integration.datasets import shipped_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolov12n.yaml", help="model YAML name or trained .pt")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    model = YOLO(args.model)
    onnx_path = model.export(format="onnx", imgsz=args.imgsz, simplify=True)

    image = sorted((shipped_datasets()["raccoon-mini.yaml"].parent / "images" / "val").glob("*.jpg"))[0]
    letterboxed = LetterBox((args.imgsz, args.imgsz), auto=False)(image=imread(str(image)))
    x = np.ascontiguousarray(letterboxed[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255  # BGR→RGB

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    net = YOLO(args.model).model.float().eval()  # a fresh copy: export fused the first one
    with torch.no_grad():
        torch_out = net(torch.from_numpy(x))[0].numpy()
    diff = float(np.abs(onnx_out - torch_out).max())
    print(f"{onnx_path}: output {list(onnx_out.shape)}, max |onnxruntime - PyTorch| = {diff:.2e}")


if __name__ == "__main__":
    main()
