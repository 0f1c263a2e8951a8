#!/usr/bin/env bash
# Our families beside the stock models a user would pick instead, measured in one run by `ultra-ext bench`:
# parameters, GFLOPs (both conventions), PyTorch and ONNX Runtime CPU latency, training-step memory; CSV and plots.
#   bash examples/compare_models.sh                       # 640 px, 20 rounds
#   bash examples/compare_models.sh --imgsz 320 --runs 3 --skip-memory
set -euo pipefail
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-0}"
OUT="${OUT:-runs/examples/compare}"
mkdir -p "$OUT"
ultra-ext bench yolo11n.yaml yolo12n.yaml yolo26n.yaml yolov12n.yaml goldyolo-n.yaml yolo11n-pst.yaml gyolo-n.yaml \
  --csv "$OUT/bench.csv" --plot-dir "$OUT" "$@"
