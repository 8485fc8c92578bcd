#!/usr/bin/env bash
# Build the connector image `airbyte/source-soundlink:dev` with podman, on a Debian machine that has
# no Docker engine (a `docker` CLI without a daemon is not enough to build or run images).
#
#   scripts/build_image.sh               # every step below, each skipped when already done
#   scripts/build_image.sh --rebuild-base  # also rebuild the stand-in base image
#
# Steps:
#   1. podman   install podman, runc, debootstrap (and friends) with apt-get if missing; the packages
#               are printed before apt-get runs (SOUNDLINK_NO_APT=1 stops there instead)
#   2. config   podman settings for this checkout only, in build/podman/containers.conf, used through
#               CONTAINERS_CONF (podman then reads no other containers.conf): runc runtime, host
#               network, cgroupfs, file event log, container ulimits within this machine's limits
#               (this machine's root lacks CAP_SYS_RESOURCE, so podman's defaults cannot be set);
#               without overlayfs, vfs storage in build/podman/storage (CONTAINERS_STORAGE_CONF).
#               Nothing under /etc is written: other podman users on the machine are unaffected.
#   3. base     a stand-in for airbyte/python-connector-base (which cannot be pulled here): a
#               debootstrapped Debian bookworm with Debian's Python 3.11 as a venv in /usr/local
#               (python, pip and console scripts in /usr/local/bin, as in the real base), tzdata
#               set to UTC, user airbyte (uid 1000), /airbyte; imported with `podman import`
#   4. image    `podman build` of ./Dockerfile with --build-arg BASE_IMAGE=<stand-in> (layer cached),
#               the host CA bundle passed as a build secret (never stored in the image), then a
#               `spec` smoke run of the result
#
# To run the image afterwards with the same settings: `scripts/image/docker run --rm IMAGE spec`, or
# `CONTAINERS_CONF=build/podman/containers.conf podman ...`.
#
# Environment:
#   SOUNDLINK_IMAGE          tag to build (default airbyte/source-soundlink:dev)
#   SOUNDLINK_BASE_IMAGE     build FROM this image instead of the stand-in (e.g. the real base
#                            where a registry is reachable); step 3 is then skipped
#   SOUNDLINK_STANDIN_IMAGE  name of the stand-in base (default localhost/soundlink-python-base:bookworm-py311)
#   SOUNDLINK_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one this machine's apt uses)
#   SOUNDLINK_CA_BUNDLE      CA bundle handed to pip during the build (default /etc/ssl/certs/ca-certificates.crt)
#   SOUNDLINK_NO_APT=1       never run apt-get: fail, naming the missing packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SOUNDLINK_IMAGE:-airbyte/source-soundlink:dev}"
STANDIN="${SOUNDLINK_STANDIN_IMAGE:-localhost/soundlink-python-base:bookworm-py311}"
CA_BUNDLE="${SOUNDLINK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SUITE=bookworm
PODMAN_DIR="$ROOT/build/podman"
CONF_FILE="$PODMAN_DIR/containers.conf"
STORAGE_CONF_FILE="$PODMAN_DIR/storage.conf"
# Written by earlier versions of this script; reported, never touched.
OLD_HOST_CONF=/etc/containers/containers.conf.d/50-source-soundlink.conf
LOCK_FILE=/var/tmp/source-soundlink-build_image.lock
REBUILD_BASE=0

for arg in "$@"; do
    case "$arg" in
        --rebuild-base) REBUILD_BASE=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_image.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

START=$SECONDS
step_start=$SECONDS
say() { printf '[build_image] %s\n' "$*"; }
step() { step_start=$SECONDS; say "==> $*"; }
done_step() { say "    done in $((SECONDS - step_start))s"; }
die() { printf '[build_image] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "not root: re-running with sudo"
        exec sudo -n --preserve-env=SOUNDLINK_IMAGE,SOUNDLINK_BASE_IMAGE,SOUNDLINK_STANDIN_IMAGE,SOUNDLINK_DEBIAN_MIRROR,SOUNDLINK_CA_BUNDLE,SOUNDLINK_NO_APT "$0" "$@"
    fi
    die "needs root (apt-get, rootful podman) and passwordless sudo is not available"
fi

# One build at a time on this machine (parallel test sessions share the image store).
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
    say "another build_image.sh is running; waiting for it"
    flock 9
fi

# ---------------------------------------------------------------- 1. podman and tools
step "1/4 podman, runc and debootstrap"
need_pkgs=()
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
command -v conmon >/dev/null 2>&1 || need_pkgs+=(conmon)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v newuidmap >/dev/null 2>&1 || need_pkgs+=(uidmap)
command -v fuse-overlayfs >/dev/null 2>&1 || need_pkgs+=(fuse-overlayfs)
[ -e /usr/lib/cni/host-local ] || need_pkgs+=(containernetworking-plugins)
if [ ${#need_pkgs[@]} -eq 0 ]; then
    say "    already installed: $(podman --version), $(runc --version | head -n1)"
else
    command -v apt-get >/dev/null 2>&1 || die "missing ${need_pkgs[*]} and no apt-get to install them (Debian/Ubuntu only)"
    [ "${SOUNDLINK_NO_APT:-}" = 1 ] && die "missing ${need_pkgs[*]}; SOUNDLINK_NO_APT=1, so install them yourself"
    say "    installing machine-wide with apt-get (as root): ${need_pkgs[*]}"
    say "    (apt-get update, then apt-get install --no-install-recommends; SOUNDLINK_NO_APT=1 to refuse)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null \
        || die "apt-get install ${need_pkgs[*]} failed"
    say "    installed: $(podman --version)"
fi
done_step

# ---------------------------------------------------------------- 2. podman configuration
step "2/4 podman configuration for this checkout ($CONF_FILE)"
hard_nofile="$(ulimit -Hn)"
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
[ "$hard_nofile" -gt 1048576 ] && hard_nofile=1048576
# podman's own process count limit is capped at kernel.pid_max, and runc cannot raise it.
hard_nproc="$(ulimit -Hu)"
pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)"
{ [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt "$pid_max" ]; } && hard_nproc="$pid_max"
cgroup_manager=cgroupfs
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && cgroup_manager=systemd
# Only the podman commands given CONTAINERS_CONF read this file (it replaces every other
# containers.conf for them), so these settings stay inside this project.
wanted_conf="# Written by source-soundlink scripts/build_image.sh; read by podman through CONTAINERS_CONF only.
[containers]
# Containers share the host network: the sandbox API and the TLS proxy are reached as from the host.
netns = \"host\"
# podman's defaults (nofile/nproc 1048576) exceed what this machine lets root set.
default_ulimits = [\"nofile=${hard_nofile}:${hard_nofile}\", \"nproc=${hard_nproc}:${hard_nproc}\"]

[network]
# Any network podman would create stays in the checkout too.
network_config_dir = \"${PODMAN_DIR}/networks\"

[engine]
runtime = \"runc\"
cgroup_manager = \"${cgroup_manager}\"
events_logger = \"file\"
"
mkdir -p "$PODMAN_DIR/networks"
if [ -f "$CONF_FILE" ] && [ "$(cat "$CONF_FILE")" = "$(printf '%s' "$wanted_conf")" ]; then
    say "    up to date"
else
    printf '%s' "$wanted_conf" > "$CONF_FILE"
    say "    wrote: runtime runc, netns host, cgroup manager ${cgroup_manager}, ulimits nofile=${hard_nofile} nproc=${hard_nproc}"
fi
export CONTAINERS_CONF="$CONF_FILE"
if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
    # A storage of its own: a vfs driver on podman's default store would clash with other users' overlay.
    printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' \
        "$PODMAN_DIR/run" "$PODMAN_DIR/storage" > "$STORAGE_CONF_FILE"
    export CONTAINERS_STORAGE_CONF="$STORAGE_CONF_FILE"
    say "    no overlayfs in this kernel: vfs storage in $PODMAN_DIR/storage"
else
    rm -f "$STORAGE_CONF_FILE"
fi
if [ -f "$OLD_HOST_CONF" ] && grep -q 'source-soundlink' "$OLD_HOST_CONF"; then
    say "    note: $OLD_HOST_CONF was written by an earlier version of this script and"
    say "    applies to every podman container on this machine; remove it unless you want that"
fi
podman info >/dev/null 2>&1 || die "podman does not work here: $(podman info 2>&1 | tail -n 3)"
say "    podman $(podman version --format '{{.Client.Version}}'), storage $(podman info --format '{{.Store.GraphDriverName}}'), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"
done_step

# ---------------------------------------------------------------- 3. stand-in base image
debian_mirror() {
    # The first apt source of Debian's $SUITE (one-line .list or deb822 .sources format).
    local files=() f
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v suite="$SUITE" '
        FNR == 1 && NR != 1 { if (uris != "" && enabled && has_suite && is_deb) { print uris; found = 1; exit }
                              uris = ""; has_suite = 0; enabled = 1; is_deb = 0 }
        /^[[:space:]]*deb[[:space:]]/ {
            n = split($0, w, /[[:space:]]+/); i = 2
            if (w[i] ~ /^\[/) { while (i <= n && w[i] !~ /\]$/) i++; i++ }
            if (w[i + 1] == suite) { print w[i]; found = 1; exit }
            next
        }
        /^[[:space:]]*$/ { if (uris != "" && enabled && has_suite && is_deb) { print uris; found = 1; exit }
                           uris = ""; has_suite = 0; enabled = 1; is_deb = 0; next }
        /^URIs:/ { uris = $2 }
        /^Types:/ { for (k = 2; k <= NF; k++) if ($k == "deb") is_deb = 1 }
        /^Enabled:/ { enabled = ($2 != "no") }
        /^Suites:/ { for (k = 2; k <= NF; k++) if ($k == suite) has_suite = 1 }
        BEGIN { enabled = 1 }
        END { if (!found && uris != "" && enabled && has_suite && is_deb) print uris }
    ' "${files[@]}" | head -n1
}

if [ -n "${SOUNDLINK_BASE_IMAGE:-}" ]; then
    BASE="$SOUNDLINK_BASE_IMAGE"
    step "3/4 base image: $BASE (SOUNDLINK_BASE_IMAGE; no stand-in needed)"
    done_step
else
    BASE="$STANDIN"
    step "3/4 stand-in base image $STANDIN"
    if [ "$REBUILD_BASE" -eq 0 ] && podman image exists "$STANDIN"; then
        say "    already present (--rebuild-base to rebuild)"
    else
        mirror="${SOUNDLINK_DEBIAN_MIRROR:-$(debian_mirror)}"
        mirror="${mirror:-https://deb.debian.org/debian}"
        workdir="$(mktemp -d /var/tmp/soundlink-base.XXXXXX)"
        trap 'rm -rf "$workdir"' EXIT
        rootfs="$workdir/rootfs"
        say "    debootstrap $SUITE (minbase + python3.11) from $mirror into $rootfs"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,tzdata \
            "$SUITE" "$rootfs" "$mirror" > "$workdir/debootstrap.log" 2>&1 \
            || { tail -n 20 "$workdir/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
        say "    configuring: venv in /usr/local, UTC, user airbyte (uid 1000), /airbyte"
        chroot "$rootfs" /bin/sh -eu -c '
            python3 -m venv /usr/local
            /usr/local/bin/python -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"
            ln -snf /usr/share/zoneinfo/Etc/UTC /etc/localtime
            echo Etc/UTC > /etc/timezone
            groupadd --gid 1000 airbyte
            useradd --uid 1000 --gid 1000 --no-create-home --home-dir /airbyte --shell /bin/bash airbyte
            mkdir -p -m 755 /airbyte /airbyte/integration_code
            chown airbyte:airbyte /airbyte
            apt-get clean
            rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/info/*
        '
        say "    podman import ($(du -sh "$rootfs" | cut -f1))"
        tar -C "$rootfs" --numeric-owner -c . | podman import --quiet \
            --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
            --change 'LABEL org.opencontainers.image.description=source-soundlink stand-in for airbyte/python-connector-base (Debian bookworm, Python 3.11)' \
            --change 'CMD ["python3"]' \
            --message "stand-in for airbyte/python-connector-base, built by scripts/build_image.sh from $mirror" \
            - "$STANDIN" >/dev/null
        rm -rf "$workdir"
        trap - EXIT
        podman run --rm "$STANDIN" sh -c 'python --version && pip --version && id airbyte' \
            | sed 's/^/[build_image]     /'
    fi
    done_step
fi

# ---------------------------------------------------------------- 4. connector image
step "4/4 podman build -t $IMAGE --build-arg BASE_IMAGE=$BASE"
for f in Dockerfile pyproject.toml poetry.lock scripts/lock_requirements.py README.md source_soundlink; do
    [ -e "$ROOT/$f" ] || die "$ROOT/$f is missing: the image needs it"
done
secret_args=()
if [ -s "$CA_BUNDLE" ]; then
    secret_args=(--secret "id=ca_bundle,src=$CA_BUNDLE")
else
    say "    no CA bundle at $CA_BUNDLE: pip uses the base image's CAs"
fi
previous_id="$(podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
build_log="$(mktemp /var/tmp/soundlink-build.XXXXXX.log)"
if ! podman build --network host --layers "${secret_args[@]}" \
        --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" > "$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    die "podman build failed (full log: $build_log)"
fi
grep -E '^(\[[0-9]+/[0-9]+] )?(STEP|--> Using cache|COMMIT)' "$build_log" | sed 's/^/[build_image]     /' || true
rm -f "$build_log"
# The tag's previous build is left untagged: drop that one image (not every dangling image of the
# machine's store, which other projects share); it stays if a container or another tag still uses it.
current_id="$(podman image inspect "$IMAGE" --format '{{.Id}}')"
if [ -n "$previous_id" ] && [ "$previous_id" != "$current_id" ]; then
    podman rmi "$previous_id" >/dev/null 2>&1 || true
fi
spec_out="$(podman run --rm "$IMAGE" spec)" || die "'podman run --rm $IMAGE spec' failed"
grep -q '"type": *"SPEC"' <<<"$spec_out" || die "'podman run --rm $IMAGE spec' printed no SPEC message"
say "    $IMAGE: $(podman image inspect "$IMAGE" --format '{{.Id}}' | cut -c1-12), $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'), 'spec' OK"
done_step

say "image $IMAGE ready in $((SECONDS - START))s; run it like docker, with this checkout's podman settings:"
say "    scripts/image/docker run --rm $IMAGE spec"
say "    scripts/image/docker run --rm -v \$PWD/secrets:/secrets $IMAGE check --config /secrets/config.json"
