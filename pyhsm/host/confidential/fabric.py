"""The host's fabric: what a cloud control plane does with the HSM around a confidential VM.

Connects to ``pyhsm serve`` as the VM's HSM function (same serial, so the same partition), with the
partition credential. Holds the owner key (``state/owner.pem``, made on first use), registers vTPMs
and policies with signed owner commands (docs/vendor-ops.md), creates the HSM-held keys (the
releasable data-disk key, the ML-DSA-65 result key) and reads the device's certificate chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import DdiError, HsmClient, credential
from pyhsm.client.attestation import POLICY_BANK, vm_id_for
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.host.swtpm import VtpmIdentity
from pyhsm.protocol.cvm import owner
from pyhsm.protocol.cvm.workload import RESULT_KEY_TAG
from pyhsm.protocol.ddi.types import AesKeySize

DISK_KEY_TAG = 0x5C00       # AES-256 app key released to the workload (the LUKS2 key)
TPM_ALG = {"sha256": 0x000B}


class Fabric:
    """One connection to the HSM partition of ``serial`` with an open session."""

    def __init__(self, socket: Path, serial: str, owner_key_file: Path) -> None:
        self.client = HsmClient(SocketTransport(socket, serial=serial))
        credential.ensure_established(self.client)
        credential.open_session(self.client)
        self.owner = load_owner_key(owner_key_file)

    def close(self) -> None:
        try:
            self.client.close_session()
        finally:
            self.client.transport.close()

    def ensure_owner(self) -> str:
        """CvmSetOwner with our key unless an owner is set (kept state); returns what happened."""
        if self.client.cvm_get_owner_info().owner_set:
            return "owner already set"
        self.client.cvm_set_owner(owner.public_der(self.owner))
        return "owner set"

    def _next_seq(self) -> int:
        return int(self.client.cvm_get_owner_info().last_seq) + 1

    def register_vm(self, vtpm: VtpmIdentity) -> bytes:
        """CvmRegisterVm with the vTPM's EK and AK; returns the VM id."""
        vm_id = vm_id_for(vtpm.ek_cert_der)
        self.client.cvm_register_vm(self.owner, self._next_seq(), vm_id, vtpm.ek_public,
                                    vtpm.ak_public)
        return vm_id

    def set_policy(self, workload: str, vm_id: bytes, mask: int, values: bytes,
                   key_tag: int = DISK_KEY_TAG) -> int:
        """CvmSetPolicy (SHA-256 bank); returns the policy's version."""
        return int(self.client.cvm_owner_command(
            "CvmSetPolicy", self.owner,
            **policy_body(self._next_seq(), workload, vm_id, mask, values, key_tag)).version)

    def ensure_disk_key(self) -> str:
        """The releasable AES-256 key under ``DISK_KEY_TAG``, generated in the HSM if absent."""
        if self._has(DISK_KEY_TAG):
            return "disk key exists"
        self.client.aes_generate_key(AesKeySize.Aes256, tag=DISK_KEY_TAG)
        return "disk key generated"

    def result_public_key(self) -> bytes:
        """The ML-DSA-65 result key's public key (FIPS 204 encoding), generated if absent."""
        if self._has(RESULT_KEY_TAG):
            key_id = self.client.open_key(RESULT_KEY_TAG).key_id
            return bytes(self.client.mldsa_get_public_key(key_id))
        return bytes(self.client.mldsa_generate_key(65, tag=RESULT_KEY_TAG).pub_key)

    def certificate_chain(self) -> list[bytes]:
        """The device's DICE chain, Device ID first (DER certificates)."""
        count = self.client.get_cert_chain_info().num_certs
        return [bytes(self.client.get_certificate(i)) for i in range(count)]

    def _has(self, tag: int) -> bool:
        try:
            self.client.open_key(tag)
        except DdiError as exc:
            if exc.name != "KeyNotFound":
                raise
            return False
        return True


def policy_body(seq: int, workload: str, vm_id: bytes, mask: int, values: bytes,
                key_tag: int = DISK_KEY_TAG) -> dict[str, Any]:
    """The CvmSetPolicy body fields (SHA-256 bank)."""
    return {"seq": seq, "workload": workload.encode(), "vm_id": vm_id,
            "pcr_bank": TPM_ALG[POLICY_BANK], "pcr_mask": mask, "pcr_values": values,
            "key_tag": key_tag}


def load_owner_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The owner key in ``path`` (PEM), created there (mode 0600) when missing."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP384R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key
