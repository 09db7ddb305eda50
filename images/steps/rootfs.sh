#!/usr/bin/env bash
# The guest root filesystem image: the cached base plus the guest kernel modules
# (rootfs-modules.txt, azihsm.ko when built), the pyhsm package and /sbin/pyhsm-init, packed with
# mke2fs -d (no loop mount) with fixed UUID, hash seed and timestamps, followed on the same image by
# its dm-verity hash tree (veritysetup format, no superblock, SHA-256, 4 KiB blocks; the confidential
# guest opens the root through it, a writable VM ignores it). Out: $OUT/rootfs.ext4 and
# $OUT/rootfs.verity (the value of the kernel parameter pyhsm.verity=: root hash, salt, data blocks)
set -euo pipefail
stage="$OUT/rootfs.tmp"; rm -rf "$stage"
cp -a "$OUT/cache/base-rootfs" "$stage"
moddir="$stage/lib/modules/$KERNEL_ABI"
python3 "$IMAGES/modules.py" "$OUT/kernel" "$moddir" "$IMAGES/rootfs-modules.txt"
# without its debug sections (2.2 MiB -> a tenth): modprobe reads and parses less under TCG
if [ -f "$OUT/azihsm.ko" ]; then
  install -D -m 0644 "$OUT/azihsm.ko" "$moddir/extra/azihsm.ko"
  strip --strip-debug "$moddir/extra/azihsm.ko"
fi
depmod -b "$stage" "$KERNEL_ABI"
site="$stage/usr/local/lib/python3.11/dist-packages"
rm -rf "$site/pyhsm"
(cd "$ROOT" && find pyhsm -name __pycache__ -prune -o -type f -name '*.py' -print \
   | cpio --quiet -pdm "$site")
install -m 0755 "$IMAGES/pyhsm-init" "$stage/sbin/pyhsm-init"
mkdir -p "$stage/var/lib/pyhsm" "$stage/mnt/data"   # mount points: the verified root is read-only
echo pyhsm-guest >"$stage/etc/hostname"
# Debian's standard library ships checked-hash .pyc: every import also reads and hashes the .py
# (through dm-verity on the read-only root). The root cannot change under a running guest, so all of
# its bytecode is unchecked-hash, as pyhsm's own.
chroot "$stage" python3 -m compileall -q -f --invalidation-mode unchecked-hash \
  -x '/(test|tests|idle_test|lib2to3|tkinter|idlelib|turtledemo)/' \
  /usr/lib/python3.11 >/dev/null
chroot "$stage" python3 -m compileall -q --invalidation-mode unchecked-hash \
  /usr/local/lib/python3.11/dist-packages >/dev/null
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
size_mb=$(( $(du -sm "$stage" | cut -f1) * 5 / 4 + 64 ))
uuid=6f1c2b9e-58a4-4c1e-9d3a-0a2c5e7b4d10
rm -f "$OUT/rootfs.ext4.tmp"
# 4 KiB blocks, as dm-verity's (its device has 4 KiB sectors; mke2fs would pick 1 KiB at this size)
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mke2fs -q -F -t ext4 -b 4096 -L pyhsm-root -U "$uuid" \
  -E "hash_seed=$uuid,root_owner=0:0" -m 0 -d "$stage" "$OUT/rootfs.ext4.tmp" "${size_mb}M" >/dev/null
# mke2fs -d copies each file's ctime, which `touch` cannot set: pin it to the same epoch.
(cd "$stage" && printf 'sif / ctime @%s\n' "$SOURCE_DATE_EPOCH" &&
 find . -mindepth 1 -printf "sif \"/%P\" ctime @$SOURCE_DATE_EPOCH\n") >"$OUT/rootfs.ctime"
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" debugfs -w -f "$OUT/rootfs.ctime" "$OUT/rootfs.ext4.tmp" >/dev/null
rm -f "$OUT/rootfs.ctime"
blocks=$(( size_mb * 256 ))
salt=$(printf 'pyhsm-rootfs %s' "$uuid" | sha256sum | cut -d' ' -f1)   # fixed: same tree for same bytes
root_hash=$(veritysetup format --no-superblock --hash=sha256 --data-block-size=4096 \
  --hash-block-size=4096 --data-blocks="$blocks" --hash-offset=$(( blocks * 4096 )) --salt="$salt" \
  "$OUT/rootfs.ext4.tmp" "$OUT/rootfs.ext4.tmp" | awk '/^Root hash:/ {print $3}')
[ "${#root_hash}" -eq 64 ] || { echo "rootfs: veritysetup format gave no root hash" >&2; exit 1; }
echo "$root_hash,$salt,$blocks" >"$OUT/rootfs.verity.tmp"
mv "$OUT/rootfs.ext4.tmp" "$OUT/rootfs.ext4"
mv "$OUT/rootfs.verity.tmp" "$OUT/rootfs.verity"
rm -rf "$stage"
