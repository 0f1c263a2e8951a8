#!/usr/bin/env bash
# The main job (README): install, then train YOLOv12-N with the STOCK `yolo` CLI on the embedded real mini-dataset
# (52 raccoon images, ultra_ext/data/raccoon-mini, MIT), named as any pip user names it: data=raccoon-mini.yaml.
# Extra arguments go to `yolo train` (e.g. epochs=50).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh || exit 1
set -x
yolo train model=yolov12n.yaml data=raccoon-mini.yaml \
  epochs=3 imgsz=320 batch=8 workers=0 device=cpu project="$PWD/runs" name=raccoon-yolov12n exist_ok=True "$@"
