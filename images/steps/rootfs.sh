#!/usr/bin/env bash
# The guest root filesystem image: the cached base plus the guest kernel modules
# (rootfs-modules.txt, azihsm.ko when built), the pyhsm package and /sbin/pyhsm-init, packed with
# mke2fs -d (no loop mount) with fixed UUID, hash seed and timestamps. Out: $OUT/rootfs.ext4
set -euo pipefail
stage="$OUT/rootfs.tmp"; rm -rf "$stage"
cp -a "$OUT/cache/base-rootfs" "$stage"
moddir="$stage/lib/modules/$KERNEL_ABI"
python3 "$IMAGES/modules.py" "$OUT/kernel" "$moddir" "$IMAGES/rootfs-modules.txt"
if [ -f "$OUT/azihsm.ko" ]; then install -D -m 0644 "$OUT/azihsm.ko" "$moddir/extra/azihsm.ko"; fi
depmod -b "$stage" "$KERNEL_ABI"
site="$stage/usr/local/lib/python3.11/dist-packages"
rm -rf "$site/pyhsm"
(cd "$ROOT" && find pyhsm -name __pycache__ -prune -o -type f -name '*.py' -print \
   | cpio --quiet -pdm "$site")
install -m 0755 "$IMAGES/pyhsm-init" "$stage/sbin/pyhsm-init"
mkdir -p "$stage/var/lib/pyhsm"
echo pyhsm-guest >"$stage/etc/hostname"
chroot "$stage" python3 -m compileall -q --invalidation-mode unchecked-hash \
  /usr/local/lib/python3.11/dist-packages >/dev/null
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
size_mb=$(( $(du -sm "$stage" | cut -f1) * 5 / 4 + 64 ))
uuid=6f1c2b9e-58a4-4c1e-9d3a-0a2c5e7b4d10
rm -f "$OUT/rootfs.ext4.tmp"
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mke2fs -q -F -t ext4 -L pyhsm-root -U "$uuid" \
  -E "hash_seed=$uuid,root_owner=0:0" -m 0 -d "$stage" "$OUT/rootfs.ext4.tmp" "${size_mb}M" >/dev/null
# mke2fs -d copies each file's ctime, which `touch` cannot set: pin it to the same epoch.
(cd "$stage" && printf 'sif / ctime @%s\n' "$SOURCE_DATE_EPOCH" &&
 find . -mindepth 1 -printf "sif \"/%P\" ctime @$SOURCE_DATE_EPOCH\n") >"$OUT/rootfs.ctime"
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" debugfs -w -f "$OUT/rootfs.ctime" "$OUT/rootfs.ext4.tmp" >/dev/null
rm -f "$OUT/rootfs.ctime"
mv "$OUT/rootfs.ext4.tmp" "$OUT/rootfs.ext4"
rm -rf "$stage"
