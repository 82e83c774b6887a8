#!/usr/bin/env bash
# Set up this machine and run every test ffrtmp has: lint, unit and integration suites.
# Run as root on a fresh Debian 12 machine (or with the packages tools/bootstrap.sh names).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh --test
echo "== ruff"
.venv/bin/ruff check
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
