#!/usr/bin/env bash
# Every preset of `ultra-ext bench`, one after another: OUT/<preset>.csv and the plots in OUT/<preset>/.
#
#   benchmarks/run_all.sh [OUT] [bench options...]      OUT defaults to bench-results; options go to every preset
#   benchmarks/run_all.sh results --runs 10 --skip-memory
#
# Measures the working tree this script lives in (run from the repository root, `python -m` imports it first).
# PYTHON picks the interpreter (default: python). Exit status 1 when any preset reported a failure.
set -uo pipefail
out=$(realpath -m "${1:-bench-results}")
shift $(($# > 0 ? 1 : 0))
cd "$(dirname "$0")/.." || exit 1
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-0}"
py="${PYTHON:-python}"
presets=$("$py" -c "from ultra_ext.bench.presets import PRESETS; print(*PRESETS)") || exit 1
status=0
for preset in $presets; do
    echo "=== preset $preset"
    "$py" -m ultra_ext.bench --preset "$preset" --csv "$out/$preset.csv" --plot-dir "$out/$preset" "$@" || status=1
done
exit $status
