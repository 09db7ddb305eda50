"""Confidential-VM benchmark: launch to signed result under TCG, split by phase.

Runs ``RUNS`` (default 2) confidential VMs one after another on one backend, each provisioned from
scratch (owner, keys, vTPMs, policy, LUKS2 disk); the reference PCRs are cached in build/ and are
filled (one reference boot) before the timed runs if needed. ``BENCH_CONFIDENTIAL_CPUS`` vCPUs
(default 1: under TCG on this 2-core machine one vCPU reaches the agent sooner than two). Phases: provision (host), firmware (QEMU
start to kernel entry: the agent's arrival minus the guest's uptime), kernel (kernel entry to guest
agent, includes the initramfs and root mount), session (driver bound, credential, session, VM id),
attestation and release, disk unlock, job, sign; launch to result is the host's clock from the start
of provisioning to the signed-result event. Prints a Markdown table (docs/confidential.md) and the
anchor: the same boot path without any confidential step (workload ``boot``, same OVMF + vTPM).
Exits non-zero if a run failed.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyhsm.launcher import confidential, images
from pyhsm.launcher.backend import BackendProcess
from pyhsm.launcher.confidential_session import Outcome, run_vm
from pyhsm.launcher.summary import Summary
from pyhsm.launcher.tpm import SwtpmProcess
from pyhsm.launcher.vm import Vm

RUNS = int(os.environ.get("BENCH_CONFIDENTIAL_RUNS", "2"))
GOAL_S = 30.0
CPUS = int(os.environ.get("BENCH_CONFIDENTIAL_CPUS", "1"))   # 1 vCPU boots faster under TCG here
PHASES = (("provision_s", "provision (host)"), ("firmware_s", "firmware (OVMF)"),
          ("kernel_s", "kernel + initramfs to agent"), ("session_s", "driver, session, VM id"),
          ("attestation_release_s", "attestation and release"), ("unlock_s", "disk unlock"),
          ("job_s", "job"), ("sign_s", "sign result"), ("launch_to_result_s", "launch to result"))


def _one(built: images.GuestImages, backend: BackendProcess, workdir: Path) -> Outcome:
    config = confidential.vm_config(built, backend, workdir, "tcg", "confidential", "AZIHSM-BENCH-0001",
                                    cpus=CPUS)
    outcome = run_vm(config, backend, workdir.parent / "owner.pem", Summary(lambda line: None),
                     lambda line: None)
    if "result_at_s" not in outcome.phases or not outcome.chain_of_trust:
        raise RuntimeError(f"run in {workdir} did not produce a verified result: {outcome.steps}")
    outcome.phases["session_s"] = sum(outcome.steps[n].get("ms", 0) for n in
                                      ("driver bound", "open session", "vTPM identity")) / 1000
    outcome.phases["launch_to_result_s"] = (outcome.phases["provision_s"]
                                            + outcome.phases["result_at_s"])
    return outcome


def _anchor(built: images.GuestImages, backend: BackendProcess, workdir: Path) -> float:
    """QEMU start to guest agent on the same path (OVMF, vTPM), without confidential steps."""
    config = confidential.vm_config(built, backend, workdir, "tcg", "boot", "AZIHSM-BENCH-0002",
                                    cpus=CPUS)
    config = dataclasses.replace(config, data_disk=None)
    tpm = SwtpmProcess(workdir / "tpm", workdir / "swtpm.sock", workdir / "swtpm.log")
    tpm.start()
    try:
        with Vm(config) as vm:
            return float(vm.wait_boot(300)["at_s"])
    finally:
        tpm.stop()


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-cvm-", dir="/tmp"))
    built = images.build(lambda line: None)
    print(f"logs in {workdir}; {RUNS} runs under TCG, {CPUS} vCPU, on {os.cpu_count()} host CPUs "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    outcomes = []
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
        started = time.monotonic()
        confidential.reference_pcrs(confidential.vm_config(
            built, backend, workdir / "run0", "tcg", "confidential", "AZIHSM-BENCH-0001", cpus=CPUS),
            lambda line: None)
        print(f"reference PCRs (cache, or one reference boot): {time.monotonic() - started:.1f} s",
              flush=True)
        anchor = _anchor(built, backend, workdir / "anchor")
        for run in range(RUNS):
            outcomes.append(_one(built, backend, workdir / f"run{run}"))
            print(f"run {run}: launch to result {outcomes[-1].phases['launch_to_result_s']:.1f} s",
                  flush=True)
    print("\n| phase | " + " | ".join(f"run {i}" for i in range(RUNS)) + " | median |")
    print("|---|" + "---:|" * (RUNS + 1))
    for key, label in PHASES:
        values = [o.phases.get(key, float("nan")) for o in outcomes]
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values)
              + f" | {statistics.median(values):.2f} |")
    median = statistics.median(o.phases["launch_to_result_s"] for o in outcomes)
    print(f"\nanchor: QEMU start to guest agent, same OVMF + vTPM path, no confidential steps: "
          f"{anchor:.2f} s")
    print(f"goal launch to result <= {GOAL_S:.0f} s: {'met' if median <= GOAL_S else 'NOT met'} "
          f"(median {median:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
