#!/usr/bin/env bash
# Build the Dockerfile's base image from Debian's packages, for machines that reach
# Debian's mirror but no container registry:
#   container/base-image.sh [TAG]     (default: the Dockerfile's BASE_IMAGE)
# mmdebstrap makes a minimal bookworm with Python 3.11 and venv, imported under TAG, so
# `podman build --pull=never` finds it. Does nothing when TAG already exists.
set -euo pipefail
TAG="${1:-docker.io/library/python:3.11-slim-bookworm}"
ENGINE="${ENGINE:-podman}"
if "$ENGINE" image exists "$TAG" 2>/dev/null; then
  echo "base image $TAG: present"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mmdebstrap --variant=minbase --include=python3,python3-venv \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$work/base.tar" http://deb.debian.org/debian
"$ENGINE" import --change 'CMD ["python3"]' "$work/base.tar" "$TAG"
echo "base image $TAG: built from Debian bookworm"
