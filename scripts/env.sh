# Source me: creates/updates ./.venv with ultra-ext installed, and sets up offline-safe Ultralytics settings.
#   ULTRA_EXT_VENV   where the environment lives (default: <repo>/.venv)
#   YOLO_CONFIG_DIR  Ultralytics' settings dir (default here: <repo>/.yolo-config, so runs never touch ~/.config)
#   ULTRA_EXT_CONSTRAINTS  pip constraints file (default: .ci/constraints.txt; scripts/test_ultralytics_versions.sh
#                    passes a copy with another ultralytics pin)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ULTRA_EXT_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"
CONSTRAINTS="${ULTRA_EXT_CONSTRAINTS:-$REPO/.ci/constraints.txt}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[ultra_ext] creating $VENV"
  "$PY" -m venv "$VENV" || return 1
fi
echo "[ultra_ext] installing ultra-ext[dev] into $VENV (pinned: $CONSTRAINTS)"
# Not editable on purpose: only a wheel install carries the startup hook (ultra_ext_hook.pth).
# `|| return 1` on every step: callers `source env.sh || exit 1`, and that `||` switches `set -e` off in here.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" "$REPO[dev]" || return 1
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$REPO" || return 1
export PATH="$VENV/bin:$PATH"
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0  # no DNS probes, analytics or run-time pip installs
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$REPO/.yolo-config}"
# Ultralytics fetches Arial.ttf for plot labels unless its config dir has one; matplotlib ships a free TTF.
FONT_DIR="$YOLO_CONFIG_DIR/Ultralytics"
mkdir -p "$FONT_DIR"
FONT="$("$VENV/bin/python" -c 'import matplotlib, pathlib; print(pathlib.Path(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf"))')"
for name in Arial.ttf Arial.Unicode.ttf; do [ -f "$FONT_DIR/$name" ] || cp "$FONT" "$FONT_DIR/$name"; done
set +eu +o pipefail
