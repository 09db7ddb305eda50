"""The PCR values a good boot of a confidential VM produces: the policy the owner registers.

Under Debian's OVMF with direct kernel boot (QEMU fw_cfg), measured as found empirically with
``tpm2_eventlog`` in the guest (docs/confidential.md):

* PCR 9 gets two events from the kernel's EFI stub: the load options, SHA-256 of the UTF-16LE
  string ``<cmdline> initrd=initrd`` with its NUL (OVMF appends ``initrd=initrd`` when QEMU has an
  initrd), then the initrd's bytes. ``pcr9`` computes it from the files, exactly.
* PCRs 0 (firmware), 4 (the kernel image as an EFI application) and 7 (secure-boot state) do not
  depend on the command line or initrd; they come from a reference boot of the same firmware and
  kernel (``reference``), cached by the hash of those files and the VM's shape (vCPUs, memory,
  accelerator). The reference boot also reports its
  PCR 9, which must equal ``pcr9`` of its own command line: a check of the arithmetic above.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from pyhsm.launcher import paths
from pyhsm.launcher.workloads.attestation import POLICY_PCRS

CACHE = paths.BUILD / "confidential" / "reference"
OVMF_INITRD_OPTION = " initrd=initrd"


def extend(pcr: bytes, digest: bytes) -> bytes:
    """TPM2_PCR_Extend in the SHA-256 bank."""
    return hashlib.sha256(pcr + digest).digest()


def load_options_digest(cmdline: str) -> bytes:
    return hashlib.sha256((cmdline + OVMF_INITRD_OPTION + "\0").encode("utf-16-le")).digest()


def pcr9(cmdline: str, initramfs: Path) -> bytes:
    """PCR 9 after the EFI stub measured the load options and the initrd."""
    initrd = hashlib.sha256(initramfs.read_bytes()).digest()
    return extend(extend(bytes(32), load_options_digest(cmdline)), initrd)


def reference_key(kernel: Path, shape: str) -> str:
    """The cache key of the firmware- and kernel-dependent PCRs: the firmware and kernel files and
    the VM's shape (a VM with another vCPU count measured differently in a real boot)."""
    digest = hashlib.sha256(shape.encode())
    for path in (paths.OVMF_CODE, paths.OVMF_VARS, kernel):
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def reference(kernel: Path, shape: str,
              boot: Callable[[], tuple[str, Path, dict[int, bytes]]]) -> dict[int, bytes]:
    """PCRs 0, 4 and 7 for ``kernel`` under OVMF: from the cache, or from ``boot()`` (a reference
    boot returning its command line, its initramfs and the PCR values it read), checked and cached.
    Raises ``RuntimeError`` if the reference boot's PCR 9 contradicts ``pcr9``."""
    cached = CACHE / f"{reference_key(kernel, shape)}.json"
    if cached.exists():
        return {int(k): bytes.fromhex(v) for k, v in json.loads(cached.read_text()).items()}
    cmdline, initramfs, values = boot()
    if values.get(9) != pcr9(cmdline, initramfs):
        raise RuntimeError(f"the reference boot's PCR 9 {values.get(9, b'').hex()} is not the "
                           f"computed {pcr9(cmdline, initramfs).hex()}: the measurement model in "
                           "pyhsm/launcher/measurements.py no longer matches OVMF or the kernel")
    fixed = {i: values[i] for i in POLICY_PCRS if i != 9}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({str(k): v.hex() for k, v in sorted(fixed.items())}, indent=1))
    return fixed


def policy_values(reference_pcrs: dict[int, bytes], cmdline: str, initramfs: Path) -> bytes:
    """The expected values of ``POLICY_PCRS``, ascending, concatenated (SetPolicy's pcr_values)."""
    values = {**reference_pcrs, 9: pcr9(cmdline, initramfs)}
    return b"".join(values[i] for i in POLICY_PCRS)


def pcr_mask(pcrs: tuple[int, ...] = POLICY_PCRS) -> int:
    return sum(1 << i for i in pcrs)
