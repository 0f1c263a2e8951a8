#!/usr/bin/env bash
# Train one of our model YAMLs with the stock `yolo` CLI on the shipped mini-dataset (named, not a path).
#   bash examples/train_cli.sh                                  # Gold-YOLO-N, 30 epochs at 320 px
#   bash examples/train_cli.sh model=yolov12n-turbo.yaml epochs=3
# Later arguments override earlier ones; any `yolo train` argument works. Needs ultra-ext installed (the startup
# hook makes the stock `yolo` command see our YAMLs); in an editable install use `ultra-ext yolo` instead of `yolo`.
set -euo pipefail
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-0}"  # no network, no run-time pip
yolo train model=goldyolo-n.yaml data=raccoon-mini.yaml epochs=30 imgsz=320 batch=8 workers=0 \
  project="${PROJECT:-runs/examples}" name=train_cli exist_ok=True "$@"
