#!/usr/bin/env bash
# The test command (README, and .ci/run): fresh environment, install, run the whole suite on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh || exit 1
python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then  # pytest: no tests collected (e.g. a filter matched nothing)
  echo "[ultra_ext] pytest collected no tests (exit 5); treating as success"
  exit 0
fi
exit "$status"
