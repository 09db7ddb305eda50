"""Guest benchmark: AES-256-GCM / AES-256-XTS throughput through the AES fast path (azihsm.ko's AES
ioctls from guest user space) against the guest's own ``cryptography`` rate as the anchor (the guest
image has no ``openssl``, so ``openssl speed`` is not available there).

One boot (KVM when a probe boot proves it works, else TCG) running the guest workload ``aes``; its
"AES throughput" step measures 60 KiB encryptions for about a second each. Prints a Markdown table.
Exits non-zero if a step failed.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from pyhsm import paths
from pyhsm.host import accel, images
from pyhsm.protocol import console
from pyhsm.host.backend import BackendProcess
from pyhsm.host.vm import Vm, VmConfig

TIMEOUT_S = 900.0
STEP = "AES throughput"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-aes-guest-"))
    built = images.build(lambda line: print(line, flush=True))
    choice = accel.choose("auto", paths.qemu(), built.kernel, paths.qemu_firmware())
    print(f"accelerator: {choice.accel} ({choice.reason}); logs in {workdir}", flush=True)
    backend = BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log")
    steps: dict[str, dict] = {}
    failures: list[str] = []
    with backend:
        config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir / "vm",
                          accel=choice.accel, workload="aes")
        with Vm(config) as vm:
            vm.wait_boot(300)

            def seen(event: dict) -> None:
                if event["event"] == "step":
                    print(f"  {event['result']:<8} {event['name']}", flush=True)
                    steps[event["name"]] = event
                    if event["result"] != console.OK:
                        failures.append(f"{event['name']}: {event['result']} {event.get('error', '')}")
            vm.wait_for("done", TIMEOUT_S, seen)
    d = (steps.get(STEP) or {}).get("detail") or {}
    rows = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} host cores; guest "
            f"Debian 12, QEMU {choice.accel.upper()}; {d.get('bytes_per_op', '?')} bytes per operation.", "",
            "| AES-256 encrypt, guest user space | fast path (ioctl) MB/s | guest cryptography MB/s | ratio |",
            "|---|---|---|---|"]
    for mode in ("gcm", "xts"):
        fast, local = d.get(f"fastpath_{mode}_encrypt_MBps"), d.get(f"guest_cryptography_{mode}_MBps")
        ratio = f"{fast / local:.2f}" if fast and local else "-"
        rows.append(f"| {mode.upper()} | {fast} | {local} | {ratio} |")
    print("\n".join(rows))
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
