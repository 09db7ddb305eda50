"""The confidential workload with every refusal one boot can show, each a step that passes only when
the HSM refuses with the expected status (docs/confidential.md):

replayed evidence (CvmNonceUnknown); this VM's evidence presented as another VM's
(CvmQuoteSignatureInvalid); a release under another VM's policy (CvmPolicyVmMismatch); evidence
gathered before a policy update (CvmNonceStale: when it sees the "evidence gathered" step the
host types a signed CvmSetPolicy on the console, which the guest relays); and a backend restart between nonce and release (the host kills and
restarts the backend when it sees the "nonce before backend restart" step), survived by a retry.
The first two releases leave PCR 9 as it is (so that the refusals can follow); the third extends the
separator, after which fresh, valid evidence from this boot is refused (CvmPolicyMismatch).
Then the disk is unlocked, the job run and the result signed as in ``confidential``.
The other VM's id comes from ``pyhsm.other-vm=HEX`` on the kernel command line.
"""

from __future__ import annotations

import json
import select
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pyhsm.client.attestation import get_nonce, quote, release_key, status_name
from pyhsm.guest.agent import kernel_params
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.confidential import RELEASE_STEPS, STEPS, attest_and_release, cleanup
from pyhsm.guest.workloads.device import open_client
from pyhsm.protocol.cvm.workload import OTHER_WORKLOAD, POLICY_WORKLOAD, RELAY_PREFIX

PATIENCE_S = 120.0
POLL_S = 0.25


def _refused(expected: str, attempt: Callable[[], Any]) -> dict[str, Any]:
    try:
        attempt()
    except Exception as exc:
        got = status_name(exc)
        if got != expected:
            raise RuntimeError(f"refused with {got}, expected {expected}") from None
        return {"status": got}
    raise RuntimeError(f"the key was released; expected {expected}")


def replayed(context: Context) -> dict[str, Any]:
    return _refused("CvmNonceUnknown", lambda: release_key(open_client(context),
                                                           context["last_evidence"], POLICY_WORKLOAD))


def _other_vm() -> bytes:
    return bytes.fromhex(kernel_params(Path("/proc/cmdline").read_text())["other-vm"])


def as_other_vm(context: Context) -> dict[str, Any]:
    """Nonce for the other VM, quoted by this VM's vTPM, for the other VM's policy."""
    client, other = open_client(context), _other_vm()

    def attempt() -> Any:
        return release_key(client, quote(other, get_nonce(client, other)), OTHER_WORKLOAD)
    return _refused("CvmQuoteSignatureInvalid", attempt)


def _fresh_release(context: Context, workload: str) -> Callable[[], Any]:
    """A release attempt for ``workload`` with fresh evidence from this VM."""
    client, vm_id = open_client(context), context["vm_id"]
    return lambda: release_key(client, quote(vm_id, get_nonce(client, vm_id)), workload)


def other_policy(context: Context) -> dict[str, Any]:
    """This VM's own, valid evidence, for the policy bound to the other VM."""
    return _refused("CvmPolicyVmMismatch", _fresh_release(context, OTHER_WORKLOAD))


def gather_before_update(context: Context) -> dict[str, Any]:
    client, vm_id = open_client(context), context["vm_id"]
    context["old_evidence"] = quote(vm_id, get_nonce(client, vm_id))
    return {"owner_seq": int(client.cvm_get_owner_info().last_seq)}


def stale_after_update(context: Context) -> dict[str, Any]:
    """Relay the host's signed policy update (a console line), then present the old evidence."""
    ready, _, _ = select.select([sys.stdin], [], [], PATIENCE_S)
    line = sys.stdin.readline() if ready else ""
    if not line.startswith(RELAY_PREFIX):
        raise TimeoutError(f"no policy update from the host within {PATIENCE_S:.0f} s: {line[:60]!r}")
    relay = json.loads(line[len(RELAY_PREFIX):])
    version = open_client(context).call(relay["op"], body=bytes.fromhex(relay["body"]),
                                        owner_sig=bytes.fromhex(relay["owner_sig"])).version
    refused = _refused("CvmNonceStale", lambda: release_key(open_client(context),
                                                            context["old_evidence"], POLICY_WORKLOAD))
    return {"policy_version": version, **refused}


def nonce_before_restart(context: Context) -> dict[str, Any]:
    client, vm_id = open_client(context), context["vm_id"]
    context["pending_evidence"] = quote(vm_id, get_nonce(client, vm_id))
    return {"nonce": context["pending_evidence"].nonce.hex()}


def backend_down(context: Context) -> dict[str, Any]:
    """Poll until a command fails: the host has killed the backend."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            open_client(context).get_api_rev()
        except Exception as exc:
            return {"error": status_name(exc)}
        time.sleep(POLL_S)
    raise TimeoutError(f"the backend answered for {PATIENCE_S:.0f} s")


def release_keeping_pcrs(context: Context) -> dict[str, Any]:
    """A release without the separator, so that this boot's later steps can still quote."""
    return attest_and_release(context, separate=False)


def after_separator(context: Context) -> dict[str, Any]:
    """Fresh nonce and quote from this boot, after the separator: the policy no longer matches."""
    return _refused("CvmPolicyMismatch", _fresh_release(context, POLICY_WORKLOAD))


def release_after_restart(context: Context) -> dict[str, Any]:
    detail = attest_and_release(context)
    if not detail["retried_after"]:
        raise RuntimeError("the release after the backend restart needed no retry")
    return detail


WORKLOAD = Workload(
    steps=(*STEPS, Step("attest and release key", release_keeping_pcrs),
           Step("replayed evidence refused", replayed),
           Step("evidence as another VM refused", as_other_vm),
           Step("another VM's policy refused", other_policy),
           Step("evidence gathered before policy update", gather_before_update),
           Step("evidence from before the policy update refused", stale_after_update),
           Step("release under the updated policy", release_keeping_pcrs),
           Step("nonce before backend restart", nonce_before_restart),
           Step("backend down", backend_down),
           Step("release retried across the backend restart", release_after_restart),
           Step("release after the separator refused", after_separator),
           *RELEASE_STEPS[1:]),
    cleanup=cleanup)
