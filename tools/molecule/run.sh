#!/usr/bin/env bash
# Run the ffrtmp Molecule tests from a fresh Debian 12 machine: unattended, as root.
#
#   tools/molecule/run.sh [SCENARIO] [-- MOLECULE_TEST_ARGS...]     (default scenario: default)
#
# 1. setup-host.sh   apt packages + the controller venv (no-op when done)
# 2. build-image.sh  the guests' root filesystem (no-op while the script is unchanged)
# 3. molecule test   create (lab.sh) -> prepare (wheelhouse) -> converge -> idempotence
#                    -> verify -> destroy
# Set FFRTMP_MOLECULE_COMMAND=converge (or verify, destroy, ...) to run one molecule step
# against instances left from a previous step, e.g. while developing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
scenario=${1:-default}; [ $# -gt 0 ] && shift
[ "${1:-}" = -- ] && shift
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (it boots systemd-nspawn guests)" >&2; exit 1; }

export FFRTMP_MOLECULE_VENV=${FFRTMP_MOLECULE_VENV:-/opt/ffrtmp-molecule-venv}
step() { local t; t=$(date +%s); "$@"; echo "== $(basename "$1"): $(( $(date +%s) - t )) s"; }
step "$HERE/setup-host.sh"
step "$HERE/build-image.sh"

export PATH="$FFRTMP_MOLECULE_VENV/bin:$PATH"   # molecule runs ansible-* through PATH
export FFRTMP_LAB="$HERE/lab.sh" NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
cd "$ROOT"
command=${FFRTMP_MOLECULE_COMMAND:-test}
start=$(date +%s)
if [ "$command" = test ]; then
  # molecule test destroys the guests itself when it passes; make sure a failure does too
  trap 'rc=$?; [ $rc = 0 ] || molecule destroy -s "$scenario" >/dev/null 2>&1 || true' EXIT
fi
molecule "$command" -s "$scenario" "$@"
echo "== molecule $command -s $scenario: passed in $(( $(date +%s) - start )) s"
