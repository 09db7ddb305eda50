"""Attestation and key release as the guest agent does them (also used by the host's fabric).

The vTPM side goes through tpm2-tools (``TCTI``: the kernel's resource manager in the guest); the HSM
side through ``HsmClient``'s ``cvm_*`` methods (the vendor ops of docs/vendor-ops.md). ``vm_id_for`` derives a
VM's id from its EK, so guest and host name the VM the same way without passing it around.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT
from pyhsm.protocol.cvm.tpm2 import AK_HANDLE, EK_CERT_NV

EK_CERT_INDEX = EK_CERT_NV["ecc"]   # the vTPMs the host manufactures have an ECC P-384 EK
POLICY_BANK = "sha256"
POLICY_PCRS = (0, 4, 7, 9)    # firmware, boot loader/kernel, secure boot state, initrd + cmdline
POLICY_SELECTION = f"{POLICY_BANK}:{','.join(map(str, POLICY_PCRS))}"
GUEST_TCTI = "device:/dev/tpmrm0"
SEPARATOR_PCR = 9             # a policy PCR: once extended, no quote of this boot matches again
SEPARATOR_DIGEST = hashlib.sha256(bytes(4)).digest()   # TCG EV_SEPARATOR's digest (0x00000000)


@dataclass(frozen=True)
class Evidence:
    vm_id: bytes
    nonce: bytes
    attest: bytes             # TPMS_ATTEST
    signature: bytes          # TPMT_SIGNATURE
    pcr_values: bytes         # the selection's digests, as tpm2_pcrread -o writes them


def vm_id_for(ek_cert_der: bytes) -> bytes:
    """The VM id: the first 16 bytes of SHA-256 over the EK's SubjectPublicKeyInfo."""
    spki = x509.load_der_x509_certificate(ek_cert_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:16]


def status_name(exc: Exception) -> str:
    """The DDI or vendor status name of a client error, else the exception's text."""
    from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        try:
            return VendorStatus(int(status)).name
        except ValueError:
            pass
    return getattr(exc, "name", None) or f"{type(exc).__name__}: {exc}"


def tpm2(*args: str, env: dict[str, str] | None = None) -> None:
    """Run one tpm2-tools command against ``env``'s TCTI (default: the guest's vTPM); raises
    ``RuntimeError`` with its stderr."""
    env = env or {**os.environ, "TPM2TOOLS_TCTI": GUEST_TCTI}
    proc = subprocess.run(["tpm2_" + args[0], "-Q", *args[1:]], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"tpm2_{args[0]} failed: {proc.stderr.strip()[-300:]}")


def guest_vm_id() -> bytes:
    """This VM's id, from the EK certificate in its vTPM's NV index."""
    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp) / "ek.der"
        tpm2("nvread", hex(EK_CERT_INDEX), "-o", str(cert))
        return vm_id_for(cert.read_bytes())


def quote(vm_id: bytes, nonce: bytes, selection: str = POLICY_SELECTION,
          env: dict[str, str] | None = None) -> Evidence:
    """Quote ``selection`` with the provisioned AK over ``nonce`` (in this VM's vTPM, or the one
    ``env`` points tpm2-tools at)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = {n: Path(tmp) / n for n in ("attest", "sig", "pcrs")}
        tpm2("quote", "-c", hex(AK_HANDLE), "-l", selection, "-q", nonce.hex(), "-g", "sha256",
             "-m", str(out["attest"]), "-s", str(out["sig"]), env=env)
        tpm2("pcrread", selection, "-o", str(out["pcrs"]), env=env)
        return Evidence(vm_id, nonce, out["attest"].read_bytes(), out["sig"].read_bytes(),
                        out["pcrs"].read_bytes())


def extend_separator(env: dict[str, str] | None = None) -> None:
    """Extend ``SEPARATOR_PCR`` with ``SEPARATOR_DIGEST``: after it, no quote from this boot can
    carry the PCR 9 a policy expects, so a second release in the same boot is refused."""
    tpm2("pcrextend", f"{SEPARATOR_PCR}:{POLICY_BANK}={SEPARATOR_DIGEST.hex()}", env=env)


def get_nonce(client: Any, vm_id: bytes) -> bytes:
    return bytes(client.cvm_get_nonce(vm_id))


def release_key(client: Any, evidence: Evidence, workload: str) -> tuple[bytes, Any]:
    """CvmReleaseKey with ``evidence`` for ``workload`` to a fresh hybrid recipient; returns the
    unwrapped key and the response (statement, policy_version). Raises the client's errors."""
    from pyhsm.client import cvm_evidence
    from pyhsm.protocol.cvm.wrap import Recipient, Wrapped
    recipient = Recipient()
    answer = client.cvm_release_key(
        cvm_evidence(evidence.vm_id, evidence.attest, evidence.signature, evidence.pcr_values),
        workload.encode(), recipient.kem_pub, recipient.ecdh_pub)
    wrapped = answer.wrapped
    key = recipient.unwrap(Wrapped(bytes(wrapped.kem_ct), bytes(wrapped.ecdh_pub),
                                   bytes(wrapped.ciphertext)), RELEASE_CONTEXT + workload.encode())
    return key, answer
