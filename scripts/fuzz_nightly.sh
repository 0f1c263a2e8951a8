#!/usr/bin/env bash
# Nightly-style fuzzing: every property test (tests/nn/test_fuzz_*.py) under the hypothesis "nightly" profile:
# random search (not CI's fixed sequence), 1100 examples per property (CI: 110), failures kept in .hypothesis/
# so a re-run replays them first. More examples: ULTRA_EXT_FUZZ_EXAMPLES=5000 scripts/fuzz_nightly.sh
# Extra arguments go to pytest (e.g. -x, or one file). Exit status is pytest's.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh || exit 1
export ULTRA_EXT_FUZZ_PROFILE=nightly
python -m pytest tests/nn/test_fuzz_*.py -q -p no:warnings --hypothesis-show-statistics "$@"
