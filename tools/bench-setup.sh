#!/usr/bin/env bash
# Install what the benchmarks' baselines need: redis-server (Debian) and the `bench` extra
# (Celery with its Redis client) into the project's virtualenv. Safe to run again.
#   tools/bench-setup.sh
# As root on Debian a missing redis-server is installed with apt-get (its service stays off:
# the benchmark starts its own Redis on a free port); otherwise the script names it and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "bench-setup: installing redis-server"
        export DEBIAN_FRONTEND=noninteractive
        policy=/usr/sbin/policy-rc.d
        [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    else
        echo "bench-setup: missing redis-server; install the Debian package redis-server" >&2
        exit 1
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "bench-setup: no .venv; run tools/bootstrap.sh first" >&2
    exit 1
fi
if ! .venv/bin/python -c 'import celery, redis' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
fi
echo "bench-setup: ready ($(redis-server --version | cut -d' ' -f1-3), celery $(.venv/bin/python -c 'import celery; print(celery.__version__)'))"
