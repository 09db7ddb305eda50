"""Guest benchmark: AES-256-GCM / AES-256-XTS throughput through the AES fast path (azihsm.ko's AES
ioctls from guest user space) against the guest's own ``cryptography`` rate as the anchor (the guest
image has no ``openssl``, so ``openssl speed`` is not available there).

One boot (KVM when a probe boot proves it works, else TCG) running the guest workload ``aes``; its
"AES throughput" step measures 4 KiB and 1 MiB (the largest buffer) encryptions, fast path and in-guest
slices alternating, and splits one 4 KiB GCM call's time into the ioctl and the client's Python around
it. Prints Markdown tables, the host load and "met / NOT met" against the goal (the offload at least
1x the in-guest software rate). Exits non-zero if a step failed.

    build/venv/bin/python -m tests.bench.bench_aes_guest [--profile]

``--profile`` also runs QEMU with the device's trace events (doorbell, link frames, MSI-X) written with
timestamps, and splits the 4 KiB GCM commands' time further: the device from the SQ doorbell to the
AES_REQUEST sent (SQE, SGL walk, DMA reads), the link and backend (AES_REQUEST to AES_RESPONSE), the
device from the answer to the interrupt (DMA writes, CQE), and the rest of the ioctl in the guest
(pinning, SGL lists, interrupt, wake-up, unpinning).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from pyhsm import paths
from pyhsm.host import accel, images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.vm import Vm, VmConfig
from pyhsm.protocol import console, link
from tests.bench import device_trace

TIMEOUT_S = 900.0
STEP = "AES throughput"
GOAL = 1.0
AES_REQUEST_FIXED = 68         # AES_REQUEST body bytes before the data


def main() -> int:
    profile = "--profile" in sys.argv[1:]
    workdir = Path(tempfile.mkdtemp(prefix="bench-aes-guest-"))
    trace = workdir / "trace.log"
    built = images.build(lambda line: print(line, flush=True))
    choice = accel.choose("auto", paths.qemu(), built.kernel, paths.qemu_firmware())
    print(f"accelerator: {choice.accel} ({choice.reason}); logs in {workdir}", flush=True)
    backend = BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log")
    steps: dict[str, dict] = {}
    failures: list[str] = []
    with backend:
        config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir / "vm",
                          accel=choice.accel, workload="aes", qemu_extra=device_trace.qemu_args(trace) if profile else ())
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
    load = os.getloadavg()
    rows = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} host cores, load "
            f"{load[0]:.2f} / {load[1]:.2f}; guest Debian 12, QEMU {choice.accel.upper()}; "
            f"{d.get('slices', '?')} alternating slices of {d.get('slice_s', '?')} s, medians.", "",
            "| AES-256 encrypt, guest user space | bytes | fast path (ioctl) MB/s | guest cryptography MB/s "
            f"| ratio (goal >= 1) | fast path, driver poll_us={d.get('poll_us')} MB/s | ratio |",
            "|---|---|---|---|---|---|---|"]
    for size in d.get("sizes", []):
        for mode in ("gcm", "xts"):
            f = d.get(f"{mode}_{size}") or {}
            verdicts = ["-" if r is None else f"{r} ({'met' if r >= GOAL else 'NOT met'})"
                        for r in (f.get("ratio"), f.get("ratio_polled"))]
            rows.append(f"| {mode.upper()} | {size} | {f.get('fastpath_MBps')} | {f.get('guest_MBps')} | "
                        f"{verdicts[0]} | {f.get('fastpath_polled_MBps')} | {verdicts[1]} |")
    hsm = d.get("hsm_get_api_rev") or {}
    rows.append("")
    polled = d.get("gcm_4096_polled_breakdown") or {}
    for size in d.get("sizes", []):
        split = d.get(f"gcm_{size}_breakdown") or {}
        rows.append(f"One {size}-byte GCM call: {split.get('call_us')} us = ioctl {split.get('ioctl_us')} us + "
                    f"client Python {split.get('client_python_us')} us.")
        if size == 4096:
            rows.append(f"  with the driver's poll_us={d.get('poll_us')}: {polled.get('call_us')} us = ioctl "
                        f"{polled.get('ioctl_us')} us + client Python {polled.get('client_python_us')} us.")
        if profile:
            t = device_trace.split(trace, link.AesRequest.TYPE, True, AES_REQUEST_FIXED + size)
            parts = sum(t.get(k, 0) for k in device_trace.PARTS)
            rows.append(f"  inside the ioctl (QEMU trace, median of {t.get('commands')} commands): device from "
                        f"doorbell to AES_REQUEST {t.get('device_in_us')} us, link and backend "
                        f"{t.get('link_backend_us')} us, device from AES_RESPONSE to MSI-X {t.get('device_out_us')} "
                        f"us, the rest in the guest kernel (pin, SGL, interrupt, wake-up, unpin) "
                        f"{(split.get('ioctl_us') or 0) - parts:.1f} us.")
    rows.append(f"GetApiRev through the HSM ioctl: {hsm.get('call_us')} us = ioctl {hsm.get('ioctl_us')} us + "
                f"client Python (MBOR) {hsm.get('client_python_us')} us.")
    print("\n".join(rows))
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
