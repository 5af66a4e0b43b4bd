#!/usr/bin/env bash
# sandbox.sh: the PBX uapid is tested with, on a machine that has no Docker engine.
#
# A Debian sid root filesystem (Asterisk 22 and SIPp from Debian's packages) is built
# once with debootstrap and cached; Asterisk then runs chrooted into it with the
# configuration in asterisk-conf/. The chroot shares the host's network, so ARI
# (127.0.0.1:8088), AMI (127.0.0.1:5038) and SIP (127.0.0.1:5060) are reachable from
# the host as they are.
#
# Usage: docker/sandbox.sh build|start|stop|restart|status|rx CMD|sipp ARGS...|root
# Run `docker/sandbox.sh help` for details. Needs root (chroot, mount).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

sandbox_dir=${UAPID_SANDBOX_DIR:-/var/cache/uapid-sandbox}
root=$sandbox_dir/rootfs
suite=${UAPID_SANDBOX_SUITE:-sid}
mirror=${UAPID_SANDBOX_MIRROR:-http://deb.debian.org/debian}
start_timeout=${UAPID_SANDBOX_START_TIMEOUT:-60}
packages="asterisk asterisk-modules asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm sip-tester curl"

# Paths inside the root.
conf_dir=/etc/uapid-asterisk
asterisk_conf=$conf_dir/asterisk.conf
stamp=/etc/uapid-sandbox.stamp
sip_dir=/uapid/sip

# Files beside the root, on the host.
pid_file=$sandbox_dir/asterisk.pid
out_log=$sandbox_dir/asterisk.out
lock_file=$sandbox_dir/lock

ari_user=uapid
ari_password=uapid-secret
ari_port=8088
ami_port=5038

say() { printf 'sandbox: %s\n' "$*" >&2; }
die() { printf 'sandbox: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
usage: $0 COMMAND [ARGS]

  build           build the root filesystem if missing or its package list changed
                  (build --force rebuilds it anyway)
  start           build if needed, copy asterisk-conf/ into the root, start Asterisk
                  and wait until ARI and AMI answer (idempotent)
  stop            stop Asterisk (core stop now, then signals) and unmount (idempotent)
  restart         stop, then start
  status          exit 0 when Asterisk runs and ARI and AMI answer
  rx "CLI CMD"    run an Asterisk CLI command (asterisk -rx) in the root
  sipp ARGS...    run SIPp inside the root; the repository and /tmp are visible there
                  under the same paths, scenarios also at $sip_dir
  root            print the root filesystem's path

Root: $root
Environment: UAPID_SANDBOX_DIR (default /var/cache/uapid-sandbox),
UAPID_SANDBOX_MIRROR, UAPID_SANDBOX_SUITE, UAPID_SANDBOX_START_TIMEOUT (seconds).
Asterisk's own log: $root/var/log/asterisk/messages.log; its stdout: $out_log.
EOF
}

need_root() {
  [[ $(id -u) == 0 ]] || die "must run as root (chroot and mount need it)"
}

take_lock() {
  mkdir -p "$sandbox_dir"
  exec 9>"$lock_file"
  flock -w 300 9 || die "could not lock $lock_file within 300 s"
}

expected_stamp() {
  printf 'suite=%s\npackages=%s\n' "$suite" "$packages"
}

is_built() {
  [[ -f $root$stamp && -x $root/usr/sbin/asterisk ]] &&
    [[ $(cat "$root$stamp") == "$(expected_stamp)" ]]
}

# Mount points at or below $1, deepest first.
mounts_under() {
  local dir
  dir=$(readlink -f "$1")
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r
}

unmount_under() {
  local m
  [[ -d $1 ]] || return 0
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" || say "could not unmount $m"
  done < <(mounts_under "$1")
}

# rm -rf a directory only once nothing is mounted below it (a bind mount of /tmp or of
# the repository inside must never be followed).
remove_tree() {
  unmount_under "$1"
  if [[ -n $(mounts_under "$1") ]]; then
    die "refusing to delete $1: something is still mounted below it"
  fi
  rm -rf --one-file-system "$1"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  say "debootstrap is missing; installing it with apt-get"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; } >&2; then
    die "could not install debootstrap with apt-get (no network or no Debian/Ubuntu host?)"
  fi
}

# build [--force|--quiet]
build() {
  local opt=${1:-}
  if [[ $opt != --force ]] && is_built; then
    [[ $opt == --quiet ]] || say "root filesystem up to date: $root"
    return 0
  fi
  ensure_debootstrap
  local tmp log old
  # Trees left by a build that was killed (we hold the lock: none is in progress).
  for old in "$sandbox_dir"/rootfs.build.* "$sandbox_dir"/rootfs.old.*; do
    [[ -d $old ]] && remove_tree "$old"
  done
  tmp=$(mktemp -d "$sandbox_dir/rootfs.build.XXXXXX")
  build_tmp=$tmp
  log=$sandbox_dir/build.log
  say "building $root (Debian $suite from $mirror; log: $log)"
  : >"$log"
  # Leave no half-built tree or mount behind, whatever happens.
  trap 'unmount_under "$build_tmp"; rm -rf --one-file-system "$build_tmp"' EXIT
  if ! debootstrap --variant=minbase --include=ca-certificates "$suite" "$tmp" "$mirror" >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "debootstrap of Debian $suite from $mirror failed (network down or mirror unreachable? see $log)"
  fi
  # No service may start inside the root while packages install.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mount -t proc proc "$tmp/proc"
  local apt=(chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Check-Valid-Until=false)
  if ! "${apt[@]}" update >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "apt-get update inside the root failed (network down or mirror unreachable? see $log)"
  fi
  # shellcheck disable=SC2086
  if ! "${apt[@]}" install -y --no-install-recommends $packages >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "apt-get install of '$packages' inside the root failed (see $log)"
  fi
  "${apt[@]}" clean >>"$log" 2>&1 || true
  umount "$tmp/proc"
  expected_stamp >"$tmp$stamp"
  # Swap the finished tree in; the old one (if any) goes only once unmounted.
  if [[ -e $root ]]; then
    stop_asterisk
    unmount_under "$root"
    mv "$root" "$root.old.$$"
  fi
  mv "$tmp" "$root"
  trap - EXIT
  if [[ -e $root.old.$$ ]]; then
    remove_tree "$root.old.$$"
  fi
  say "root filesystem ready: $root ($(du -sh "$root" | cut -f1))"
}

# --- process ------------------------------------------------------------------------

asterisk_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid=$(cat "$pid_file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$root/usr/sbin/asterisk" ]] || return 1
  echo "$pid"
}

ari_answers() {
  # The host's curl, or else the root's (it has one).
  local curl=(curl)
  command -v curl >/dev/null || curl=(chroot "$root" curl)
  "${curl[@]}" -s -f -o /dev/null --max-time 2 -u "$ari_user:$ari_password" \
    "http://127.0.0.1:$ari_port/ari/asterisk/info" 2>/dev/null
}

ami_answers() {
  # A fresh AMI connection starts with "Asterisk Call Manager/<version>".
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r -t 2 line <&3 || exit 1
    exec 3>&-
    [[ $line == "Asterisk Call Manager/"* ]]' _ "$ami_port" 2>/dev/null
}

answering() { ari_answers && ami_answers; }

rx() {
  chroot "$root" /usr/sbin/asterisk -C "$asterisk_conf" -rx "$*"
}

# --- mounts -------------------------------------------------------------------------

is_mounted() { mountpoint -q "$1" 2>/dev/null; }

bind_same_path() {
  local dir=$1
  mkdir -p "$root$dir"
  is_mounted "$root$dir" || mount --bind "$dir" "$root$dir"
}

# proc, host /tmp and the repository (under their own paths), and $sip_dir.
ensure_mounts() {
  is_mounted "$root/proc" || mount -t proc proc "$root/proc"
  bind_same_path /tmp
  case $repo/ in
    /tmp/*) ;;
    *) bind_same_path "$repo" ;;
  esac
  mkdir -p "$root${sip_dir%/*}"
  ln -sfn "$repo/tests/sip" "$root$sip_dir"
}

install_conf() {
  [[ -f $repo/asterisk-conf/asterisk.conf ]] || die "no asterisk-conf/asterisk.conf in $repo"
  rm -rf "${root:?}$conf_dir"
  cp -r "$repo/asterisk-conf" "$root$conf_dir"
}

# --- commands -----------------------------------------------------------------------

stop_asterisk() {
  local pid i
  pid=$(asterisk_pid) || { rm -f "$pid_file"; return 0; }
  say "stopping Asterisk (pid $pid)"
  timeout 10 chroot "$root" /usr/sbin/asterisk -C "$asterisk_conf" -rx 'core stop now' \
    >/dev/null 2>&1 || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "Asterisk did not stop within 10 s; sending SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
}

cmd_start() {
  need_root
  take_lock
  build --quiet
  local pid
  if pid=$(asterisk_pid) && answering; then
    say "already running (pid $pid); ARI :$ari_port and AMI :$ami_port answer"
    return 0
  fi
  if [[ -z ${pid:-} ]]; then
    if answering; then
      die "another Asterisk already answers on 127.0.0.1:$ari_port/$ami_port (not this sandbox's)"
    fi
    install_conf
    ensure_mounts
    mkdir -p "$root/var/run/asterisk" "$root/var/log/asterisk" "$root/var/spool/asterisk" \
      "$root/var/lib/asterisk/keys"
    printf -- '--- %s start\n' "$(date -Is)" >>"$out_log"
    # setsid: Asterisk must not die with the caller's terminal or process group. It
    # keeps no descriptor of ours or of the caller's beyond 0-2 (a lock held open by it,
    # ours or one the caller took with flock(1), would be held as long as it runs).
    (
      for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-"; fi
      done
      exec setsid chroot "$root" /usr/sbin/asterisk -C "$asterisk_conf" -f -n
    ) </dev/null >>"$out_log" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    say "started Asterisk (pid $pid), waiting for ARI and AMI"
  else
    say "Asterisk runs (pid $pid) but does not answer yet; waiting"
  fi
  local deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$out_log" >&2 || true
      tail -n 20 "$root/var/log/asterisk/messages.log" >&2 2>/dev/null || true
      rm -f "$pid_file"
      die "Asterisk exited during start (see $out_log and $root/var/log/asterisk/messages.log)"
    fi
    if answering && timeout 10 chroot "$root" /usr/sbin/asterisk -C "$asterisk_conf" \
      -rx 'core waitfullybooted' >/dev/null 2>&1; then
      say "ready: ARI http://127.0.0.1:$ari_port/ari, AMI 127.0.0.1:$ami_port, SIP udp 127.0.0.1:5060"
      return 0
    fi
    sleep 0.3
  done
  die "Asterisk (pid $pid) did not answer on ARI :$ari_port and AMI :$ami_port within ${start_timeout} s (see $root/var/log/asterisk/messages.log)"
}

cmd_stop() {
  need_root
  take_lock
  stop_asterisk
  [[ -d $root ]] && unmount_under "$root"
  say "stopped"
}

cmd_status() {
  local pid
  if ! pid=$(asterisk_pid); then
    echo "not running"
    return 3
  fi
  if answering; then
    echo "running (pid $pid); ARI 127.0.0.1:$ari_port and AMI 127.0.0.1:$ami_port answer"
    return 0
  fi
  echo "running (pid $pid) but ARI or AMI does not answer"
  return 1
}

cmd_rx() {
  need_root
  [[ $# -gt 0 ]] || die "usage: $0 rx \"CLI COMMAND\""
  asterisk_pid >/dev/null || die "Asterisk is not running (docker/sandbox.sh start)"
  rx "$@"
}

cmd_sipp() {
  need_root
  is_built || die "no root filesystem at $root (docker/sandbox.sh build or start)"
  (
    take_lock
    ensure_mounts
  )
  # Same paths inside as outside for the repository and /tmp, so relative scenario and
  # log paths work from there; anywhere else, run from the repository's root.
  local dir=$PWD
  case $dir/ in
    "$repo"/* | /tmp/*) ;;
    *) dir=$repo ;;
  esac
  # SIPp's control socket (UDP 8888 and up) binds every address unless told otherwise.
  local arg control=(-ci 127.0.0.1)
  for arg in "$@"; do
    [[ $arg == -ci ]] && control=()
  done
  # Each exec keeps the pid: the caller's pid is SIPp's, signals reach it directly.
  exec chroot "$root" /bin/sh -c 'cd "$1" && shift && exec /usr/bin/sipp "$@"' sipp "$dir" \
    "${control[@]}" "$@"
}

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    build)
      need_root
      take_lock
      build "${1:-}"
      ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
      cmd_stop
      exec 9>&-
      cmd_start
      ;;
    status) cmd_status ;;
    rx) cmd_rx "$@" ;;
    sipp) cmd_sipp "$@" ;;
    root) echo "$root" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
