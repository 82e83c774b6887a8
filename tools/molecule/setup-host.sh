#!/usr/bin/env bash
# Prepare a Debian 12 controller for the ffrtmp Molecule tests. Idempotent, unattended, root.
#
# - apt: debootstrap + systemd-nspawn (the test guests), iproute2/iptables (their network),
#   the ssh client (Ansible's connection) and prometheus (for promtool, the alert rule
#   tests). ffmpeg and logrotate are not needed here: they live in the guests.
# - a venv with molecule, ansible-core, the ansible package (ansible.posix), passlib (the
#   htpasswd hash), ansible-lint and yamllint at $FFRTMP_MOLECULE_VENV.
#
# env: FFRTMP_MOLECULE_VENV (default /opt/ffrtmp-molecule-venv)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${FFRTMP_MOLECULE_VENV:-/opt/ffrtmp-molecule-venv}
export DEBIAN_FRONTEND=noninteractive

pkgs=(debootstrap systemd-container iproute2 iptables openssh-client ca-certificates
      curl tar gzip prometheus python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=300 update -q
  # The prometheus package is here only for promtool: keep its daemon from being started.
  policy=/usr/sbin/policy-rc.d; created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1
  fi
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
  [ $created_policy = 1 ] && rm -f "$policy"
fi

# The controller's venv: molecule calls ansible-config etc. through PATH, so callers must
# put "$VENV/bin" first (run.sh does).
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/molecule" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" > "$stamp"
fi
PATH="$VENV/bin:$PATH" molecule --version >/dev/null
echo "controller ready: $VENV ($("$VENV/bin/ansible" --version | head -n1 || true))"
