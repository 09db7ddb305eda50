#!/usr/bin/env bash
# Build build/qemu/qemu-system-x86_64: QEMU 10.0 from Debian's qemu source package (trixie), or from
# the tree named by QEMU_SRC, with the azihsm device from qemu-device/ wired in. Incremental: an
# unchanged tree rebuilds nothing, an edit to the device recompiles one file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build
VENV=${VENV:-$BUILD/venv}
OUT=$BUILD/qemu
say() { printf '\033[1m[qemu]\033[0m %s\n' "$*"; }

if [ -n "${QEMU_SRC:-}" ]; then
  SRC=$(realpath "$QEMU_SRC")
else
  SRC=$BUILD/qemu-src
  if [ ! -f "$SRC/VERSION" ]; then
    say "fetching Debian's qemu source package (trixie)"
    rm -rf "$BUILD/qemu-dl" "$SRC"
    mkdir -p "$BUILD/qemu-dl"
    (cd "$BUILD/qemu-dl" && apt-get source -qq --download-only qemu/trixie >/dev/null)
    say "unpacking and applying Debian's patches"
    dpkg-source -x "$BUILD"/qemu-dl/qemu_*.dsc "$SRC" >/dev/null
    rm -rf "$BUILD/qemu-dl"
  fi
fi
case "$(cat "$SRC/VERSION")" in
  10.0.*) ;;
  *) echo "error: $SRC is QEMU $(cat "$SRC/VERSION"); the azihsm device needs the 10.0 series" >&2; exit 1 ;;
esac

"$ROOT/qemu-device/wire.sh" "$SRC"

CONFIG_ARGS=(
  --python="$VENV/bin/python3" --target-list=x86_64-softmmu --without-default-features
  --enable-tcg --enable-kvm --enable-tpm --enable-slirp --enable-fdt=system
  --disable-docs --disable-werror --disable-user --disable-install-blobs
)
stamp="$SRC|${CONFIG_ARGS[*]}"
if [ ! -f "$OUT/build.ninja" ] || [ "$(cat "$OUT/.configured" 2>/dev/null)" != "$stamp" ]; then
  say "configuring QEMU $(cat "$SRC/VERSION") in $OUT"
  rm -rf "$OUT"; mkdir -p "$OUT"
  (cd "$OUT" && PATH="$VENV/bin:$PATH" "$SRC/configure" "${CONFIG_ARGS[@]}" >configure.log 2>&1) \
    || { tail -30 "$OUT/configure.log"; exit 1; }
  echo "$stamp" >"$OUT/.configured"
fi

say "building (ninja; progress below)"
PATH="$VENV/bin:$PATH" ninja -C "$OUT" qemu-system-x86_64 | \
  awk '/^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 100 == 1) { print "  " $1; fflush() } next } { print; fflush() }'
test "${PIPESTATUS[0]}" -eq 0

# Firmware from Debian packages: SeaBIOS, QEMU's option ROMs, OVMF.
FW=$OUT/firmware
mkdir -p "$FW"
for f in /usr/share/seabios/*.bin /usr/share/qemu/*.bin /usr/share/qemu/*.rom; do
  [ -e "$f" ] && ln -sf "$f" "$FW/$(basename "$f")"
done
say "ready: $OUT/qemu-system-x86_64 (firmware: $FW)"
