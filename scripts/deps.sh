#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks: Debian packages, Debian's trixie source index (for
# QEMU 10.0's source package), and the project's Python virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-build/venv}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m[deps]\033[0m %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

PACKAGES=(
  # QEMU build
  build-essential ninja-build pkg-config dpkg-dev flex bison python3-venv
  libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev zlib1g-dev
  # firmware blobs and the vTPM anchor
  seabios qemu-system-data ovmf swtpm swtpm-tools
  # confidential workload: vTPM provisioning, LUKS2 data disk
  tpm2-tools cryptsetup-bin
  # guest images and the guest driver
  debootstrap e2fsprogs cpio zstd xz-utils kmod linux-headers-6.1.0-56-amd64
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SRC_LIST=/etc/apt/sources.list.d/pyhsm-trixie-src.sources
if ! grep -rqs "trixie" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  # the archive this machine's apt already uses, never a fixed host
  uri=$(scripts/debian-mirror.sh)
  say "adding Debian trixie source index (deb-src only, from the configured archive) for QEMU 10.0"
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" | $SUDO tee "$SRC_LIST" >/dev/null
  need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ -n "${need_update:-}" ]; then
  say "apt-get update"
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating Python virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
say "installing Python packages into $VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/build-requirements.txt -e '.[all,test]'
say "done"
