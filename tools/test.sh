#!/usr/bin/env bash
# Set up this machine and run every test ffrtmp has: lint, the strict type check, the Molecule
# scenarios on real systemd guests, and the unit and integration suites. Run as root on a fresh
# Debian 12 machine (or with the packages tools/bootstrap.sh names). Arguments go to pytest;
# with FFRTMP_SKIP_MOLECULE=1 the Molecule scenarios are left out (for quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh --test
echo "== ruff"
.venv/bin/ruff check
echo "== mypy --strict (src/)"
.venv/bin/mypy
if [[ "${FFRTMP_SKIP_MOLECULE:-0}" != 1 ]]; then
    echo "== molecule (roles and playbooks on systemd-nspawn guests)"
    # one at a time: one master on SQLite, then two masters on PostgreSQL (ha); each prints
    # its wall time
    for scenario in default ha; do
        tools/molecule/run.sh "$scenario"
    done
else
    tools/molecule/setup-host.sh  # still needed: ansible-lint, yamllint and promtool for pytest
fi
echo "== pytest"
# two workers (pytest-xdist), whole files each: most integration tests wait on real processes
# (paced encodes, leases, heartbeats), so two at once roughly halve the wall time on 2 CPUs;
# a module's farm fixture stays in one worker. FFRTMP_TEST_WORKERS=0 runs them in this process.
.venv/bin/python -m pytest -p no:cacheprovider -n "${FFRTMP_TEST_WORKERS:-2}" --dist loadfile "$@"
