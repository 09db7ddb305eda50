#!/usr/bin/env bash
# Fetch the pinned Debian kernel package and extract the kernel and its module tree.
# Out: $OUT/vmlinuz, $OUT/kernel/ (the package's lib/modules/$KERNEL_ABI, with modules.dep).
set -euo pipefail
cache="$OUT/cache"; mkdir -p "$cache"
deb="$cache/linux-image-${KERNEL_ABI}_${KERNEL_DEB_VERSION}_amd64.deb"
if [ ! -s "$deb" ]; then
  (cd "$cache" && apt-get download -q "linux-image-${KERNEL_ABI}=${KERNEL_DEB_VERSION}") || {
    echo "kernel: cannot download linux-image-${KERNEL_ABI}=${KERNEL_DEB_VERSION}" \
         "(run apt-get update; is the pin in images/pins.env still in the archive?)" >&2; exit 1; }
fi
tmp="$OUT/kernel.tmp"; rm -rf "$tmp" "$OUT/kernel"; mkdir -p "$tmp"
dpkg-deb -x "$deb" "$tmp"
cp "$tmp/boot/vmlinuz-$KERNEL_ABI" "$OUT/vmlinuz"
mv "$tmp/lib/modules/$KERNEL_ABI" "$OUT/kernel"
cp "$tmp/boot/config-$KERNEL_ABI" "$OUT/kernel/config"
rm -rf "$tmp"
# modules.dep ships in the package only after postinst's depmod: generate it here.
mkdir -p "$OUT/kernel.root/lib/modules"; ln -sfn "$OUT/kernel" "$OUT/kernel.root/lib/modules/$KERNEL_ABI"
depmod -b "$OUT/kernel.root" "$KERNEL_ABI"
rm -rf "$OUT/kernel.root"
