"""Real vTPMs: Debian's swtpm (manufactured with EK certificates by swtpm_setup) and tpm2-tools produce
the quotes; the HSM verifies them and releases, or refuses for changed PCRs and for the other vTPM."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import cvm_evidence
from pyhsm.host.swtpm import Swtpm, missing_tools
from pyhsm.protocol.cvm import owner, statement
from pyhsm.protocol.cvm.tpm2 import HASH_BY_NAME
from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT, Recipient, Wrapped
from pyhsm.protocol.ddi.schemas_vendor import VendorStatus as V
from pyhsm.protocol.ddi.types import AesKeySize
from tests.backend.ddi.ddi_helpers import Provisioned, expect

PCRS = [0, 7, 10]

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"missing tools: {', '.join(missing_tools())} "
                                "(Debian packages swtpm swtpm-tools tpm2-tools)")


def test_swtpm_quotes_release_and_refuse(hsm: Provisioned, tmp_path: Path) -> None:
    client = hsm.client
    owner_key = ec.generate_private_key(ec.SECP384R1())
    client.cvm_set_owner(owner.public_der(owner_key))
    client.aes_generate_key(AesKeySize.Aes256, tag=0x42)
    with Swtpm(tmp_path / "vm-ecc") as tpm_a, Swtpm(tmp_path / "vm-rsa") as tpm_b:
        for seq, (tpm, vm_id, kind) in enumerate(((tpm_a, b"vm-ecc", "ecc"), (tpm_b, b"vm-rsa", "rsa")), 1):
            ak_public = tpm.create_ak(kind)
            client.cvm_register_vm(owner_key, seq, vm_id, tpm.ek_public(), ak_public)
            tpm.extend(10, hashlib.sha256(b"workload image").digest())
        expected = tpm_a.pcr_values(PCRS)
        assert expected == tpm_b.pcr_values(PCRS)
        client.cvm_set_policy(owner_key, 3, b"app", HASH_BY_NAME["sha256"].alg_id, sum(1 << i for i in PCRS),
                              expected, key_tag=0x42)

        def evidence(tpm: Swtpm, vm_id: bytes, nonce_vm: bytes | None = None) -> object:
            nonce = client.cvm_get_nonce(nonce_vm or vm_id)
            return cvm_evidence(vm_id, *tpm.quote(nonce, PCRS))

        keys = []
        for tpm, vm_id in ((tpm_a, b"vm-ecc"), (tpm_b, b"vm-rsa")):
            recipient = Recipient()
            answer = client.cvm_release_key(evidence(tpm, vm_id), b"app", recipient.kem_pub, recipient.ecdh_pub)
            w = answer.wrapped
            keys.append(recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), RELEASE_CONTEXT + b"app"))
            claims = statement.verify(answer.statement, client.attestation_public_key())
            assert claims[2] == vm_id
        assert keys[0] == keys[1] and len(keys[0]) == 32

        recipient = Recipient()
        # the RSA vTPM's quote presented as the ECC VM: not signed by vm-ecc's AK
        nonce = client.cvm_get_nonce(b"vm-ecc")
        foreign = cvm_evidence(b"vm-ecc", *tpm_b.quote(nonce, PCRS))
        expect(V.CvmQuoteSignatureInvalid, client.cvm_release_key, foreign, b"app", recipient.kem_pub,
               recipient.ecdh_pub)
        tpm_a.extend(7, hashlib.sha256(b"debug shell").digest())
        expect(V.CvmPolicyMismatch, client.cvm_release_key, evidence(tpm_a, b"vm-ecc"), b"app", recipient.kem_pub,
               recipient.ecdh_pub)
