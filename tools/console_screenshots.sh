#!/usr/bin/env bash
# Retake the console's screenshots in docs/img/ (docs/console.md shows them): the browser tests
# save the jobs, job and nodes pages there instead of in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
FFRTMP_SCREENSHOT_DIR=docs/img .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/browser/test_console_browser.py -k progress "$@"
