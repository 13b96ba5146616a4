#!/usr/bin/env bash
# Make the local base image when it is missing: Debian bookworm (minbase) from the Debian
# mirror this machine's apt sources name, imported into podman. For machines without a
# registry; with one, build on python:3.11-slim instead (make image BASE=python:3.11-slim).
#   containers/base-image.sh localhost/imgrec-base:bookworm
set -euo pipefail
image="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
podman="$here/podman"
"$podman" image exists "$image" && exit 0
mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
  | grep -v '^[[:space:]]*#' | grep -E -o 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /var/tmp/imgrec-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "making base image $image: debootstrap --variant=minbase bookworm from $mirror" >&2
start=$(date +%s)
debootstrap --variant=minbase bookworm "$root/rootfs" "$mirror" >"$root/debootstrap.log" 2>&1 \
  || { tail -n 20 "$root/debootstrap.log" >&2; exit 1; }
tar -C "$root/rootfs" -c . | "$podman" import --message "debootstrap minbase bookworm ($mirror)" - "$image" >/dev/null
echo "base image $image made in $(( $(date +%s) - start )) s" >&2
