#!/usr/bin/env bash
# Build ffrtmp and every dependency into one wheelhouse archive, the unit the roles deploy.
# Usage: build-wheelhouse.sh PROJECT_DIR OUTPUT.tar.gz [PYTHON]
# The wheels must match the hosts' Python (3.11 on Debian 12) and architecture.
set -euo pipefail
src=$1 out=$2 py=${3:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# build from a copy so build/ and *.egg-info never land in the source tree
mkdir -p "$tmp/src"
cp -a "$src/pyproject.toml" "$src/README.md" "$src/src" "$tmp/src/"
find "$tmp/src" -name __pycache__ -prune -exec rm -rf {} +
# with the postgres extra (psycopg), so the same wheelhouse serves masters on PostgreSQL
"$py" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$tmp/wheels" "$tmp/src[postgres]"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -czf "$out.tmp" -C "$tmp/wheels" .
mv "$out.tmp" "$out"
echo "wheelhouse: $out ($(ls "$tmp/wheels" | wc -l) wheels)"
