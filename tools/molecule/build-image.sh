#!/usr/bin/env bash
# Build (or reuse) the root filesystem the Molecule guests boot from: Debian 12 with
# systemd as PID 1, sshd, python3 (+venv, +apt bindings for Ansible's apt module) and the
# heavy packages the roles install (ffmpeg, logrotate, openssl, nginx, postgresql with
# python3-psycopg2) already present, so a run only
# proves that the roles' own install tasks are no-ops instead of downloading ~100 MB.
#
# Usage: build-image.sh [--force]
# env:   FFRTMP_LAB_STATE (/var/lib/ffrtmp-molecule)  FFRTMP_LAB_CACHE (/var/cache/ffrtmp-molecule)
#        MIRROR (http://deb.debian.org/debian)        SUITE (bookworm)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${FFRTMP_LAB_STATE:-/var/lib/ffrtmp-molecule}
CACHE=${FFRTMP_LAB_CACHE:-/var/cache/ffrtmp-molecule}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
BASE=$STATE/base
KEY=$STATE/ssh/id_ed25519
BOOTSTRAP_PKGS="systemd,systemd-sysv,dbus,python3,python3-venv,python3-apt,ca-certificates,curl,iproute2,procps"
EXTRA_PKGS="openssh-server ffmpeg logrotate openssl nginx postgresql python3-psycopg2"
# The stamp changes whenever this script does, so editing the package list rebuilds.
STAMP=$(cat "$0" | sha256sum | cut -c1-16)
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8

if [ "${1:-}" != --force ] && [ "$(cat "$BASE/.ffrtmp-image" 2>/dev/null)" = "$STAMP" ]; then
  echo "image ready: $BASE"; exit 0
fi
if ls "$STATE/instances" 2>/dev/null | grep -q .; then
  echo "build-image: instances are running; stop them first ($HERE/lab.sh stop NAME...)" >&2; exit 1
fi

# debootstrap's downloads are cached so a rebuild costs no network traffic.
mkdir -p "$CACHE/debs" "$STATE"
rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
cleanup() { umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"; }
trap cleanup EXIT
debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$BOOTSTRAP_PKGS" \
  "$SUITE" "$rootfs" "$MIRROR"

cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount --bind /proc "$rootfs/proc"
echo "deb $MIRROR $SUITE main" > "$rootfs/etc/apt/sources.list"
chroot "$rootfs" apt-get -q update
# no daemon may start inside the chroot
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"; chmod 755 "$rootfs/usr/sbin/policy-rc.d"
# shellcheck disable=SC2086
chroot "$rootfs" apt-get install -y -q --no-install-recommends $EXTRA_PKGS
rm -f "$rootfs/usr/sbin/policy-rc.d"
chroot "$rootfs" apt-get clean
umount "$rootfs/proc"

# --- make it a good nspawn guest ----------------------------------------------------
: > "$rootfs/etc/machine-id"; rm -f "$rootfs/var/lib/dbus/machine-id"   # one per guest
rm -f "$rootfs/etc/resolv.conf" "$rootfs"/etc/ssh/ssh_host_*
echo localhost > "$rootfs/etc/hostname"
for u in getty@tty1.service console-getty.service apt-daily.timer apt-daily-upgrade.timer \
         dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
         systemd-pstore.service systemd-timesyncd.service \
         sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
done
ln -sf /lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"
# nginx is in the image only so the media role needs no mirror: off until a role enables it
rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/nginx.service"
# likewise PostgreSQL (its package created the cluster, 15/main): ffrtmp_postgres enables it
rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/postgresql.service"
echo 'LANG=C.UTF-8' > "$rootfs/etc/default/locale"
# sshd host keys differ per guest: generated at each guest's first boot
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
  > "$rootfs/etc/systemd/system/ssh.service.d/keygen.conf"
# Package lists are dropped: the roles must cope with an empty apt cache.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

echo "$STAMP" > "$rootfs/.ffrtmp-image"
rm -rf "$BASE"; mv "$rootfs" "$BASE"; trap - EXIT

mkdir -p "$(dirname "$KEY")"
[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C ffrtmp-molecule -f "$KEY"
echo "image ready: $BASE ($(du -sh "$BASE" | cut -f1))"
