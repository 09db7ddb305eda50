"""A provisioned partition with an owner, two registered VMs (software vTPMs) and a release policy."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import cvm_evidence
from pyhsm.protocol.cvm import owner
from pyhsm.protocol.ddi.types import AesKeySize
from tests.backend.cvm.soft_tpm import SHA256, SoftVtpm
from tests.backend.ddi.ddi_helpers import Provisioned

POLICY_PCRS = [0, 4, 7]
WORKLOAD = b"web"
KEY_TAG = 0x100


@dataclass
class Cvm:
    hsm: Provisioned
    owner_key: ec.EllipticCurvePrivateKey
    vm_a: SoftVtpm
    vm_b: SoftVtpm
    key_id: int
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def set_policy(self, values: bytes, *, vm_id: bytes = b"", key_tag: int | None = KEY_TAG,
                   workload: bytes = WORKLOAD) -> int:
        mask = sum(1 << i for i in POLICY_PCRS)
        return self.hsm.client.cvm_set_policy(self.owner_key, self.next_seq(), workload, SHA256, mask, values,
                                              vm_id=vm_id, key_tag=key_tag)

    def evidence(self, vm: SoftVtpm, vm_id: bytes, *, nonce: bytes | None = None, pcrs: list[int] = POLICY_PCRS):
        nonce = nonce if nonce is not None else self.hsm.client.cvm_get_nonce(vm_id)
        attest, sig, values = vm.quote(nonce, pcrs)
        return cvm_evidence(vm_id, attest, sig, values)


def set_up(hsm: Provisioned, kind_b: str = "rsa") -> Cvm:
    owner_key = ec.generate_private_key(ec.SECP384R1())
    hsm.client.cvm_set_owner(owner.public_der(owner_key))
    cvm = Cvm(hsm, owner_key, SoftVtpm("ecc"), SoftVtpm(kind_b),
              hsm.client.aes_generate_key(AesKeySize.Aes256, tag=KEY_TAG).key_id)
    for vm, vm_id in ((cvm.vm_a, b"vm-a"), (cvm.vm_b, b"vm-b")):
        for i in POLICY_PCRS:
            vm.extend(i, b"firmware and kernel %d" % i)
        hsm.client.cvm_register_vm(owner_key, cvm.next_seq(), vm_id, vm.ek_public, vm.ak_public)
    cvm.set_policy(cvm.vm_a.values(POLICY_PCRS))
    return cvm
