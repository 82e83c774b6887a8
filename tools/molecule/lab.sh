#!/usr/bin/env bash
# Test hosts for the ffrtmp Molecule scenarios: copies of the image from build-image.sh
# booted under systemd-nspawn with systemd as PID 1 (cgroup v2 and its own cgroup
# namespace inside, like a real bookworm host, whatever the controller runs), each in its
# own network namespace on a private bridge, reachable over SSH as root.
#
#   lab.sh start NAME IP [NAME=IP...]   boot one guest; the pairs become its /etc/hosts
#   lab.sh stop NAME...                 shut guests down and delete all their state
#   lab.sh net-down                     remove the bridge once no guest is left
#   lab.sh pid NAME                     print the guest's PID 1 as the controller sees it
#   lab.sh list                         names of the guests that exist
#
# A guest that reboots itself (systemctl reboot) is booted again by its supervisor, so
# "the host restarted and its services came back" can be tested.
#
# env: FFRTMP_LAB_STATE (/var/lib/ffrtmp-molecule)  FFRTMP_LAB_BRIDGE (fflab0)
#      FFRTMP_LAB_CIDR (10.78.0.1/24: bridge address/prefix)
#      FFRTMP_LAB_NAT (0: guests are offline; 1: masquerade them to reach a package mirror)
set -euo pipefail

STATE=${FFRTMP_LAB_STATE:-/var/lib/ffrtmp-molecule}
BRIDGE=${FFRTMP_LAB_BRIDGE:-fflab0}
CIDR=${FFRTMP_LAB_CIDR:-10.78.0.1/24}
NAT=${FFRTMP_LAB_NAT:-0}
BASE=$STATE/base
KEY=$STATE/ssh/id_ed25519
GW=${CIDR%/*}; PREFIX=${CIDR#*/}
CGNAME=ffrtmp-lab

die() { echo "lab: $*" >&2; exit 1; }

net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  if [ "$NAT" = 1 ]; then
    local net; net=$(ip -4 -o route show dev "$BRIDGE" proto kernel | awk '{print $1}')
    sysctl -qw net.ipv4.ip_forward=1
    iptables -t nat -C POSTROUTING -s "$net" ! -o "$BRIDGE" -j MASQUERADE 2>/dev/null ||
      iptables -t nat -A POSTROUTING -s "$net" ! -o "$BRIDGE" -j MASQUERADE
    iptables -C FORWARD -i "$BRIDGE" -j ACCEPT 2>/dev/null || iptables -A FORWARD -i "$BRIDGE" -j ACCEPT
    iptables -C FORWARD -o "$BRIDGE" -j ACCEPT 2>/dev/null || iptables -A FORWARD -o "$BRIDGE" -j ACCEPT
  fi
}

cmd_net_down() {
  if cmd_list | grep -q .; then echo "guests still exist; keeping $BRIDGE"; return; fi
  ip link show "$BRIDGE" >/dev/null 2>&1 || return 0
  local net; net=$(ip -4 -o route show dev "$BRIDGE" proto kernel | awk '{print $1}')
  if [ -n "$net" ]; then
    iptables -t nat -D POSTROUTING -s "$net" ! -o "$BRIDGE" -j MASQUERADE 2>/dev/null || true
  fi
  iptables -D FORWARD -i "$BRIDGE" -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$BRIDGE"
}

cgroot() {  # writable hierarchies to give each guest its own cgroup (a hybrid host has two)
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo /sys/fs/cgroup; return; fi
  local h; for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [ -d "$h" ] && echo "$h"; done
}

nsname() { echo "ffl-$(printf %s "$1" | md5sum | cut -c1-10)"; }  # netns/veth name, <= 15 chars

leader() {  # the guest's PID 1 = the child of the current systemd-nspawn process
  local d=$STATE/instances/$1 p
  [ -s "$d/nspawn.pid" ] || return 1
  p=$(pgrep -P "$(cat "$d/nspawn.pid")" | head -n1) || return 1
  [ -n "$p" ] && echo "$p"
}

cmd_list() { ls "$STATE/instances" 2>/dev/null || true; }

# Runs detached (setsid) for the guest's whole life: boots it again after a reboot
# (nspawn exits 133), stops when the guest powers off or `stop` asked for it.
cmd_supervise() {
  local name=$1 ns=$2 d=$STATE/instances/$1 cg rc resolv=off
  [ "$NAT" = 1 ] && resolv=copy-host
  for cg in $(cgroot); do echo $$ > "$cg/$CGNAME/$name/cgroup.procs"; done
  while :; do
    # unified hierarchy in the guest: cgroup v2, as on a real bookworm host
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --boot --directory="$d/root" \
      --machine="$name" --register=no --keep-unit --console=passive \
      --network-namespace-path="/run/netns/$ns" --resolv-conf="$resolv" --timezone=off \
      --link-journal=no &
    echo $! > "$d/nspawn.pid"
    rc=0; wait $! || rc=$?
    echo "lab: nspawn for $name exited with $rc" >&2
    [ "$rc" = 133 ] && [ ! -e "$d/stopping" ] || break
  done
  rm -f "$d/nspawn.pid"
}

wait_booted() {
  local name=$1 d=$STATE/instances/$1 i l st
  for i in $(seq 600); do
    if l=$(leader "$name"); then
      st=$(nsenter -t "$l" -m -p -u -i -n systemctl is-system-running --wait 2>/dev/null || true)
      case $st in running|degraded) echo "$name up ($st) pid1=$l"; return 0;; esac
    fi
    kill -0 "$(cat "$d/supervisor.pid")" 2>/dev/null || { cat "$d/console.log"; die "$name: nspawn exited"; }
    sleep 0.1
  done
  cat "$d/console.log"; die "$name did not boot within 60 s"
}

cmd_start() {
  local name=$1 ip=$2; shift 2
  [ -f "$BASE/.ffrtmp-image" ] || die "no image in $BASE: run build-image.sh first"
  local d=$STATE/instances/$name ns cg p
  ns=$(nsname "$name")
  [ -e "$d" ] && cmd_stop "$name"   # leftover of an aborted run
  net_up
  mkdir -p "$d"/{up,wk,root}
  ip netns add "$ns"
  ip link add "$ns" type veth peer name eth0 netns "$ns"
  ip link set "$ns" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/$PREFIX" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$GW"
  # copy-on-write root over the shared image
  mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$d/up,workdir=$d/wk" "$d/root"
  echo "$name" > "$d/root/etc/hostname"
  { echo "127.0.0.1 localhost"; echo "$ip $name"
    for p in "$@"; do [ "${p%%=*}" = "$name" ] || echo "${p#*=} ${p%%=*}"; done; } > "$d/root/etc/hosts"
  install -d -m 700 "$d/root/root/.ssh"
  install -m 600 "$KEY.pub" "$d/root/root/.ssh/authorized_keys"
  # with --keep-unit nspawn nests its cgroups under the caller's: give each guest its own
  for cg in $(cgroot); do mkdir -p "$cg/$CGNAME/$name"; done
  setsid "$0" _supervise "$name" "$ns" </dev/null >"$d/console.log" 2>&1 &
  echo $! > "$d/supervisor.pid"
  wait_booted "$name"
}

cmd_stop() {
  local name d p i ns cg
  for name in "$@"; do   # nspawn turns SIGTERM into a clean guest shutdown
    d=$STATE/instances/$name
    [ -d "$d" ] || continue
    touch "$d/stopping"
    [ -s "$d/nspawn.pid" ] && kill -TERM "$(cat "$d/nspawn.pid")" 2>/dev/null || true
  done
  for name in "$@"; do
    d=$STATE/instances/$name
    [ -s "$d/supervisor.pid" ] || continue
    p=$(cat "$d/supervisor.pid")
    for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then   # no clean shutdown within 15 s
      for cg in $(cgroot); do
        if [ -f "$cg/$CGNAME/$name/cgroup.kill" ]; then echo 1 > "$cg/$CGNAME/$name/cgroup.kill"; fi
      done
      kill -KILL "$p" 2>/dev/null || true
      [ -s "$d/nspawn.pid" ] && kill -KILL "$(cat "$d/nspawn.pid")" 2>/dev/null || true
      sleep 0.5
    fi
  done
  for name in "$@"; do
    d=$STATE/instances/$name; ns=$(nsname "$name")
    if mountpoint -q "$d/root" 2>/dev/null; then umount "$d/root" || umount -l "$d/root"; fi
    ip netns del "$ns" 2>/dev/null || true    # takes the veth pair with it
    ip link del "$ns" 2>/dev/null || true
    for cg in $(cgroot); do
      if [ -d "$cg/$CGNAME/$name" ]; then
        find "$cg/$CGNAME/$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
      fi
    done
    rm -rf "$d"
    echo "$name stopped"
  done
}

case ${1:-} in
  start) shift; [ $# -ge 2 ] || die "usage: start NAME IP [NAME=IP...]"; cmd_start "$@" ;;
  stop) shift; [ $# -ge 1 ] || die "usage: stop NAME..."; cmd_stop "$@" ;;
  net-down) cmd_net_down ;;
  pid) [ $# -eq 2 ] || die "usage: pid NAME"; leader "$2" ;;
  list) cmd_list ;;
  _supervise) shift; cmd_supervise "$@" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
