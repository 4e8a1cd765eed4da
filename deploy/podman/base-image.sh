#!/bin/sh
# Builds a local stand-in for python:3.11-slim, for hosts that reach no container registry:
# a Debian bookworm minbase root file system with Debian's Python 3.11 (python3, venv, pip's
# wheel for ensurepip), made by debootstrap and imported into podman. Then
#   podman build --pull=never --build-arg BASE=localhost/botwire-python:3.11-bookworm ...
# builds deploy/Dockerfile from it. Does nothing when podman already holds the image (delete
# it with `podman rmi` to rebuild). Needs root (debootstrap), debootstrap and podman.
#
#   deploy/podman/base-image.sh [IMAGE]        (DEBIAN_MIRROR overrides the mirror)
set -eu

image=${1:-localhost/botwire-python:3.11-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$image"; then
    echo "base image $image: already built" >&2
    exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM
# python-is-python3 gives `python`, as the official image has; ca-certificates as it has too.
debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror" >&2
# What a slim image leaves out: package caches and lists, documentation, manual pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log
tar --numeric-owner -C "$root" -c . | podman import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$image" >&2
echo "base image $image: built" >&2
