#!/usr/bin/env bash
# Add the azihsm device to a QEMU 10.0 source tree: hw/azihsm/ holds symlinks to this directory's
# sources (every .c and .h) and build files, and three one-line additions hook it into
# hw/meson.build, hw/Kconfig and the trace-event list.
# Idempotent; safe to run on every build.
set -euo pipefail
SRC=${1:?usage: wire.sh QEMU_SOURCE_TREE}
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$SRC/hw/azihsm"
for path in "$HERE"/*.c "$HERE"/*.h "$HERE"/meson.build "$HERE"/Kconfig "$HERE"/trace-events; do
  ln -sfn "$path" "$SRC/hw/azihsm/$(basename "$path")"
done

add_line() {  # add_line FILE ANCHOR LINE: insert LINE after the first line that is exactly ANCHOR
  local file=$1 anchor=$2 line=$3
  grep -qxF "$line" "$file" && return 0
  grep -qxF "$anchor" "$file" || { echo "wire.sh: line '$anchor' not found in $file" >&2; exit 1; }
  awk -v anchor="$anchor" -v line="$line" \
    '{ print } !done && $0 == anchor { print line; done = 1 }' "$file" >"$file.wire"
  mv "$file.wire" "$file"
}
add_line "$SRC/hw/meson.build" "subdir('misc')" "subdir('azihsm')"
add_line "$SRC/hw/Kconfig" "source misc/Kconfig" "source azihsm/Kconfig"
add_line "$SRC/meson.build" "    'hw/misc'," "    'hw/azihsm',"
