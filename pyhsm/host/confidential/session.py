"""``pyhsm run --workload confidential`` (or ``confidential_refusals``): one confidential VM, end to
end, with every host step and every guest step in the summary, and the chain of trust printed.

Also what the tests and the benchmark drive (``run_vm``): it returns the guest's step events and the
phase timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import launch as confidential
from pyhsm.host.summary import Summary
from pyhsm.host.vm import BOOT_TIMEOUT_S, WORKLOAD_TIMEOUT_S, Vm, VmConfig
from pyhsm.protocol import console

SIGN_STEP = "sign result (ML-DSA-65)"
VERIFY_STEP = "host: verify signed result and evidence"
POLICY_UPDATE_AFTER = "evidence gathered before policy update"
RESTART_AFTER = "nonce before backend restart"
WORKLOADS = ("confidential", "confidential_refusals")


@dataclass
class Outcome:
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)   # guest step name -> event
    phases: dict[str, float] = field(default_factory=dict)          # seconds
    chain_of_trust: list[str] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)
    provisioned: confidential.Provisioned | None = None


def run_vm(config: VmConfig, backend: BackendProcess, owner_key: Path, summary: Summary,
           out: Callable[[str], None], policy_config: VmConfig | None = None,
           echo: Callable[[str], None] | None = None) -> Outcome:
    """Provision, boot, follow the guest (reacting to its steps), verify, power off. The summary
    passes only with a signed result the host verified; a guest that stops (a dm-verity panic, a
    power-off) adds a failed row and raises ``RuntimeError``."""
    outcome = Outcome()
    launched = time.monotonic()
    with summary.timed("host: provision (owner, keys, vTPMs, policy, LUKS2 disk)") as notes:
        provisioned = confidential.provision(config, backend, owner_key, out, policy_config)
        outcome.provisioned = provisioned
        notes += provisioned.notes
    outcome.phases["provision_s"] = time.monotonic() - launched
    config = provisioned.config
    swtpm = confidential.start_vtpm(config, provisioned)
    try:
        with Vm(config, echo=echo) as vm:
            with summary.timed("boot through OVMF to guest agent") as notes:
                boot = vm.wait_boot(BOOT_TIMEOUT_S[config.accel])
                outcome.phases["firmware_s"] = boot["at_s"] - boot["uptime_s"]
                outcome.phases["kernel_s"] = boot["uptime_s"]
                notes.append(f"{boot['at_s']:.1f} s since QEMU start, guest uptime "
                             f"{boot['uptime_s']:.1f} s")

            def on_step(event: dict[str, Any]) -> None:
                outcome.steps[event["name"]] = event
                note = event.get("error") or _short(event.get("detail", {}))
                summary.add(f"guest: {event['name']}", event["result"], event.get("ms", 0) / 1000,
                            note)
                if event["result"] != console.OK:
                    return
                if event["name"] == SIGN_STEP:
                    outcome.phases["result_at_s"] = event["at_s"]
                    _verify(event["detail"], provisioned, summary, outcome, out)
                elif event["name"] == POLICY_UPDATE_AFTER:
                    with summary.timed("host: signed policy update, relayed by the guest"):
                        vm.send_console(confidential.policy_update_line(
                            provisioned, owner_key, event["detail"]["owner_seq"] + 1))
                elif event["name"] == RESTART_AFTER:
                    with summary.timed("host: backend killed and restarted"):
                        backend.kill()
                        backend.start()
            try:
                outcome.done = vm.wait_for("done", WORKLOAD_TIMEOUT_S, lambda event: on_step(event)
                                           if event["event"] == "step" else None)
            except (RuntimeError, TimeoutError) as exc:   # panic (dm-verity), power-off, silence
                summary.add("guest workload", console.FAILED, 0.0, str(exc).splitlines()[0])
                raise
            if not outcome.done.get("ok") and outcome.done.get("error"):
                summary.add("guest workload", console.FAILED, 0.0, outcome.done["error"])
            if "result_at_s" not in outcome.phases:   # the verdict rests on a verified result only
                summary.add(VERIFY_STEP, console.FAILED, 0.0, "the guest reported no signed result")
            with summary.timed("guest powered off, QMP quit") as notes:
                vm.wait_powered_off()
                notes.append(f"QEMU exit status {vm.quit()}")
    finally:
        swtpm.stop()
    for name, key in (("attest and release key", "attestation_release_s"),
                      ("unlock data disk", "unlock_s"), ("run job", "job_s"), (SIGN_STEP, "sign_s")):
        if name in outcome.steps:
            outcome.phases[key] = outcome.steps[name].get("ms", 0) / 1000
    return outcome


def _verify(detail: dict[str, Any], provisioned: confidential.Provisioned, summary: Summary,
            outcome: Outcome, out: Callable[[str], None]) -> None:
    started = time.monotonic()
    try:
        outcome.chain_of_trust = confidential.verify_result(detail, provisioned)
    except Exception as exc:
        summary.add(VERIFY_STEP, console.FAILED, time.monotonic() - started,
                    f"{type(exc).__name__}: {exc}")
        return
    summary.add(VERIFY_STEP, console.OK, time.monotonic() - started,
                "DICE chain, statement, job result, ML-DSA-65 signature")
    out("chain of trust checked:")
    for line in outcome.chain_of_trust:
        out(f"  - {line}")


def _short(detail: dict[str, Any], limit: int = 90) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items()
                     if k not in ("statement", "mldsa_signature", "result"))
    return text if len(text) <= limit else text[:limit - 3] + "..."
