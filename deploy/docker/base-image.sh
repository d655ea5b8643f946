#!/usr/bin/env bash
# base-image.sh IMAGE: an equivalent of the official python:3.11-slim-bookworm, built from Debian's own
# packages (debootstrap, then `docker import`), for machines that reach Debian's mirror but no container
# registry. Debian bookworm's python3 is 3.11. Does nothing when IMAGE exists already.
set -euo pipefail
image=${1:?usage: $0 IMAGE}

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    [[ $(id -u) == 0 ]] || { echo "base image: debootstrap is missing (apt-get install debootstrap, as root)" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "base image $image: debootstrap bookworm (minbase + python3)..."
started=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# apt in later builds (the Kafka image's Java): debootstrap's mirror, plus its updates suite
mirror=$(awk '$1 == "deb" {print $2; exit}' "$rootfs/etc/apt/sources.list")
echo "deb $mirror bookworm-updates main" >>"$rootfs/etc/apt/sources.list"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* "$rootfs"/tmp/*

tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change 'LABEL org.opencontainers.image.title="cancelguard base: Debian bookworm + python3"' \
    --change 'LABEL org.opencontainers.image.base.name="debian:bookworm (debootstrap --variant=minbase)"' \
    - "$image" >/dev/null
echo "base image $image: built in $((SECONDS - started)) s"
