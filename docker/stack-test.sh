#!/usr/bin/env bash
# stack-test.sh: the Docker stack of compose.yaml, end to end, on this machine.
#
# Builds the sandbox's root (if missing) and uapid (cargo) for the offline images, then,
# holding the end-to-end tests' lock: gets a Docker engine (apt-get install docker.io,
# then dockerd with no bridge network and no iptables rules) unless one answers; builds
# both images offline (docker/build.sh --offline; with --registry, docker/build.sh, from
# a registry's images); stops the sandbox Asterisk if it runs (same ports) and holds the
# sandbox's lock so that nothing starts it meanwhile; brings the stack up and waits for
# Asterisk and uapid to be healthy; places a SIP call 210 -> 024 with the Asterisk
# image's SIPp; checks that uapid lists it answered with both views; parks it (checked
# in the listing and in Asterisk's parking lot); hangs it up over the API (checked in
# both); brings the stack down and checks that nothing of it is left: no container, no
# process, ports 5060/5038/8088/8090 free. The sandbox and the engine are then left as
# they were found (a dockerd started here is stopped again; UAPID_DOCKER_KEEP_ENGINE=1
# keeps it).
#
# Usage: docker/stack-test.sh [--registry]
# Exit status: 0 passed, 1 failed (what was seen is printed), 77 skipped: no Docker
# engine can be had here (a line "SKIPPED: no Docker engine: <reason>" says why).
# Everything listens on 127.0.0.1 only; containers use the host's network.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

readonly SKIP=77
project=uapid
compose_file=$repo/docker/compose.yaml
lock_file=${TMPDIR:-/tmp}/uapid-e2e.lock
dockerd_log=/var/log/uapid-dockerd.log
api=http://127.0.0.1:8090
ports_tcp=(5038 8088 8090)
ports_udp=(5060)

t0=$SECONDS
timings=()
phase_start=$SECONDS
phase() { # records the time of the phase that ends
  timings+=("$1 $((SECONDS - phase_start)) s")
  phase_start=$SECONDS
}

say() { printf 'stack-test: %s\n' "$*" >&2; }
fail() {
  printf 'stack-test: FAILED: %s\n' "$*" >&2
  exit 1
}
skip() {
  printf '\nstack-test: SKIPPED: no Docker engine: %s\n\n' "$*" >&2
  exit "$SKIP"
}

work=$(mktemp -d /tmp/uapid-stack-test.XXXXXX)
export UAPID_DOCKER_LOG_DIR=$work

# --- the engine -----------------------------------------------------------------------

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

apt_install() {
  say "installing $* with apt-get"
  { apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "$@"; } \
    >>"$work/apt.log" 2>&1
}

# Whether an engine could be had at all, before anything slow is done.
engine_possible() {
  command -v docker >/dev/null && engine_answers && return 0
  [[ $(id -u) == 0 ]] || skip "none answers, and only root can install and start dockerd"
  command -v dockerd >/dev/null && return 0
  command -v apt-get >/dev/null || skip "none answers, no dockerd, and no apt-get to install docker.io"
}

started_engine=
ensure_engine() {
  if command -v docker >/dev/null && engine_answers; then
    say "using the Docker engine that runs ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    apt_install docker.io || { tail -n 15 "$work/apt.log" >&2; skip "apt-get install docker.io failed"; }
  fi
  say "starting dockerd (no bridge network, no iptables; log $dockerd_log)"
  printf -- '--- %s stack-test.sh starts dockerd\n' "$(date -Is)" >>"$dockerd_log"
  # setsid and no descriptor of ours beyond 0-2: the daemon must not hold the e2e lock.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec setsid dockerd --bridge=none --iptables=false
  ) </dev/null >>"$dockerd_log" 2>&1 &
  started_engine=$!
  local deadline=$((SECONDS + 60))
  until engine_answers; do
    if ! kill -0 "$started_engine" 2>/dev/null; then
      started_engine=
      tail -n 15 "$dockerd_log" >&2
      skip "dockerd exited at start (see $dockerd_log)"
    fi
    if ((SECONDS > deadline)); then
      stop_engine
      tail -n 15 "$dockerd_log" >&2
      skip "dockerd did not answer within 60 s (see $dockerd_log)"
    fi
    sleep 0.3
  done
  say "dockerd $(docker version -f '{{.Server.Version}}') runs (pid $started_engine)"
}

stop_engine() {
  [[ -n $started_engine ]] || return 0
  local pid=$started_engine i
  started_engine=
  if [[ -n ${UAPID_DOCKER_KEEP_ENGINE:-} ]]; then
    say "leaving dockerd running (pid $pid; UAPID_DOCKER_KEEP_ENGINE is set)"
    return 0
  fi
  say "stopping the dockerd started here (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "dockerd (pid $pid) still runs after 30 s"
}

compose=()
ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  else
    command -v docker-compose >/dev/null || apt_install docker-compose ||
      { tail -n 15 "$work/apt.log" >&2; fail "apt-get install docker-compose failed"; }
    compose=(docker-compose)
  fi
  compose+=(-p "$project" -f "$compose_file")
}

# --- what runs --------------------------------------------------------------------------

# Processes of ours in containers: SIPp and Asterisk, found by their cgroup.
container_processes() {
  local p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case $comm in asterisk | sipp | uapid) ;; *) continue ;; esac
    grep -q docker "$p/cgroup" 2>/dev/null && echo "${p#/proc/} $comm"
  done
  return 0
}

# Listeners on the stack's ports (any process).
port_users() {
  local p
  for p in "${ports_tcp[@]}"; do ss -Hltnp "sport = :$p"; done
  for p in "${ports_udp[@]}"; do ss -Hlunp "sport = :$p"; done
}

stack_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null
}

# The containers' ids, once up.
ast=
uap=

rx() { docker exec "$ast" asterisk -C /etc/uapid-asterisk/asterisk.conf -rx "$1"; }

health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.3 s until it succeeds.
wait_for() {
  local bound=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + bound))
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within $bound s"
    sleep 0.3
  done
}

# --- the API ----------------------------------------------------------------------------

token=
get_token() {
  token=$(curl -sf --max-time 5 "$api/oauth/token.php" -d grant_type=client_credentials \
    -d client_id=admin-app -d client_secret=admin-secret -d type=unifiedapi |
    jq -r .access_token) && [[ -n $token && $token != null ]]
}

calls_json=
list_calls() {
  calls_json=$(curl -sf --max-time 5 -H "Authorization: Bearer $token" \
    "$api/uapi/phoneCalls/@me/@self")
}

uapid_healthy() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$api/health") == 200 ]]
}

# One call, answered, with a view for each phone, both on call (status 5).
call_answered() {
  list_calls || return 1
  jq -e '.entry | length == 1 and (.[0].answered != null)
    and ([.[0].phoneCallView[] | select(.status == "5") | .extension] | sort)
        == ["0003*024", "0003*210"]' <<<"$calls_json" >/dev/null
}

call_parked() {
  list_calls || return 1
  jq -e '.entry | length == 1 and ([.[0].phoneCallView[]
    | select(.parked != null and .parkedPos == "701" and .parkedBy == "0003*210")] | length == 1)' \
    <<<"$calls_json" >/dev/null
}

no_calls() { list_calls && jq -e '.entry | length == 0' <<<"$calls_json" >/dev/null; }

in_parking_lot() { rx 'parking show default' 2>/dev/null | grep -q 'PJSIP/0003_024-'; }
no_channels() { rx 'core show channels count' 2>/dev/null | grep -q '^0 active channels'; }

udp_bound() { # IP PORT: a socket is bound there (from the kernel's table)
  local hex
  hex=$(printf '%02X%02X%02X%02X:%04X' $(echo "$1" | awk -F. '{ print $4, $3, $2, $1 }') "$2")
  awk -v a="$hex" 'NR > 1 && $2 == a { found = 1 } END { exit !found }' /proc/net/udp
}

# --- teardown ---------------------------------------------------------------------------

stack_up=
sandbox_stopped=
uac_pid=

show_what_was_seen() {
  local c
  say "what was seen (logs in $work):"
  if [[ -n ${calls_json:-} ]]; then
    printf '  last listing: %s\n' "$calls_json" >&2
  fi
  for c in asterisk uapid; do
    printf -- '--- %s container: status %s, last log lines\n' "$c" \
      "$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' \
        "$("${compose[@]}" ps -q "$c" 2>/dev/null)" 2>/dev/null || echo none)" >&2
    "${compose[@]}" logs --no-color --tail 25 "$c" 2>&1 | sed 's/^/  /' >&2 || true
  done
  if [[ -n $ast ]]; then
    printf -- '--- Asterisk: channels, messages.log\n' >&2
    rx 'core show channels' 2>&1 | sed 's/^/  /' >&2 || true
    docker exec "$ast" tail -n 20 /var/log/asterisk/messages.log 2>&1 |
      sed 's/^/  /' >&2 || true
    printf -- '--- SIPp\n' >&2
    docker exec "$ast" sh -c 'tail -n 5 /tmp/sipp-*.err 2>/dev/null' 2>&1 |
      sed 's/^/  /' >&2 || true
  fi
  [[ -f $work/uac.out ]] && tail -n 25 "$work/uac.out" | sed 's/^/  uac: /' >&2
  return 0
}

stack_down() {
  [[ -n $stack_up ]] || return 0
  stack_up=
  "${compose[@]}" down --timeout 15 --remove-orphans >>"$work/compose.log" 2>&1 ||
    say "compose down failed (see $work/compose.log)"
}

# docker/sandbox.sh takes this lock to start or stop its Asterisk (any checkout's copy
# does): held while the stack runs, a sandbox start elsewhere waits instead of failing.
sandbox_lock_fd=
hold_sandbox_lock() {
  local dir
  dir=$(dirname "$(bash "$here/sandbox.sh" root)")
  mkdir -p "$dir"
  exec {sandbox_lock_fd}>"$dir/lock"
  flock -w 300 "$sandbox_lock_fd" || fail "could not lock $dir/lock within 300 s"
}
release_sandbox_lock() {
  [[ -n $sandbox_lock_fd ]] || return 0
  exec {sandbox_lock_fd}>&-
  sandbox_lock_fd=
}

restore_sandbox() {
  release_sandbox_lock
  [[ -n $sandbox_stopped ]] || return 0
  sandbox_stopped=
  say "starting the sandbox Asterisk again (it ran before)"
  bash "$here/sandbox.sh" start || say "could not start the sandbox Asterisk again"
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if ((rc != 0 && rc != SKIP)) && [[ -n $stack_up ]]; then show_what_was_seen; fi
  [[ -z $uac_pid ]] || kill "$uac_pid" 2>/dev/null
  stack_down
  # Nothing may outlive the stack, whatever happened.
  if [[ -n ${compose[*]} ]]; then
    local left
    left=$(stack_containers)
    [[ -z $left ]] || docker rm -f $left >/dev/null 2>&1
  fi
  restore_sandbox
  stop_engine
  if ((rc == 0 || rc == SKIP)); then
    rm -rf "$work"
  else
    say "logs kept in $work"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the test ---------------------------------------------------------------------------

main() {
  local build_args=(--offline)
  case ${1:-} in
    "") ;;
    --registry) build_args=() ;;
    -h | --help | help)
      sed -n '2,/^set -/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) fail "unknown option $1 (usage: docker/stack-test.sh [--registry])" ;;
  esac
  engine_possible
  command -v curl >/dev/null && command -v jq >/dev/null && command -v ss >/dev/null &&
    command -v flock >/dev/null || apt_install curl jq iproute2 util-linux ||
    fail "could not install curl, jq, iproute2, util-linux"

  # What the offline images are made of, before the lock (the first time this takes
  # minutes; build.sh then finds both up to date): the sandbox's root filesystem and
  # uapid's release binary.
  if [[ ${build_args[*]} == --offline ]]; then
    bash "$here/sandbox.sh" build --quiet || fail "the sandbox's root filesystem could not be built"
    command -v cargo >/dev/null || fail "cargo is missing (the offline image takes uapid built here)"
    say "cargo build --release --locked --bin uapid"
    cargo build --release --locked --bin uapid >"$work/cargo.log" 2>&1 ||
      { tail -n 30 "$work/cargo.log" >&2; fail "cargo build failed (log: $work/cargo.log)"; }
    phase "sandbox root and uapid binary"
  fi

  # The e2e tests' lock, for the rest of the run: one Asterisk on these ports at a time,
  # and one user of a dockerd started here.
  exec 9>"$lock_file"
  if ! flock -n 9; then
    say "waiting for $lock_file (an end-to-end test runs)"
    flock -w 900 9 || fail "could not take $lock_file within 900 s"
  fi
  phase "lock"

  ensure_engine
  ensure_compose
  phase "engine"

  bash "$here/build.sh" "${build_args[@]}" || fail "building the images failed"
  phase "images"

  # Leftovers of an earlier run that was killed.
  local left
  left=$(stack_containers)
  if [[ -n $left ]]; then
    say "removing an earlier run's containers"
    docker rm -f $left >/dev/null
  fi
  if bash "$here/sandbox.sh" status >/dev/null 2>&1; then
    sandbox_stopped=1
    bash "$here/sandbox.sh" stop
  fi
  hold_sandbox_lock
  local busy
  busy=$(port_users)
  [[ -z $busy ]] || fail "the stack's ports are taken already:
$busy"

  say "compose up"
  stack_up=1
  "${compose[@]}" up -d --no-build >>"$work/compose.log" 2>&1 ||
    { cat "$work/compose.log" >&2; fail "compose up failed"; }
  ast=$("${compose[@]}" ps -q asterisk)
  uap=$("${compose[@]}" ps -q uapid)
  [[ -n $ast && -n $uap ]] || fail "compose up started no containers"
  wait_for 90 "Asterisk healthy" eval '[[ $(health_of "$ast") == healthy ]]'
  wait_for 60 "uapid's /health 200" uapid_healthy
  wait_for 30 "uapid's container healthy" eval '[[ $(health_of "$uap") == healthy ]]'
  phase "stack up and healthy"
  say "both containers healthy; uapid answers /health with 200"

  wait_for 10 "an OAuth token" get_token
  list_calls || fail "listing calls failed"
  jq -e '.entry | length == 0' <<<"$calls_json" >/dev/null || fail "calls listed before any was made"

  # Phone 024 answers after 0.5 s; phone 210 calls it. SIPp runs in the Asterisk
  # container (with the host's network), pids kept there.
  docker exec -d "$ast" sh -c 'echo $$ >/tmp/sipp-024.pid; exec sipp \
    -sf /uapid/sip/uas_answer.xml -i 127.0.0.1 -p 5024 -mi 127.0.0.1 -ci 127.0.0.1 \
    -min_rtp_port 30000 -max_rtp_port 30099 -d 500 -nostdin -aa \
    -trace_err -error_file /tmp/sipp-024.err >/tmp/sipp-024.out 2>&1'
  wait_for 10 "phone 024 listening on 127.0.0.1:5024" udp_bound 127.0.0.1 5024
  docker exec "$ast" sipp 127.0.0.1:5060 -sf /uapid/sip/uac.xml -s 024 -key caller 0003_210 \
    -i 127.0.0.1 -p 6210 -mi 127.0.0.1 -ci 127.0.0.1 -min_rtp_port 31000 \
    -max_rtp_port 31099 -m 1 -l 1 -nostdin -aa \
    -trace_err -error_file /tmp/sipp-210.err >"$work/uac.out" 2>&1 &
  uac_pid=$!
  wait_for 20 "uapid listing the call 210 -> 024 answered, both views on call" call_answered
  local id v210
  id=$(jq -r '.entry[0].id' <<<"$calls_json")
  v210=$(jq -r '.entry[0].phoneCallView[] | select(.extension == "0003*210") | .id' <<<"$calls_json")
  rx 'core show channels concise' | grep -q '^PJSIP/0003_210-.*!Up!' &&
    rx 'core show channels concise' | grep -q '^PJSIP/0003_024-.*!Up!' ||
    fail "Asterisk does not show both phones' channels up"
  phase "call up and listed"
  say "call $id listed: answered, views 0003*210 and 0003*024 on call"

  # Action: Park the other side of 210's view; 210's leg ends, 024 waits in the lot.
  local code
  code=$(curl -s -o "$work/park.json" -w '%{http_code}' --max-time 10 -X PUT \
    -H "Authorization: Bearer $token" "$api/uapi/phoneCalls/@me/@self/$id" \
    -d "{\"action\":\"Park\",\"phoneCallViewId\":\"$v210\"}")
  [[ $code == 202 ]] || fail "Park answered $code: $(cat "$work/park.json")"
  wait_for 15 "uapid listing the call parked at 701 by 0003*210" call_parked
  wait_for 15 "024's channel in Asterisk's parking lot" in_parking_lot
  local uac_rc=0
  wait_for 20 "phone 210's call ended by the park" eval '! kill -0 $uac_pid 2>/dev/null'
  wait "$uac_pid" || uac_rc=$?
  uac_pid=
  ((uac_rc == 0)) || fail "phone 210's SIPp exited with $uac_rc (its call was not ended cleanly)"
  phase "park verified"
  say "Park: 202; listed parked at 701 by 0003*210; Asterisk has 024 in lot default; 210 hung up"

  # Hang up over the API: nothing left in the listing or in Asterisk.
  code=$(curl -s -o "$work/hangup.json" -w '%{http_code}' --max-time 10 -X DELETE \
    -H "Authorization: Bearer $token" "$api/uapi/phoneCalls/@me/@self/$id")
  [[ $code == 202 ]] || fail "hang-up answered $code: $(cat "$work/hangup.json")"
  wait_for 15 "uapid listing no call after the hang-up" no_calls
  wait_for 15 "Asterisk with no channel after the hang-up" no_channels
  phase "hang-up verified"
  say "hang-up: 202; no call listed; no channel in Asterisk"

  docker exec "$ast" sh -c 'kill $(cat /tmp/sipp-024.pid)' || true
  say "compose down"
  stack_down
  local procs
  left=$(stack_containers)
  [[ -z $left ]] || fail "containers left after compose down: $left"
  procs=$(container_processes)
  [[ -z $procs ]] || fail "processes left in containers after compose down: $procs"
  busy=$(port_users)
  [[ -z $busy ]] || fail "ports still taken after compose down:
$busy"
  phase "down, nothing left"
  say "down: no container, no Asterisk/SIPp/uapid process in a container, ports 5060/5038/8088/8090 free"

  restore_sandbox
  stop_engine
  phase "restore"
  local t summary=
  for t in "${timings[@]}"; do summary+=${summary:+, }$t; done
  say "PASSED in $((SECONDS - t0)) s ($summary)"
}

main "$@"
