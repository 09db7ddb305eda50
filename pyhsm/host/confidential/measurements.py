"""The PCR values a good boot of a confidential VM produces: the policy the owner registers.

Under Debian's OVMF with direct kernel boot (QEMU fw_cfg), measured as found with ``tpm2_eventlog``
in the guest (docs/confidential.md, "Measurements"):

* PCR 4 gets the kernel as an EFI application (EV_EFI_BOOT_SERVICES_APPLICATION, the Authenticode
  SHA-256 of the image OVMF loads: the file with the setup header QEMU patched, ``fw_cfg_kernel``),
  then at ReadyToBoot the EV_EFI_ACTION "Calling EFI Application from Boot Option" and the
  EV_SEPARATOR. ``pcr4`` computes it from the kernel file, the initrd's size and the VM's memory.
* PCR 9 gets two events from the kernel's EFI stub: the load options, SHA-256 of the UTF-16LE
  string ``<cmdline> initrd=initrd`` with its NUL (OVMF appends ``initrd=initrd`` when QEMU has an
  initrd), then the initrd's bytes. ``pcr9`` computes it from the files; the command line carries
  the verified root's hash (``pyhsm.verity=``), so PCR 9 covers the root filesystem too.
* PCRs 0 (firmware, platform data) and 7 (secure-boot state) come from a reference boot of the same
  firmware, kernel and QEMU (``reference``), cached by the hash of those files and the VM's shape
  (vCPUs, memory, accelerator), with the boot's inputs recorded next to them. The reference boot's own
  PCRs 4 and 9 must equal ``pcr4`` and ``pcr9`` of its kernel, command line and initrd: a check of
  the model above on every reference boot.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyhsm import paths
from pyhsm.client.attestation import POLICY_PCRS, SEPARATOR_DIGEST

CACHE_FORMAT = "pcrs 0,7 + inputs"    # part of the cache key: older entries are not read
OVMF_INITRD_OPTION = " initrd=initrd"
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1
QEMU_REAL_ADDR, QEMU_CMDLINE_ADDR = 0x10000, 0x20000   # x86_load_linux, "high and recent kernel"
PC_FW_DATA = 0x20000 + 0x8000        # what QEMU keeps free below the top of low memory
Q35_LOWMEM = 0xB0000000              # q35 puts RAM above this (2.75 GiB) over 4 GiB
REFERENCE_PCRS = (0, 7)               # from a reference boot; the others from the build


def extend(pcr: bytes, digest: bytes) -> bytes:
    """TPM2_PCR_Extend in the SHA-256 bank."""
    return hashlib.sha256(pcr + digest).digest()


def authenticode_sha256(image: bytes) -> bytes:
    """The PE/COFF Authenticode SHA-256 of ``image``, as UEFI measures an EFI application: the
    headers without the checksum and the certificate-table entry, the sections in file order, then
    what follows them except the certificate table. Raises ``ValueError`` if ``image`` is not PE."""
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    if image[pe:pe + 4] != b"PE\0\0":
        raise ValueError("not a PE/COFF image")
    sections, optional_size = struct.unpack_from("<H12xH", image, pe + 6)
    optional = pe + 24
    pe32_plus = struct.unpack_from("<H", image, optional)[0] == 0x20B
    checksum = optional + 64
    directories = optional + (112 if pe32_plus else 96)
    certificates = directories + 8 * 4            # IMAGE_DIRECTORY_ENTRY_SECURITY
    header_size = struct.unpack_from("<I", image, optional + 60)[0]
    cert_size = struct.unpack_from("<I", image, certificates + 4)[0]
    digest = hashlib.sha256(image[:checksum])
    digest.update(image[checksum + 4:certificates])
    digest.update(image[certificates + 8:header_size])
    table = optional + optional_size               # section headers: SizeOfRawData at +16, then
    ranges = sorted((offset, size) for size, offset in   # PointerToRawData
                    (struct.unpack_from("<II", image, table + 40 * i + 16) for i in range(sections))
                    if size)
    hashed = header_size
    for offset, size in ranges:
        digest.update(image[offset:offset + size])
        hashed += size
    if len(image) > hashed + cert_size:
        digest.update(image[hashed:len(image) - cert_size])
    return digest.digest()


def load_options_digest(cmdline: str) -> bytes:
    return hashlib.sha256((cmdline + OVMF_INITRD_OPTION + "\0").encode("utf-16-le")).digest()


def fw_cfg_kernel(image: bytes, cmdline: str, initrd_size: int, memory_mb: int) -> bytes:
    """The kernel as OVMF reads it from QEMU's fw_cfg on q35 (QEMU's ``x86_load_linux``): the file
    with its boot-protocol setup header patched (command-line pointer, loader type, heap end, the
    initrd's address and size). Debian 12's OVMF measures these bytes, not the file's. Covers what
    the confidential VM uses: a boot protocol >= 2.12 kernel that may load its initrd above 4 GiB,
    no ``vga=``, memory below q35's 2.75 GiB split. Raises ``ValueError`` outside that."""
    protocol = struct.unpack_from("<H", image, 0x206)[0]
    xloadflags = struct.unpack_from("<H", image, 0x236)[0]
    if (image[0x202:0x206] != b"HdrS" or protocol < 0x20C
            or not xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G):
        raise ValueError(f"kernel boot protocol {protocol:#x}/{xloadflags:#x} is not modelled")
    if "vga=" in cmdline or memory_mb << 20 >= Q35_LOWMEM:
        raise ValueError("vga= and memory above q35's low-memory split are not modelled")
    initrd_max = (memory_mb << 20) - PC_FW_DATA - 1
    patched = bytearray(image)
    struct.pack_into("<I", patched, 0x228, QEMU_CMDLINE_ADDR)
    patched[0x210] = 0xB0                                      # type_of_loader: QEMU
    patched[0x211] |= 0x80                                     # loadflags: CAN_USE_HEAP
    struct.pack_into("<H", patched, 0x224, QEMU_CMDLINE_ADDR - QEMU_REAL_ADDR - 0x200)
    struct.pack_into("<II", patched, 0x218, (initrd_max - initrd_size) & ~4095, initrd_size)
    return bytes(patched)


@dataclass(frozen=True)
class BootInputs:
    """What a direct kernel boot under OVMF measures into PCRs 4 and 9."""
    kernel: Path
    cmdline: str
    initramfs: Path
    memory_mb: int


def pcr4(boot: BootInputs) -> bytes:
    """PCR 4 after OVMF loaded the kernel from fw_cfg and signalled ReadyToBoot."""
    image = fw_cfg_kernel(boot.kernel.read_bytes(), boot.cmdline, boot.initramfs.stat().st_size,
                          boot.memory_mb)
    pcr = extend(bytes(32), authenticode_sha256(image))
    pcr = extend(pcr, hashlib.sha256(CALLING_EFI_APPLICATION).digest())
    return extend(pcr, SEPARATOR_DIGEST)


def pcr9(cmdline: str, initramfs: Path) -> bytes:
    """PCR 9 after the EFI stub measured the load options and the initrd."""
    initrd = hashlib.sha256(initramfs.read_bytes()).digest()
    return extend(extend(bytes(32), load_options_digest(cmdline)), initrd)


def built_pcrs(boot: BootInputs) -> dict[int, bytes]:
    """The policy PCRs computed from the build: 4 (kernel, as loaded) and 9 (command line and
    initrd)."""
    return {4: pcr4(boot), 9: pcr9(boot.cmdline, boot.initramfs)}


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_key(kernel: Path, qemu: Path, shape: str) -> str:
    """The cache key of the reference PCRs: the firmware, kernel and QEMU files (QEMU generates the
    platform data OVMF measures) and the VM's shape (a VM with another vCPU count measured
    differently in a real boot)."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{shape}".encode())
    for path in (paths.OVMF_CODE, paths.OVMF_VARS, kernel, qemu):
        digest.update(bytes.fromhex(_sha256_file(path)))
    return digest.hexdigest()[:32]


def reference(kernel: Path, qemu: Path, shape: str,
              boot: Callable[[], tuple[BootInputs, dict[int, bytes]]]) -> dict[int, bytes]:
    """PCRs 0 and 7 for ``kernel`` under OVMF and ``qemu``: from the cache, or from ``boot()`` (a
    reference boot returning its inputs and the PCR values it read), checked and cached with its
    inputs. Raises ``RuntimeError`` if the boot's PCR 4 or 9 differs from ``built_pcrs`` of its
    inputs."""
    cached = paths.build() / "confidential" / "reference" / f"{reference_key(kernel, qemu, shape)}.json"
    if cached.exists():
        return {int(k): bytes.fromhex(v) for k, v in json.loads(cached.read_text())["pcrs"].items()}
    inputs, values = boot()
    for index, want in built_pcrs(inputs).items():
        if values.get(index) != want:
            raise RuntimeError(f"the reference boot's PCR {index} {values.get(index, b'').hex()} "
                               f"is not the computed {want.hex()}: the measurement model in "
                               "pyhsm/host/confidential/measurements.py no longer matches OVMF or QEMU")
    record = {"pcrs": {str(i): values[i].hex() for i in REFERENCE_PCRS},
              "inputs": {"ovmf_code": [str(paths.OVMF_CODE), _sha256_file(paths.OVMF_CODE)],
                         "ovmf_vars": [str(paths.OVMF_VARS), _sha256_file(paths.OVMF_VARS)],
                         "qemu": [str(qemu), _sha256_file(qemu)],
                         "kernel_sha256": _sha256_file(inputs.kernel), "shape": shape,
                         "cmdline": inputs.cmdline,
                         "initrd_sha256": _sha256_file(inputs.initramfs)},
              "pcrs_4_9_equal_to_the_build": {str(i): values[i].hex() for i in (4, 9)}}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(record, indent=1))
    return {i: values[i] for i in REFERENCE_PCRS}


def policy_values(reference_pcrs: dict[int, bytes], boot: BootInputs) -> bytes:
    """The expected values of ``POLICY_PCRS``, ascending, concatenated (SetPolicy's pcr_values):
    PCRs 0 and 7 from ``reference_pcrs``, 4 and 9 computed from the build."""
    values = {**reference_pcrs, **built_pcrs(boot)}
    return b"".join(values[i] for i in POLICY_PCRS)


def pcr_mask(pcrs: tuple[int, ...] = POLICY_PCRS) -> int:
    return sum(1 << i for i in pcrs)
