"""Guest benchmark: HSM ioctl round trip vs TPM2_GetRandom via tpm-crb/swtpm, P-384 signing throughput.

One boot of the emulated server (KVM when a probe boot proves it works, else TCG) with a swtpm TPM
next to the HSM; the guest workload ``bench`` measures from userspace. Prints a Markdown table with
the machine it ran on (paste into docs/benchmarks.md). Exits non-zero if a measurement failed.

    build/venv/bin/python -m tests.bench.bench_guest [--profile]

``--profile`` also runs QEMU with the device's trace events written with timestamps and splits the
GetApiRev commands' time inside QEMU: the device from the SQ doorbell to the REQUEST frame sent, the
link and backend, and the device from the RESPONSE to the MSI-X (``tests/bench/device_trace.py``).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from pyhsm import paths
from pyhsm.guest.workloads.bench import LATENCY_STEP, api_rev_request
from pyhsm.host import accel, images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.swtpm import Swtpm
from pyhsm.host.vm import Vm, VmConfig
from pyhsm.protocol import console, link
from tests.bench import device_trace

TIMEOUT_S = 1800.0
GOAL = 0.25          # HSM / TPM round trip (per-command issue)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    profile = "--profile" in sys.argv[1:]
    workdir = Path(tempfile.mkdtemp(prefix="bench-guest-"))
    trace = workdir / "trace.log"
    built = images.build(lambda line: print(line, flush=True))
    choice = accel.choose("auto", paths.qemu(), built.kernel, paths.qemu_firmware())
    print(f"accelerator: {choice.accel} ({choice.reason}); logs in {workdir}", flush=True)
    backend = BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log")
    tpm = Swtpm(workdir / "tpm", ctrl_socket=workdir / "swtpm.sock", log=workdir / "swtpm.log")
    steps: dict[str, dict] = {}
    failures: list[str] = []
    with backend:
        tpm.start()
        try:
            config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir / "vm",
                              accel=choice.accel, cpus=min(os.cpu_count() or 2, 8),
                              workload="bench", tpm_socket=tpm.socket,
                              qemu_extra=device_trace.qemu_args(trace) if profile else ())
            with Vm(config) as vm:
                vm.wait_boot(300)

                def seen(event: dict) -> None:
                    if event["event"] == "step":
                        print(f"  {event['result']:<8} {event['name']}: {event.get('detail') or event.get('error')}",
                              flush=True)
                        steps[event["name"]] = event
                        if event["result"] != console.OK:
                            failures.append(f"{event['name']}: {event['result']} {event.get('error', '')}")
                vm.wait_for("done", TIMEOUT_S, seen)
        finally:
            tpm.stop()
    print(_table(steps, choice.accel))
    if profile:
        body = link.Request.LAYOUT.size + len(api_rev_request())
        t = device_trace.split(trace, link.Request.TYPE, False, body)
        print(f"Inside QEMU, GetApiRev (trace, median of {t.get('commands')}): device from doorbell to "
              f"REQUEST {t.get('device_in_us')} µs, link and backend {t.get('link_backend_us')} µs, device "
              f"from RESPONSE to MSI-X {t.get('device_out_us')} µs.")
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


def _table(steps: dict[str, dict], accelerator: str) -> str:
    rows = [f"Machine: {_cpu_model()}, {os.cpu_count()} host cores, {platform.release()}, load "
            f"{os.getloadavg()[0]:.2f}; guest Debian 12 (kernel in images/pins.env), QEMU "
            f"{accelerator.upper()}, {min(os.cpu_count() or 2, 8)} vCPUs.", "",
            "| measurement | result |", "|---|---|"]
    for name, event in steps.items():
        d = event.get("detail") or {}
        if event["result"] != console.OK:
            rows.append(f"| {name} | {event['result']} |")
        elif name == LATENCY_STEP:
            for label, side in (("GetApiRev latency (ioctl)", d["hsm"]),
                                (f"GetApiRev latency (ioctl, driver poll_us={d['poll_us']})", d["hsm_polled"]),
                                ("TPM2_GetRandom(8) latency (tpm-crb, swtpm)", d["tpm"])):
                rows.append(f"| {label} | median {side['median_us']} µs, p99 {side['p99_us']} µs "
                            f"({side['calls']} calls in {d['slices']} alternating slices) |")
            for label, ratio in (("", d["ratio"]), (f", driver poll_us={d['poll_us']}", d["ratio_polled"])):
                rows.append(f"| ratio HSM / TPM round trip (median of the slices' ratios{label}) | {ratio:.2f} "
                            f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}) |")
        elif "signs_per_s" in d:
            rows.append(f"| {name} | {d['signs_per_s']} signs/s ({d['signs']} in the run) |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
