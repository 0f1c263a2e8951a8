"""``ultra-ext``: tools around the stock ``yolo`` command. Each subcommand is the ``main`` of one module.

    ultra-ext yolo train model=yolov12n.yaml data=...   the stock CLI with ultra_ext active first (where the startup
                                                        hook is not installed, e.g. editable installs)
    ultra-ext install-hook [--uninstall]                write the startup hook into this environment's site-packages
    ultra-ext models                                    the shipped model YAMLs: family, task, names and params per
                                                        scale, the paper
    ultra-ext cost yolov12n.yaml yolo12n.yaml [--imgsz 640]   parameters and GFLOPs, both conventions
    ultra-ext bench yolo11n.yaml gyolo-n.yaml [--csv out.csv --plot-dir plots --train data.yaml]
                                                        params, GFLOPs, PyTorch/ORT latency, training-step memory
                                                        (and mAP) side by side; CSV and PNG plots
    ultra-ext convert yolov12n-turbo.pt -o yolov12n-turbo-ultra.pt
                                                        detect what an official checkpoint is (YOLO12 stock/turbo/
                                                        seg/cls, Gold-YOLO, PST, Generalist YOLO) and convert it
    ultra-ext upgrade yolo12n.pt yolo12n-ultra.pt       swap YOLO12 attention for ours in a checkpoint (stock v1.0,
                                                        or the authors' released turbo weights)
    ultra-ext convert-goldyolo Gold_n_dist.pt -o goldyolo-n-coco.pt [--scale n] [--dfl]
                                                        official Gold-YOLO checkpoint → Ultralytics checkpoint
    ultra-ext convert-pst yolo11n-pst.pt -o yolov12n-pst-coco.pt [--scale n] [--gate learned]
                                                        published PST checkpoint → Ultralytics checkpoint
    ultra-ext pretrain model=goldyolo-n.yaml data=images/ epochs=100 imgsz=224
                                                        SparK masked image modelling of the YAML's backbone; then
                                                        yolo train model=goldyolo-n.yaml pretrained=<backbone.pt>
    ultra-ext coco convert data.yaml --split val -o val.json | coco eval val.json predictions.json
                                                        COCO JSON from a YOLO dataset; pycocotools mAP
    ultra-ext backends                                  which attention backends can run here

``ultra-ext <command> -h`` shows a command's options.
"""

from __future__ import annotations

import difflib
import importlib
import sys

# subcommand → the module whose main(argv) implements it, and its one-line help
COMMANDS = {
    "yolo": ("ultra_ext.integration.stock_cli", "run the stock yolo CLI with ultra_ext active"),
    "install-hook": ("ultra_ext.integration.startup_hook", "install the startup hook into this environment"),
    "models": ("ultra_ext.catalog", "shipped model YAMLs: family, task, scales, params, paper"),
    "cost": ("ultra_ext.bench.cost", "parameters and GFLOPs of model YAMLs or checkpoints"),
    "bench": ("ultra_ext.bench.runner", "benchmark models side by side"),
    "convert": ("ultra_ext.convert.auto", "an official checkpoint of any family → Ultralytics checkpoint (detected)"),
    "upgrade": ("ultra_ext.convert.yolov12", "YOLO12 checkpoint (stock v1.0, released turbo) → our attention"),
    "convert-goldyolo": ("ultra_ext.convert.goldyolo", "official Gold-YOLO checkpoint → Ultralytics checkpoint"),
    "convert-pst": ("ultra_ext.convert.pst", "published PST checkpoint → Ultralytics checkpoint"),
    "pretrain": ("ultra_ext.pretrain.trainer", "masked image pre-training (SparK) of any model YAML's backbone"),
    "coco": ("ultra_ext.coco", "YOLO dataset → COCO JSON; pycocotools evaluation"),
    "backends": ("ultra_ext.nn.attention", "attention backends available here"),
}


def _usage() -> str:
    rows = "\n".join(f"  {name:<18}{text}" for name, (_, text) in COMMANDS.items())
    return f"usage: ultra-ext <command> [options]\n\ncommands:\n{rows}\n\n{__doc__}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"ultra-ext: unknown command {name!r}{hint}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
