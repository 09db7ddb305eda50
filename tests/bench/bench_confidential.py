"""Confidential-VM benchmark: launch to signed result under TCG, split by phase, and what the
dm-verity root costs.

Runs ``RUNS`` (default 2) confidential VMs one after another on one backend, each provisioned from
scratch (owner, keys, vTPMs, policy, LUKS2 disk); the reference PCRs are cached in build/ and are
filled (one reference boot) before the timed runs if needed. ``BENCH_CONFIDENTIAL_CPUS`` vCPUs
(default 1: under TCG on this 2-core machine one vCPU reaches the agent sooner than two). Phases:
provision (host), firmware (QEMU start to kernel entry: the agent's arrival minus the guest's
uptime), kernel (kernel entry to guest agent, includes the initramfs, the verity set-up and the root
mount), agent start (the agent's boot report to its first step: modprobe azihsm and the workload's
import), session (driver bound, credential, session, VM id), attestation and release, disk unlock,
job, sign; launch to result is the host's clock from the start of provisioning to the
signed-result event. Prints a Markdown table (docs/confidential.md) and the anchor: the same boot
path without any confidential step (workload ``boot``, same OVMF + vTPM + verified root).

The verity cost, measured in each VM after its workload (``VERITY_PROBE``, so host load hits both
sides alike): how much the run read from the verified root (``/sys/block/dm-0/stat``), and the time
to read the same 64 MiB with O_DIRECT from the raw disk (the anchor) and through dm-verity, back to
back; the run's cost is what it read times the difference per MiB. Exits non-zero if a run failed.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyhsm.host import images, swtpm
from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import launch as confidential
from pyhsm.host.confidential.session import Outcome, run_vm
from pyhsm.host.summary import Summary
from pyhsm.host.vm import Vm
from pyhsm.protocol import console

RUNS = int(os.environ.get("BENCH_CONFIDENTIAL_RUNS", "2"))
GOAL_S = 30.0
CPUS = int(os.environ.get("BENCH_CONFIDENTIAL_CPUS", "1"))   # 1 vCPU boots faster under TCG here
PROBE_MIB = 64
VERITY_PROBE = f"""read_kib=$(awk '{{print $3 / 2}}' /sys/block/dm-0/stat)
for dev in /dev/vda /dev/mapper/root; do
  echo 3 >/proc/sys/vm/drop_caches; start=$(cut -d' ' -f1 /proc/uptime)
  dd if=$dev of=/dev/null bs=1M count={PROBE_MIB} skip=40 iflag=direct 2>/dev/null
  echo "$start $(cut -d' ' -f1 /proc/uptime)"
done | awk -v kib="$read_kib" '{{s[NR] = $2 - $1}}
  END {{printf "@pyhsm {{\\"event\\":\\"verity\\",\\"read_kib\\":%d,\\"raw_s\\":%.3f,\\"verity_s\\":%.3f}}\\n", kib, s[1], s[2]}}'
"""
PHASES = (("provision_s", "provision (host)"), ("firmware_s", "firmware (OVMF)"),
          ("kernel_s", "kernel + initramfs to agent"),
          ("agent_start_s", "agent: modprobe azihsm, workload import"),
          ("session_s", "driver, session, VM id"),
          ("attestation_release_s", "attestation and release"), ("unlock_s", "disk unlock"),
          ("job_s", "job"), ("sign_s", "sign result"), ("launch_to_result_s", "launch to result"),
          ("root_read_mib", "read from the verified root during the run (MiB)"),
          ("raw_ms_per_mib", "anchor: raw disk read (ms/MiB, O_DIRECT)"),
          ("verity_ms_per_mib", "dm-verity read (ms/MiB, O_DIRECT)"),
          ("verity_cost_s", "verity cost in the run (read x difference)"))


def _verity_probe(log: Path) -> dict[str, float]:
    """The ``verity`` report line the probe wrote on ``log``, as phases."""
    events = [e for e in map(console.parse_line, log.read_text(errors="replace").splitlines())
              if e and e["event"] == "verity"]
    if not events:
        raise RuntimeError(f"no verity probe result on {log}")
    probe = events[-1]
    raw, verity = (probe[k] * 1000 / PROBE_MIB for k in ("raw_s", "verity_s"))
    read = probe["read_kib"] / 1024
    return {"root_read_mib": read, "raw_ms_per_mib": raw, "verity_ms_per_mib": verity,
            "verity_cost_s": read * (verity - raw) / 1000}


def _one(built: images.GuestImages, backend: BackendProcess, workdir: Path) -> Outcome:
    config = confidential.vm_config(built, backend, workdir, "tcg", "confidential", "AZIHSM-BENCH-0001",
                                    cpus=CPUS, guest_cmd=VERITY_PROBE)
    outcome = run_vm(config, backend, workdir.parent / "owner.pem", Summary(lambda line: None),
                     lambda line: None)
    if "result_at_s" not in outcome.phases or not outcome.chain_of_trust:
        raise RuntimeError(f"run in {workdir} did not produce a verified result: {outcome.steps}")
    driver = outcome.steps["driver bound"]
    outcome.phases["agent_start_s"] = (driver["at_s"] - driver.get("ms", 0) / 1000
                                       - outcome.phases["firmware_s"] - outcome.phases["kernel_s"])
    outcome.phases["session_s"] = sum(outcome.steps[n].get("ms", 0) for n in
                                      ("driver bound", "open session", "vTPM identity")) / 1000
    outcome.phases["launch_to_result_s"] = (outcome.phases["provision_s"]
                                            + outcome.phases["result_at_s"])
    outcome.phases.update(_verity_probe(config.console_log))
    return outcome


def _anchor(built: images.GuestImages, backend: BackendProcess, workdir: Path) -> float:
    """QEMU start to guest agent on the same path (OVMF, vTPM, verified root), without
    confidential steps."""
    config = confidential.vm_config(built, backend, workdir, "tcg", "boot", "AZIHSM-BENCH-0002",
                                    cpus=CPUS)
    config = dataclasses.replace(config, data_disk=None)
    tpm = swtpm.Swtpm(workdir / "tpm", ctrl_socket=workdir / "swtpm.sock", log=workdir / "swtpm.log")
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
    print(f"\nanchor: QEMU start to guest agent, same OVMF + vTPM + verified root path, no "
          f"confidential steps: {anchor:.2f} s")
    print(f"goal launch to result <= {GOAL_S:.0f} s: {'met' if median <= GOAL_S else 'NOT met'} "
          f"(median {median:.2f} s; load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
