#!/usr/bin/env bash
# Build the local podman base image localhost/debian-python:bookworm
# (Debian bookworm minbase + python3, python3-venv, ca-certificates) with
# debootstrap, because no container registry is reachable from this machine.
#
# Idempotent: does nothing if the image already exists with the current recipe
# label. Needs root and Debian packages only (installs missing ones with apt).
#
# Usage:
#   scripts/podman-base-image.sh                 # create image if missing
#   scripts/podman-base-image.sh --force         # rebuild even if present
#   scripts/podman-base-image.sh --print-flags   # print the `podman run` flags
#                                                #   this machine needs, then exit
# Environment (all optional):
#   BASE_IMAGE             image name        (default localhost/debian-python:bookworm)
#   DEBIAN_SUITE           suite             (default bookworm)
#   DEBIAN_MIRROR          Debian mirror     (default: taken from apt sources)
#   DEBIAN_SECURITY_MIRROR security mirror   (default: taken from apt sources)
#   PODMAN_BASE_WORKDIR    scratch dir       (default /var/tmp/podman-base-image)
#   EXTRA_CA_DIR           extra CA certs (*.crt) copied into the image, e.g. a
#                          TLS-intercepting egress proxy's CA, so pip works in
#                          builds (default /usr/local/share/ca-certificates;
#                          set to "" to skip)
#   PODMAN_CONFIGURE_HOST  1 (default): write
#                          /etc/containers/containers.conf.d/50-local-sandbox.conf
#                          so plain `podman run/build` work here (runc, cgroupfs,
#                          file events, ulimits within the hard limits); 0: skip
#   SKIP_SMOKE_TEST        1: skip the `podman run ... python3 --version` check
#
# Why the host config/flags: on this kind of machine (cgroup v1/v2 hybrid, no
# systemd, no CAP_SYS_RESOURCE) podman's defaults fail:
#   - crun: "cgroups in hybrid mode not supported"        -> use runc
#   - default ulimits nofile=1048576 / nproc=4194304 exceed the hard limits
#     ("error setting rlimit type 7/6: operation not permitted")
#                                                         -> cap the ulimits
set -euo pipefail

RECIPE_VERSION=1
IMAGE="${BASE_IMAGE:-localhost/debian-python:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
WORKDIR="${PODMAN_BASE_WORKDIR:-/var/tmp/podman-base-image}"
EXTRA_CA_DIR="${EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
CONFIGURE_HOST="${PODMAN_CONFIGURE_HOST:-1}"
HOST_CONF=/etc/containers/containers.conf.d/50-local-sandbox.conf
FORCE=0
PRINT_FLAGS=0

log() { printf '[podman-base-image] %s\n' "$*" >&2; }
die() { printf '[podman-base-image] ERROR: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --print-flags) PRINT_FLAGS=1 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

# ulimits a container may get here: not above the hard limits, and podman
# lowers its own RLIMIT_NPROC to 32768 before starting the runtime.
nofile_limit() { local h; h=$(ulimit -Hn); [[ "$h" == unlimited || "$h" -gt 1048576 ]] && h=1048576; echo "$h"; }
nproc_limit()  { local h; h=$(ulimit -Hu); [[ "$h" == unlimited || "$h" -gt 32768 ]] && h=32768; echo "$h"; }
run_flags() {
  local nf np; nf=$(nofile_limit); np=$(nproc_limit)
  echo "--runtime runc --cgroup-manager cgroupfs --events-backend file --ulimit nofile=${nf}:${nf} --ulimit nproc=${np}:${np}"
}

if [[ "$PRINT_FLAGS" == 1 ]]; then run_flags; exit 0; fi

[[ "$(id -u)" == 0 ]] || die "must run as root (debootstrap, chroot and rootful podman)"

# ---------------------------------------------------------------- packages
NEEDED_PKGS=(podman runc conmon catatonit netavark aardvark-dns containernetworking-plugins
             slirp4netns fuse-overlayfs uidmap iptables debootstrap debian-archive-keyring
             tar util-linux)
missing=()
for p in "${NEEDED_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# ------------------------------------------------------------- host config
if [[ "$CONFIGURE_HOST" == 1 ]]; then
  nf=$(nofile_limit); np=$(nproc_limit)
  want=$(cat <<EOF
# Written by scripts/podman-base-image.sh: podman defaults that work on this
# machine (hybrid cgroups, no systemd, no CAP_SYS_RESOURCE).
[containers]
default_ulimits = ["nofile=${nf}:${nf}", "nproc=${np}:${np}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
)
  if [[ ! -f "$HOST_CONF" ]] || [[ "$(cat "$HOST_CONF")" != "$want" ]]; then
    log "writing podman host config $HOST_CONF"
    mkdir -p "$(dirname "$HOST_CONF")"
    printf '%s\n' "$want" > "$HOST_CONF"
  fi
fi
FLAGS=$(run_flags)

# ------------------------------------------------------------- idempotency
mkdir -p "$WORKDIR"
exec 9>"$WORKDIR/.lock"
flock 9 || die "cannot lock $WORKDIR/.lock"

label_key=local.base-image.recipe
if [[ "$FORCE" != 1 ]] && podman image exists "$IMAGE"; then
  have=$(podman image inspect --format "{{index .Labels \"$label_key\"}}" "$IMAGE" 2>/dev/null || true)
  if [[ "$have" == "$RECIPE_VERSION" ]]; then
    log "image $IMAGE already exists (recipe $RECIPE_VERSION); nothing to do"
    exit 0
  fi
  log "image $IMAGE exists with recipe '${have:-none}', want $RECIPE_VERSION: rebuilding"
fi

# ---------------------------------------------------------------- mirrors
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [[ -f "$f" ]]; then grep -v '^[[:space:]]*#' "$f" || true; fi
  done
}
detect_mirror() { # $1 = path suffix (debian | debian-security)
  apt_sources | grep -oE "https?://[^[:space:]]+/$1/?([[:space:]]|\$)" | head -n1 | tr -d '[:space:]' | sed 's:/*$::'
}
MIRROR="${DEBIAN_MIRROR:-$(detect_mirror debian)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SEC_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(detect_mirror debian-security)}"
SEC_MIRROR="${SEC_MIRROR:-http://deb.debian.org/debian-security}"
log "mirror: $MIRROR  security: $SEC_MIRROR  suite: $SUITE"

# ---------------------------------------------------------------- rootfs
ROOTFS="$WORKDIR/rootfs"
unmount_under() { # lazily unmount anything still mounted below $1
  local m
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
cleanup() {
  if [[ -d "$ROOTFS" ]]; then
    unmount_under "$ROOTFS"
    rm -rf --one-file-system "$ROOTFS"
  fi
}
trap cleanup EXIT
cleanup

start=$(date +%s)
log "debootstrap --variant=minbase $SUITE (takes ~40 s)"
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$ROOTFS" "$MIRROR" > "$WORKDIR/debootstrap.log" 2>&1; then
  tail -n 30 "$WORKDIR/debootstrap.log" >&2
  die "debootstrap failed (full log: $WORKDIR/debootstrap.log)"
fi

cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SEC_MIRROR $SUITE-security main
EOF
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true

if [[ -n "$EXTRA_CA_DIR" ]] && compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
  log "adding extra CA certificates from $EXTRA_CA_DIR"
  cp "$EXTRA_CA_DIR"/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi

log "chroot: apt-get upgrade (security/updates), update-ca-certificates, clean"
if ! chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -ec 'apt-get update -q
              apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
              apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates
              update-ca-certificates
              apt-get clean
              rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log
              python3 -m venv --help >/dev/null
              python3 --version' > "$WORKDIR/chroot.log" 2>&1; then
  tail -n 30 "$WORKDIR/chroot.log" >&2
  die "chroot package setup failed (full log: $WORKDIR/chroot.log)"
fi
: > "$ROOTFS/etc/resolv.conf"   # podman provides its own at run time
unmount_under "$ROOTFS"

log "importing into podman as $IMAGE"
if podman image exists "$IMAGE"; then podman rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
tar --numeric-owner --xattrs -C "$ROOTFS" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
  podman import --quiet \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL $label_key=$RECIPE_VERSION" \
    --change "LABEL org.opencontainers.image.description=debian-$SUITE-minbase+python3" \
    - "$IMAGE" >/dev/null
podman image exists "$IMAGE" || die "podman import did not produce $IMAGE"

if [[ "${SKIP_SMOKE_TEST:-0}" != 1 ]]; then
  log "smoke test: podman run $FLAGS --network host $IMAGE python3 --version"
  # shellcheck disable=SC2086
  out=$(podman run --rm $FLAGS --network host "$IMAGE" python3 --version 2>&1) ||
    die "smoke test failed: $out"
  log "smoke test ok: $out"
fi

log "done in $(( $(date +%s) - start )) s: $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
log "run flags for this machine: $FLAGS"
