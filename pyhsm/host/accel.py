"""Choose the accelerator: KVM only when a short probe boot proves it works, TCG otherwise."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 15.0   # a working KVM finishes in ~2 s; this machine's TCG takes ~12 s


@dataclass(frozen=True)
class Choice:
    accel: str      # "kvm" or "tcg"
    reason: str     # why, for the summary


def probe_kvm(qemu: Path, kernel: Path, firmware: Path) -> str | None:
    """Boot ``kernel`` under KVM with no root disk (it panics and, with panic=-1 and -no-reboot,
    QEMU exits). Returns None if that round trip completed, else what went wrong."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not accessible"
    argv = [str(qemu), "-nodefaults", "-no-user-config", "-display", "none", "-L", str(firmware),
            "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256M", "-no-reboot",
            "-kernel", str(kernel), "-append", "panic=-1 quiet console=ttyS0", "-serial", "none"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"the KVM probe boot did not finish within {PROBE_TIMEOUT_S:.0f} s"
    if proc.returncode != 0:
        return f"QEMU -accel kvm failed: {proc.stderr.strip() or f'exit {proc.returncode}'}"
    return None


def choose(requested: str, qemu: Path, kernel: Path, firmware: Path) -> Choice:
    """``requested`` is auto, tcg or kvm; kvm that fails its probe raises ``RuntimeError``."""
    if requested == "tcg":
        return Choice("tcg", "requested")
    problem = probe_kvm(qemu, kernel, firmware)
    if problem is None:
        return Choice("kvm", "probe boot under KVM completed")
    if requested == "kvm":
        raise RuntimeError(f"--accel kvm: {problem}")
    return Choice("tcg", f"KVM unusable: {problem}")
