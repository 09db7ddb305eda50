"""The confidential workload: attest, get the data-disk key released, unlock, compute, sign.

Steps: driver bound; open a session; this VM's id (from its EK certificate); nonce from the HSM,
quote of the policy PCRs by the vTPM's AK over it, CvmReleaseKey to a fresh hybrid recipient
(retried with fresh evidence after a lost backend), then PCR 9 extended with a separator so that no
later quote of this boot satisfies the policy again; LUKS2 unlock of /dev/vdb with the released key
(from memory, via stdin) and a read-only mount; the job (per-file SHA-256, lines, words); the
result signed by the HSM's ML-DSA-65 result key. The released key goes only to cryptsetup's stdin;
no report, log line or file ever carries it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from pyhsm.client import credential
from pyhsm.client.attestation import (
    SEPARATOR_PCR,
    extend_separator,
    get_nonce,
    guest_vm_id,
    quote,
    release_key,
    status_name,
)
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client
from pyhsm.protocol.cvm.workload import POLICY_WORKLOAD, RESULT_CONTEXT, RESULT_KEY_TAG, job_result, result_message

DATA_DEVICE = "/dev/vdb"
MAPPING = "pyhsm-data"
MOUNT = Path("/mnt/data")
RELEASE_ATTEMPTS = 8
RETRY_PAUSE_S = 2.0
# Refusals that fresh evidence cannot change: no retry.
FINAL = {"CvmVmNotRegistered", "CvmQuoteMalformed", "CvmQuoteSignatureInvalid",
         "CvmQuoteSignerMismatch", "CvmPcrDigestMismatch", "CvmPolicyNotFound", "CvmPolicyMismatch",
         "CvmPolicyVmMismatch", "CvmReleaseKeyInvalid", "CvmOwnerNotSet"}


CRYPTO_MODULES = ("dm_crypt", "xts", "algif_skcipher", "algif_hash")


def open_session(context: Context) -> dict[str, Any]:
    """Also starts loading the disk-unlock modules in the background (TCG makes modprobe slow)."""
    context["modprobe"] = subprocess.Popen(["modprobe", "-a", *CRYPTO_MODULES],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = open_client(context)
    credential.ensure_established(client)
    return {"session_id": credential.open_session(client).sess_id}


def identify(context: Context) -> dict[str, Any]:
    context["vm_id"] = guest_vm_id()
    return {"vm_id": context["vm_id"].hex()}


def _reopen(context: Context) -> None:
    """After a lost backend: a new descriptor and session (the old session died with it)."""
    close_client(context)
    credential.open_session(open_client(context))


def attest_and_release(context: Context, separate: bool = True) -> dict[str, Any]:
    """Nonce, quote, release; transient failures (backend gone, session lost, nonce forgotten)
    are retried with fresh evidence, a refusal in ``FINAL`` is not. Then, with ``separate``, the
    separator is extended (``extend_separator``); if that fails the key is dropped and the step
    fails. Only the refusals workload releases more than once per boot (``separate=False``)."""
    seen: list[str] = []
    for attempt in range(1, RELEASE_ATTEMPTS + 1):
        try:
            if seen:
                _reopen(context)
            client = open_client(context)
            evidence = context.pop("pending_evidence", None) or quote(
                context["vm_id"], get_nonce(client, context["vm_id"]))
            key, answer = release_key(client, evidence, POLICY_WORKLOAD)
        except Exception as exc:
            name = status_name(exc)
            if name in FINAL:
                raise RuntimeError(f"key release refused: {name}") from None
            seen.append(name)
            time.sleep(RETRY_PAUSE_S)
            continue
        if separate:
            extend_separator()
        context["disk_key"], context["last_evidence"] = key, evidence
        context["statement"] = bytes(answer.statement)
        return {"attempts": attempt, "retried_after": seen, "nonce": evidence.nonce.hex(),
                "policy_version": answer.policy_version,
                "separator_pcr": SEPARATOR_PCR if separate else None,
                "statement": context["statement"].hex()}
    raise RuntimeError(f"key release failed {RELEASE_ATTEMPTS} times: {seen}")


def _run(argv: list[str], stdin: bytes = b"") -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.decode(errors='replace').strip()}")


def unlock_disk(context: Context) -> dict[str, Any]:
    """cryptsetup open with the released key on stdin; mount read-only."""
    started = time.monotonic()
    modprobe = context.pop("modprobe", None) or subprocess.Popen(
        ["modprobe", "-a", *CRYPTO_MODULES], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if modprobe.wait() != 0:
        raise RuntimeError(f"modprobe failed: {modprobe.stderr.read().decode(errors='replace')}")
    key = context.pop("disk_key")
    _run(["cryptsetup", "open", "--type", "luks2", "--key-file", "-", DATA_DEVICE, MAPPING], key)
    del key
    MOUNT.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-o", "ro", f"/dev/mapper/{MAPPING}", str(MOUNT)])
    context["mounted"] = True
    return {"device": DATA_DEVICE, "mapping": MAPPING, "unlock_s": round(time.monotonic() - started, 2)}


def run_job(context: Context) -> dict[str, Any]:
    context["result"] = job_result(MOUNT)
    return {"files": len(context["result"]["files"]),
            "total_words": context["result"]["total_words"]}


def sign_result(context: Context) -> dict[str, Any]:
    client = open_client(context)
    key_id = client.open_key(RESULT_KEY_TAG).key_id
    message = result_message(context["result"], context["statement"])
    signature = bytes(client.mldsa_sign(key_id, message, RESULT_CONTEXT))
    return {"result": context["result"], "statement": context["statement"].hex(),
            "mldsa_signature": signature.hex()}


def cleanup(context: Context) -> None:
    context.pop("disk_key", None)
    if "modprobe" in context:
        context.pop("modprobe").wait()
    if context.pop("mounted", False):
        subprocess.run(["umount", str(MOUNT)], capture_output=True)
    subprocess.run(["cryptsetup", "close", MAPPING], capture_output=True)
    close_client(context)


STEPS = (Step("driver bound", driver_bound), Step("open session", open_session),
         Step("vTPM identity", identify))
RELEASE_STEPS = (Step("attest and release key", attest_and_release),
                 Step("unlock data disk", unlock_disk), Step("run job", run_job),
                 Step("sign result (ML-DSA-65)", sign_result))

WORKLOAD = Workload(steps=STEPS + RELEASE_STEPS, cleanup=cleanup)
