#!/usr/bin/env bash
# Install what ffrtmp needs on this machine and create the project's virtualenv (.venv).
#   tools/bootstrap.sh          runtime: ffmpeg + the package
#   tools/bootstrap.sh --bench  also the benchmarks' baselines (redis-server, the `bench` extra: Celery)
#   tools/bootstrap.sh --test   also the test dependencies (nginx with the RTMP module, openssl,
#                               Debian's chromium and chromium-driver for the console's browser tests, zsh
#                               for its completion test, ...)
#                               and the baselines, whose smoke tests run with the others
# As root on Debian the system packages are installed with apt-get; otherwise any that are
# missing are named and the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=runtime
case "${1:-}" in --test) mode=test ;; --bench) mode=bench ;; esac

packages=(ffmpeg python3-venv openssl procps iproute2)
commands=(ffmpeg ffprobe openssl ps ss)
if [[ $mode == test ]]; then
    packages+=(nginx libnginx-mod-rtmp prometheus postgresql curl chromium chromium-driver fonts-dejavu-core zsh)
    commands+=(nginx promtool curl chromium chromedriver zsh)
fi
if [[ $mode != runtime ]]; then
    packages+=(redis-server)
    commands+=(redis-server)
fi

missing=()
for i in "${!commands[@]}"; do
    command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${commands[$i]}")
done
if [[ $mode == test ]]; then
    [[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || missing+=(ngx_rtmp_module)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql-server)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # the tests and benchmarks start their own nginx, PostgreSQL, promtool and Redis: keep the
        # packages' services off
        policy=/usr/sbin/policy-rc.d
        [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    else
        echo "bootstrap: missing ${missing[*]}; install the Debian packages: ${packages[*]}" >&2
        exit 1
    fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bootstrap: ffrtmp needs Python 3.11 or newer ($python is $("$python" -V 2>&1))" >&2
    exit 1
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
extra=""
[[ $mode == bench ]] && extra="[bench]"
[[ $mode == test ]] && extra="[test,bench]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
echo "bootstrap: ready (.venv, $(ffmpeg -hide_banner -version | head -1 | cut -d' ' -f1-3))"
