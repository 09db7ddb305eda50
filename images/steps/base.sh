#!/usr/bin/env bash
# The cached base of the guest root filesystem: debootstrap minbase of $SUITE with $GUEST_PACKAGES,
# trimmed of documentation and package caches, plus the pinned Python wheels ($GUEST_WHEELS).
# Out: $OUT/cache/base-rootfs/ (a root-owned directory tree; needs root, as debootstrap does).
set -euo pipefail
dest="$OUT/cache/base-rootfs"; tmp="$dest.tmp"
rm -rf "$tmp"; mkdir -p "$(dirname "$dest")"
MIRROR=${MIRROR:-$("$ROOT/scripts/debian-mirror.sh")}
debootstrap --variant=minbase --include="$GUEST_PACKAGES" "$SUITE" "$tmp" "$MIRROR" >"$OUT/cache/debootstrap.log" 2>&1 || {
  echo "base: debootstrap failed; last lines of $OUT/cache/debootstrap.log:" >&2
  tail -20 "$OUT/cache/debootstrap.log" >&2; exit 1; }
rm -rf "$tmp"/var/cache/apt/* "$tmp"/var/lib/apt/lists/* "$tmp"/usr/share/doc/* \
       "$tmp"/usr/share/man/* "$tmp"/usr/share/locale/* "$tmp"/usr/share/info/*
pip="${PIP:-$ROOT/build/venv/bin/pip}"
# shellcheck disable=SC2086 # GUEST_WHEELS is a space-separated list of requirement pins
"$pip" install -q --disable-pip-version-check --no-compile --only-binary=:all: \
  --implementation cp --python-version 3.11 \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --target "$tmp/usr/local/lib/python3.11/dist-packages" $GUEST_WHEELS
rm -rf "$dest"; mv "$tmp" "$dest"
