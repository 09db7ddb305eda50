#!/usr/bin/env bash
# The initramfs: busybox-static (from the base root filesystem), the modules that mount the root filesystem (initramfs-modules.txt
# and their dependencies) and initramfs-init as /init, packed as a reproducible gzip'd newc cpio.
# Out: $OUT/initramfs.cpio.gz
set -euo pipefail
tree="$OUT/initramfs.tmp"; rm -rf "$tree"
mkdir -p "$tree"/{bin,dev,proc,sys,etc,lib/modules,newroot}
cp "$OUT/cache/base-rootfs/bin/busybox" "$tree/bin/busybox"   # busybox-static, from the base
python3 "$IMAGES/modules.py" "$OUT/kernel" "$tree/lib/modules" "$IMAGES/initramfs-modules.txt" \
  --load-order "$tree/etc/modules.load"
rm -f "$tree"/lib/modules/modules.*
install -m 0755 "$IMAGES/initramfs-init" "$tree/init"
find "$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
  | gzip -n -9 >"$OUT/initramfs.cpio.gz"
rm -rf "$tree"
