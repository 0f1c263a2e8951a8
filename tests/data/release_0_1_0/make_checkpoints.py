"""Write the release-0.1.0 checkpoints in this folder (run once, with ultra-ext 0.1.0 installed).

They pin the pickled class paths of that release: ``tests/integration/test_release_checkpoints.py`` loads them with
the current code, with and without ``ULTRALYTICS_SAFE_LOAD=1``. Each model is a shipped YAML at a tiny width
(``scales`` replaced by one tiny scale ``n``) so the files stay small; ``expected.json`` holds each model's output
digest on a fixed input, computed when the files were written.

    python tests/data/release_0_1_0/make_checkpoints.py
"""

import copy
import hashlib
import json
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load

import ultra_ext

HERE = Path(__file__).resolve().parent
# name → (shipped YAML, [depth, width, max_channels] of the tiny scale)
MODELS = {
    "yolov12-pst": ("yolov12n-pst.yaml", [0.5, 0.25, 256]),
    "goldyolo": ("goldyolo-n.yaml", [0.33, 0.125, 256]),
    "gyolo-generalist": ("gyolo-generalist-n.yaml", [0.5, 0.125, 256]),
}


def first_output(y) -> torch.Tensor:
    while isinstance(y, (list, tuple, dict)):
        y = next(iter(y.values())) if isinstance(y, dict) else y[0]
    return y


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    expected = {"ultra_ext": ultra_ext.__version__, "input": "torch.rand(1, 3, 128, 128), generator seed 1"}
    for name, (yaml, scale) in MODELS.items():
        d = copy.deepcopy(yaml_model_load(yaml))
        d["scales"], d["scale"] = {"n": scale}, "n"  # scale_args tables are keyed by letter
        torch.manual_seed(0)
        model = YOLO(yaml)  # the task YOLO picks for this YAML
        model.model = type(model.model)(d, nc=2, verbose=False)
        model.model.names = {0: "a", 1: "b"}
        model.model.args = {"task": model.task, "imgsz": 128}
        path = HERE / f"{name}.pt"
        model.save(path)
        loaded = YOLO(path).model.float().eval()
        with torch.no_grad():
            y = first_output(loaded(x))
        expected[name] = {
            "file": path.name,
            "classes": sorted({f"{type(m).__module__}.{type(m).__name__}" for m in loaded.modules()
                               if type(m).__module__.startswith("ultra_ext")}),
            "model_class": f"{type(loaded).__module__}.{type(loaded).__name__}",
            "output_shape": list(y.shape),
            "output_sum": float(y.double().sum()),
            "bytes": path.stat().st_size,
        }
        print(name, path.stat().st_size, expected[name]["model_class"], list(y.shape))
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
