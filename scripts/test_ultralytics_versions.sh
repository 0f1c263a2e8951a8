#!/usr/bin/env bash
# Run the test suite against several Ultralytics releases, each in its own environment .venv-ultralytics-<V>.
#
# ultra_ext patches Ultralytics internals (parse_model's source, the task tables, YOLO.task_map, the exporter), so
# the range declared in pyproject.toml (`ultralytics>=LOW,<8.5`) is only as good as the releases it was tested on.
# By default this tests both ends: LOW (from pyproject.toml) and the CI pin (`ultralytics==` in
# .ci/constraints.txt, the newest release we test). Prints one summary line per version and exits non-zero if any
# version failed (install or tests).
#
# Each environment is made by scripts/env.sh (ULTRA_EXT_VENV=.venv-ultralytics-<V>) with a temporary copy of
# .ci/constraints.txt in which only the ultralytics pin is replaced, passed through ULTRA_EXT_CONSTRAINTS (env.sh
# must honour it; this script refuses to run otherwise, since it would silently test the CI pin every time).
# Environments are kept and reused (env.sh only updates them); delete a .venv-ultralytics-<V> to start afresh.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/test_ultralytics_versions.sh [--override] [--dry-run] [VERSION ...] [-- PYTEST_ARGS ...]

  VERSION        Ultralytics releases to test (e.g. 8.4.164 8.4.190). Default: the lower bound of
                 pyproject.toml's `ultralytics>=X` requirement and the `ultralytics==Y` pin of .ci/constraints.txt.
  --override     Install each VERSION with `pip install --no-deps` over an environment built with the unchanged
                 constraints, instead of pinning it through the constraints file. For versions outside the range
                 pyproject.toml declares (pip cannot resolve those), e.g. to try a new lower bound before
                 changing pyproject.toml (`pip check` in that environment then reports the conflict).
  --dry-run      Print the versions, environments and constraints that would be used; install nothing.
  -- ARGS        Passed to pytest (default: none, i.e. the whole suite as scripts/test.sh runs it), e.g.
                 `-- tests/nn -x`.
  -h, --help     This text.

Environments: <repo>/.venv-ultralytics-<V> (kept; Ultralytics' settings dir is <venv>/yolo-config).
Logs: <repo>/.venv-ultralytics-<V>/test.log. Exit status: 0 if every version passed, 1 otherwise, 2 on usage errors.
EOF
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2

override=0
dry_run=0
versions=()
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --override) override=1 ;;
    --dry-run) dry_run=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *)
      # A version is what pip accepts after '==' and what a directory name can hold: digits, dots, letters.
      if ! [[ "$1" =~ ^[0-9][0-9A-Za-z.+-]*$ ]]; then echo "not a version: $1" >&2; exit 2; fi
      versions+=("$1")
      ;;
  esac
  shift
done

CONSTRAINTS="$REPO/.ci/constraints.txt"
if [ ${#versions[@]} -eq 0 ]; then
  # The first `ultralytics>=X` in pyproject.toml's dependencies, and the exact pin CI installs.
  low="$(sed -nE 's/^[[:space:]]*"ultralytics>=([0-9][0-9A-Za-z.]*).*/\1/p' "$REPO/pyproject.toml" | head -n 1)"
  newest="$(sed -nE 's/^ultralytics==([0-9][0-9A-Za-z.]*).*/\1/p' "$CONSTRAINTS" | head -n 1)"
  if [ -z "$low" ] || [ -z "$newest" ]; then
    echo "cannot read the default versions (pyproject.toml: '${low:-?}', .ci/constraints.txt: '${newest:-?}');" \
      "name them on the command line" >&2
    exit 2
  fi
  versions=("$low")
  [ "$newest" != "$low" ] && versions+=("$newest")
fi

if [ "$dry_run" -eq 1 ]; then
  mode="pinned through ULTRA_EXT_CONSTRAINTS"
  [ "$override" -eq 1 ] && mode="pip install --no-deps over the CI constraints (--override)"
  echo "versions: ${versions[*]}   ($mode)"
  echo "pytest:   python -m pytest ${pytest_args[*]}"
  for v in "${versions[@]}"; do echo "  .venv-ultralytics-$v"; done
  if [ "$override" -eq 1 ]; then
    echo "constraints: $CONSTRAINTS as is, then pip install --no-deps ultralytics==<version>"
  else
    echo "constraints: $CONSTRAINTS with its ultralytics line replaced by ultralytics==<version>"
  fi
  exit 0
fi

# Without the hook every environment would get the CI pin and "pass" for the wrong version.
if [ "$override" -eq 0 ] && ! grep -q 'ULTRA_EXT_CONSTRAINTS' "$REPO/scripts/env.sh"; then
  echo "scripts/env.sh does not read ULTRA_EXT_CONSTRAINTS, so it cannot install another ultralytics;" \
    "add the hook (see the header of this script) or use --override" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Test one version in a subshell (env.sh sets PATH, YOLO_* and `set -e` while it runs; none of it may leak into the
# next version). Output goes to the terminal and to <venv>/test.log; the status is the subshell's exit code:
# 0 passed, 90 install failed, 91 wrong ultralytics installed, else pytest's (which uses 1-5).
test_version() {
  local v="$1" venv="$REPO/.venv-ultralytics-$1"
  local constraints="$tmp/constraints-$v.txt"
  # Replace only the ultralytics line (append one if the file has none); everything else stays pinned as in CI.
  if [ "$override" -eq 1 ]; then
    cp "$CONSTRAINTS" "$constraints"
  else
    grep -v '^ultralytics[[:space:]]*[=<>!~]' "$CONSTRAINTS" >"$constraints"
    echo "ultralytics==$v" >>"$constraints"
  fi
  mkdir -p "$venv"
  (
    export ULTRA_EXT_VENV="$venv" ULTRA_EXT_CONSTRAINTS="$constraints"
    export YOLO_CONFIG_DIR="$venv/yolo-config"  # settings files differ between releases: one per environment
    # env.sh runs under its own `set -e`; the ERR trap turns any failing step of it into "install failed" (a
    # `source ... || exit` would switch `set -e` off inside env.sh and carry on with a half-installed environment).
    trap 'exit 90' ERR
    # shellcheck source=env.sh
    source "$REPO/scripts/env.sh"
    trap - ERR
    if [ "$override" -eq 1 ]; then
      python -m pip install -q --disable-pip-version-check --no-deps "ultralytics==$v" || exit 90
    fi
    # From /: the checkout's files must not shadow anything; the installed copies are what we test. The marker:
    # the first import of a release may print a settings notice on stdout.
    installed="$(cd / && python -c 'import ultralytics; print("VERSION", ultralytics.__version__)' |
      sed -n 's/^VERSION //p')"
    if [ "$installed" != "$v" ]; then
      echo "[ultra_ext] $venv has ultralytics $installed, not $v" >&2
      exit 91
    fi
    echo "[ultra_ext] ultralytics $installed: python -m pytest ${pytest_args[*]}"
    python -m pytest "${pytest_args[@]}"  # from the repository root, as scripts/test.sh
    status=$?
    [ "$status" -eq 5 ] && status=0  # no tests collected (a filter matched nothing): as scripts/test.sh
    exit "$status"
  ) 2>&1 | tee "$venv/test.log"
  return "${PIPESTATUS[0]}"
}

summary=()
failed=0
for v in "${versions[@]}"; do
  echo "===== ultralytics $v ====="
  start=$SECONDS
  test_version "$v"
  status=$?
  seconds=$((SECONDS - start))
  case "$status" in
    0) result="passed" ;;
    90) result="FAILED (install)" ;;
    91) result="FAILED (wrong ultralytics version installed)" ;;
    *) result="FAILED (pytest exit $status)" ;;
  esac
  [ "$status" -eq 0 ] || failed=1
  line="$(printf 'ultralytics %-10s %-45s %6d s' "$v" "$result" "$seconds")"
  summary+=("$line   log: .venv-ultralytics-$v/test.log")
done

echo "===== summary ====="
printf '%s\n' "${summary[@]}"
exit "$failed"
