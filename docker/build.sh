#!/usr/bin/env bash
# build.sh: build the images of compose.yaml (uapid-asterisk and uapid) with the classic
# builder, so neither BuildKit nor its frontend image is needed.
#
# Usage: docker/build.sh [--offline]
#
#   (no option)  with a registry: Asterisk FROM debian:sid with Debian's packages; uapid
#                compiled in rust:1-bookworm and run on debian:bookworm-slim.
#   --offline    no image is pulled and no step downloads: the sandbox's root
#                filesystem (docker/sandbox.sh build, cached) is imported as the base
#                image uapid-sandbox-base (again only when its packages changed),
#                Asterisk is built from it, and uapid from a binary built here with
#                cargo. Needs root (the sandbox, and a mount to read its root).
#
# Each image gets a small context: the files its Dockerfile.*.dockerignore lets through
# (the classic builder reads only a .dockerignore at the context's root, and the
# repository's target/ is large). Build output goes to $UAPID_DOCKER_LOG_DIR (default: a
# new directory under /tmp); the end of a failed build's output is printed.
# Environment: UAPID_ASTERISK_IMAGE, UAPID_IMAGE, UAPID_BASE_IMAGE (the tags;
# default uapid-asterisk, uapid, uapid-sandbox-base).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

asterisk_image=${UAPID_ASTERISK_IMAGE:-uapid-asterisk}
uapid_image=${UAPID_IMAGE:-uapid}
base_image=${UAPID_BASE_IMAGE:-uapid-sandbox-base}
log_dir=${UAPID_DOCKER_LOG_DIR:-}

say() { printf 'build: %s\n' "$*" >&2; }
die() { printf 'build: error: %s\n' "$*" >&2; exit 1; }

stage_dir=
cleanup() { [[ -z $stage_dir ]] || rm -rf "$stage_dir"; }
trap cleanup EXIT

# The paths a Dockerfile uses: the "!" lines of its ignore file, without a trailing "/".
context_paths() {
  sed -n 's:^!\(.*[^/]\)/*$:\1:p' "$here/$1.dockerignore"
}

# build_image DOCKERFILE TAG EXTRA_FILE [BUILD_ARGS...]: EXTRA_FILE (unless empty) goes
# into the context as prebuilt/<its name>.
build_image() {
  local dockerfile=$1 tag=$2 extra=$3 ctx log start p
  shift 3
  ctx=$stage_dir/$dockerfile
  mkdir -p "$ctx/docker"
  cp "$here/$dockerfile" "$ctx/docker/"
  # The Dockerfile is still sent, but COPY . leaves it out: editing it does not
  # invalidate the layers that copy the sources (and uapid's compilation after them).
  printf 'docker/\n.dockerignore\n' >"$ctx/.dockerignore"
  while read -r p; do
    [[ -e $repo/$p ]] || die "$p is missing from $repo"
    (cd "$repo" && cp -a --parents "$p" "$ctx/")
  done < <(context_paths "$dockerfile")
  if [[ -n $extra ]]; then
    mkdir -p "$ctx/prebuilt"
    cp "$extra" "$ctx/prebuilt/"
  fi
  log=$log_dir/$dockerfile.log
  start=$SECONDS
  say "$tag: building ($dockerfile, context $(du -sh "$ctx" | cut -f1))"
  # --network host: RUN steps have the host's network (an engine started with
  # --bridge=none has no other), for apt-get and cargo on the registry path. --force-rm:
  # a failed step leaves no container behind.
  if ! DOCKER_BUILDKIT=0 docker build --network host --force-rm -f "$ctx/docker/$dockerfile" \
    --label uapid.built-by=build.sh -t "$tag" "$@" "$ctx" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "docker build of $tag failed (log: $log)"
  fi
  say "$tag: built in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" |
    awk '{ printf "%d MB", $1 / 1e6 }'))"
}

# The sandbox's root as an image. Its identity is its package list and package database:
# the same root is not imported twice.
import_base() {
  local root id have start m st excl=()
  bash "$here/sandbox.sh" build --quiet
  root=$(readlink -f "$(bash "$here/sandbox.sh" root)")
  id=$(cat "$root/etc/uapid-sandbox.stamp" "$root/var/lib/dpkg/status" | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{index .Config.Labels "uapid.sandbox-root"}}' \
    "$base_image" 2>/dev/null || true)
  if [[ $have == "$id" ]]; then
    say "$base_image: up to date with $root"
    return 0
  fi
  # tar reads the root through a bind mount of it alone, in a mount namespace of its own:
  # what the sandbox mounts inside (proc, the host's /tmp, repositories), now or while
  # tar runs, is not seen. Left out as well: apt's lists and caches, and the sandbox
  # Asterisk's state and logs; the directories themselves stay.
  for m in ./proc ./tmp ./dev ./sys ./run/asterisk ./var/lib/apt/lists ./var/cache/apt \
    ./var/log/asterisk ./var/spool/asterisk; do
    excl+=("--exclude=$m/*")
  done
  excl+=("--exclude=./var/lib/asterisk/astdb.sqlite3*")
  mkdir -p "$log_dir/rootfs"
  start=$SECONDS
  say "$base_image: importing $root"
  set +e
  unshare --mount --propagation private sh -c \
    'mount --bind "$1" "$2" && shift 2 && exec tar "$@"' \
    tar "$root" "$log_dir/rootfs" -C "$log_dir/rootfs" --anchored --numeric-owner \
    "${excl[@]}" -c . 2>"$log_dir/import-tar.log" |
    docker import --change "LABEL uapid.sandbox-root=$id" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - "$base_image" >"$log_dir/import.log" 2>&1
  st=("${PIPESTATUS[@]}")
  set -e
  rmdir "$log_dir/rootfs" 2>/dev/null || true
  # tar's status 1 only says a file changed while it was read (the sandbox may run).
  if ((st[0] > 1 || st[1] != 0)); then
    cat "$log_dir/import-tar.log" "$log_dir/import.log" >&2
    die "importing $root as $base_image failed (tar ${st[0]}, import ${st[1]})"
  fi
  say "$base_image: imported in $((SECONDS - start)) s ($(docker image inspect \
    -f '{{.Size}}' "$base_image" | awk '{ printf "%d MB", $1 / 1e6 }'))"
}

main() {
  local offline=0
  case ${1:-} in
    --offline) offline=1 ;;
    "") ;;
    -h | --help | help)
      sed -n '2,/^set -/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      return 0
      ;;
    *) die "unknown option $1 (usage: docker/build.sh [--offline])" ;;
  esac
  command -v docker >/dev/null || die "no docker command"
  docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
  if [[ -z $log_dir ]]; then
    log_dir=$(mktemp -d /tmp/uapid-docker-build.XXXXXX)
  fi
  mkdir -p "$log_dir"
  stage_dir=$(mktemp -d /tmp/uapid-docker-context.XXXXXX)

  if ((offline)); then
    command -v cargo >/dev/null || die "--offline builds uapid on this host: cargo is missing"
    local start=$SECONDS target bin
    say "uapid: cargo build --release --locked --bin uapid"
    (cd "$repo" && cargo build --release --locked --bin uapid) >"$log_dir/cargo.log" 2>&1 ||
      { tail -n 30 "$log_dir/cargo.log" >&2; die "cargo build failed (log: $log_dir/cargo.log)"; }
    target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin=$target/release/uapid
    [[ -x $bin ]] || die "no binary at $bin after cargo build"
    say "uapid: binary ready in $((SECONDS - start)) s ($bin)"
    import_base
    build_image Dockerfile.asterisk "$asterisk_image" "" --build-arg "BASE=$base_image"
    build_image Dockerfile.uapid "$uapid_image" "$bin" \
      --build-arg "BUILD_BASE=$base_image" --build-arg "BASE=$base_image"
    # Untagged images of earlier builds: replaced images and the uapid build stage
    # (offline it only copies the binary; there is no cache worth keeping).
    docker image prune -f --filter label=uapid.built-by=build.sh >/dev/null
    docker image prune -f --filter label=uapid.stage=build >/dev/null
  else
    build_image Dockerfile.asterisk "$asterisk_image" ""
    build_image Dockerfile.uapid "$uapid_image" ""
  fi
  [[ -n ${UAPID_DOCKER_LOG_DIR:-} ]] || rm -rf "$log_dir"
}

main "$@"
