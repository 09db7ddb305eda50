#!/usr/bin/env bash
# Build the guest driver (guest/driver/, azihsm.ko) against the pinned kernel's headers, in a copy of
# its source so the source tree stays clean. Out: $OUT/driver.status ("built" or "absent: why") and,
# when built, $OUT/azihsm.ko. A driver whose build fails fails this step.
set -euo pipefail
rm -f "$OUT/azihsm.ko"
if [ ! -f "$ROOT/guest/driver/Makefile" ]; then
  echo "driver: guest/driver/Makefile not present yet; the images carry no azihsm.ko" >&2
  echo "absent: guest/driver/Makefile not present" >"$OUT/driver.status"; exit 0
fi
if [ ! -d "/lib/modules/$KERNEL_ABI/build" ] && [ ! -d "/usr/src/linux-headers-$KERNEL_ABI" ]; then
  echo "driver: linux-headers-$KERNEL_ABI is not installed (apt-get install linux-headers-$KERNEL_ABI)" >&2
  exit 1
fi
src="$OUT/driver-src"; rm -rf "$src"; cp -a "$ROOT/guest/driver" "$src"
make -s -C "$src" KVER="$KERNEL_ABI" >"$OUT/driver-build.log" 2>&1 || {
  echo "driver: build failed; $OUT/driver-build.log:" >&2; tail -30 "$OUT/driver-build.log" >&2; exit 1; }
ko=$(find "$src" -name azihsm.ko | head -1)
[ -n "$ko" ] || { echo "driver: make succeeded but produced no azihsm.ko" >&2; exit 1; }
cp "$ko" "$OUT/azihsm.ko"
echo "built" >"$OUT/driver.status"
