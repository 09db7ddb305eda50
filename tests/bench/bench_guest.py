"""Guest benchmark: HSM ioctl round trip vs TPM2_GetRandom via tpm-crb/swtpm, P-384 signing throughput.

One boot of the emulated server (KVM when a probe boot proves it works, else TCG) with a swtpm TPM
next to the HSM; the guest workload ``bench`` measures from userspace. Prints a Markdown table with
the machine it ran on (paste into docs/benchmarks.md). Exits non-zero if a measurement failed.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from pyhsm import paths
from pyhsm.guest.workloads.bench import HSM_LATENCY_STEP, TPM_LATENCY_STEP
from pyhsm.host import accel, images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.swtpm import Swtpm
from pyhsm.host.vm import Vm, VmConfig
from pyhsm.protocol import console

TIMEOUT_S = 1800.0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-guest-"))
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
                              workload="bench", tpm_socket=tpm.socket)
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
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


def _table(steps: dict[str, dict], accelerator: str) -> str:
    rows = [f"Machine: {_cpu_model()}, {os.cpu_count()} host cores, {platform.release()}; guest "
            f"Debian 12 (kernel in images/pins.env), QEMU {accelerator.upper()}, "
            f"{min(os.cpu_count() or 2, 8)} vCPUs.", "",
            "| measurement | result |", "|---|---|"]
    for name, event in steps.items():
        d = event.get("detail") or {}
        if "median_us" in d:
            value = f"median {d['median_us']} µs, p99 {d['p99_us']} µs ({d['calls']} calls)"
        elif "signs_per_s" in d:
            value = f"{d['signs_per_s']} signs/s ({d['signs']} in the run)"
        else:
            continue
        rows.append(f"| {name} | {value if event['result'] == console.OK else event['result']} |")
    hsm, tpm = (steps.get(name, {}).get("detail") or {} for name in (HSM_LATENCY_STEP, TPM_LATENCY_STEP))
    if "median_us" in hsm and "median_us" in tpm:
        ratio = hsm["median_us"] / tpm["median_us"]
        rows.append(f"| ratio HSM / TPM round trip (median) | {ratio:.2f} "
                    f"(goal <= 0.50: {'met' if ratio <= 0.5 else 'NOT met'}) |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
