#!/usr/bin/env bash
# Prepare a Docker-less Linux machine (as root) to build and run the Bento's image:
# buildah + podman + runc, and the base image the generated Dockerfile starts FROM,
# made locally with debootstrap when no registry can be reached.
#
#   source scripts/container-tools.sh    # exports CONTAINERS_CONF, BUILDAH_ISOLATION
#
# Idempotent: tools, rootfs and image are made once and reused.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-docker.io/library/python:3.11-slim}"
WORK="${CONTAINER_WORK:-/var/tmp/face-emotion-container}"
mkdir -p "$WORK"

if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null \
   || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "container-tools: need root and apt-get to install buildah, podman, runc and debootstrap" >&2
    return 3 2>/dev/null || exit 3
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc debootstrap >/dev/null
fi

# podman: runc as the runtime, ulimits no higher than this host allows.
cat > "$WORK/containers.conf" <<CONF
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
export BUILDAH_ISOLATION=chroot

# A stand-in made by an older version of this script (it kept apt's cache and lists; its
# environment names UV_NATIVE_TLS) is made again.
STAND_IN=2
if podman image exists "$BASE_IMAGE" \
   && podman image inspect --format '{{.Config.Env}}' "$BASE_IMAGE" | grep -q UV_NATIVE_TLS \
   && [ "$(podman image inspect --format '{{index .Labels "face-emotion.stand-in"}}' "$BASE_IMAGE")" != "$STAND_IN" ]; then
  podman rmi -f "$BASE_IMAGE" >/dev/null
fi
if ! podman image exists "$BASE_IMAGE"; then
  if ! podman pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "container-tools: no registry; making $BASE_IMAGE from Debian bookworm with debootstrap" >&2
    ROOTFS="$WORK/rootfs"
    if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
      rm -rf "$ROOTFS"
      debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
        bookworm "$ROOTFS" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    fi
    # pip inside the image may install system-wide, like the official python image.
    rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
    # Like the official slim images: no package cache or lists, no documentation or locales.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
      "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
    find "$ROOTFS"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
    # Trust the same local CAs as this machine (TLS may be intercepted by one).
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
      chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 || true
    fi
    tar -C "$ROOTFS" -cf - . | podman import \
      --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
      --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
      --change "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" \
      --change "ENV UV_NATIVE_TLS=1" \
      --change "LABEL face-emotion.stand-in=$STAND_IN" \
      --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  fi
fi
echo "container-tools: ready (base image $BASE_IMAGE)" >&2
