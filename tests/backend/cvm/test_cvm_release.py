"""Confidential-VM key release, sealing and owner commands at the backend level (software vTPMs):
the good path with a countersigned statement, and every refusal with its status and log line."""

from __future__ import annotations

import hashlib
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyhsm.backend import cvm_state
from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import HsmClient, cvm_evidence
from pyhsm.protocol.cvm import statement
from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT, UNSEAL_CONTEXT, Recipient, Wrapped
from pyhsm.protocol.ddi.schemas_vendor import VendorStatus as V
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import AesOp
from tests.backend.cvm.cvm_setup import KEY_TAG, POLICY_PCRS, WORKLOAD, Cvm, set_up
from tests.backend.cvm.soft_tpm import SoftVtpm
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport, Provisioned, expect


@pytest.fixture
def cvm(hsm: Provisioned) -> Cvm:
    return set_up(hsm)


def release(cvm: Cvm, evidence, workload: bytes = WORKLOAD) -> tuple[bytes, object]:
    recipient = Recipient()
    answer = cvm.hsm.client.cvm_release_key(evidence, workload, recipient.kem_pub, recipient.ecdh_pub)
    w = answer.wrapped
    key = recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), RELEASE_CONTEXT + workload)
    return key, answer


def refused(cvm: Cvm, status, evidence, caplog, log_text: str, workload: bytes = WORKLOAD) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyhsm.backend.ddi"):
        expect(status, release, cvm, evidence, workload)
    assert any(status.name in r.getMessage() and log_text in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_release_gives_the_policy_key_and_a_countersigned_statement(cvm: Cvm) -> None:
    client = cvm.hsm.client
    nonce = client.cvm_get_nonce(b"vm-a")
    key, answer = release(cvm, cvm.evidence(cvm.vm_a, b"vm-a", nonce=nonce))
    iv, msg = bytes(16), b"sixteen byte msg" * 2
    local = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    assert client.aes_encrypt_decrypt(cvm.key_id, AesOp.Encrypt, msg, iv).msg == local.update(msg) + local.finalize()
    claims = statement.verify(answer.statement, client.attestation_public_key())
    assert claims[1] == "release" and claims[2] == b"vm-a" and claims[10] == "web" and claims[11] == 1
    assert claims[5] == nonce and claims[8] == hashlib.sha256(cvm.vm_a.values(POLICY_PCRS)).digest()
    assert claims[4] == cvm.vm_a.name and answer.policy_version == 1
    assert claims[3] == hashlib.sha256(cvm.vm_a.ek_der).digest()
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(statement.StatementError):
        statement.verify(answer.statement, other)


def test_verify_evidence_countersigns(cvm: Cvm) -> None:
    nonce = cvm.hsm.client.cvm_get_nonce(b"vm-b")
    evidence = cvm.evidence(cvm.vm_b, b"vm-b", nonce=nonce, pcrs=[0, 1, 4, 7, 10])
    claims = statement.verify(cvm.hsm.client.cvm_verify_evidence(evidence),
                              cvm.hsm.client.attestation_public_key())
    assert claims[1] == "verify" and claims[5] == nonce and claims[7] == [[0x000B, 0b10010010011]]


def test_changed_pcrs_give_no_key(cvm: Cvm, caplog) -> None:
    cvm.vm_a.extend(7, b"unexpected boot component")
    refused(cvm, V.CvmPolicyMismatch, cvm.evidence(cvm.vm_a, b"vm-a"), caplog, "PCRs differ")


def test_replayed_nonce_gives_no_key(cvm: Cvm, caplog) -> None:
    evidence = cvm.evidence(cvm.vm_a, b"vm-a")
    release(cvm, evidence)
    refused(cvm, V.CvmNonceUnknown, evidence, caplog, "already used")


def test_unissued_nonce_gives_no_key(cvm: Cvm, caplog) -> None:
    refused(cvm, V.CvmNonceUnknown, cvm.evidence(cvm.vm_a, b"vm-a", nonce=bytes(32)), caplog, "not issued")


def test_stale_nonce_gives_no_key(cvm: Cvm, caplog, monkeypatch) -> None:
    evidence = cvm.evidence(cvm.vm_a, b"vm-a")
    monkeypatch.setattr(cvm_state, "NONCE_LIFETIME_S", -1.0)   # every nonce is now past its lifetime
    refused(cvm, V.CvmNonceExpired, evidence, caplog, "older than")


def test_nonce_of_another_vm_gives_no_key(cvm: Cvm, caplog) -> None:
    nonce_b = cvm.hsm.client.cvm_get_nonce(b"vm-b")
    refused(cvm, V.CvmNonceUnknown, cvm.evidence(cvm.vm_a, b"vm-a", nonce=nonce_b), caplog, "not issued")


def test_evidence_from_another_vms_vtpm_gives_no_key(cvm: Cvm, caplog) -> None:
    nonce = cvm.hsm.client.cvm_get_nonce(b"vm-a")
    attest, sig, values = cvm.vm_b.quote(nonce, POLICY_PCRS, signer_name=cvm.vm_a.qualified_name)
    refused(cvm, V.CvmQuoteSignatureInvalid, cvm_evidence(b"vm-a", attest, sig, values), caplog,
            "not signed by its registered AK")
    rogue = SoftVtpm("ecc")   # an unregistered vTPM with the right PCRs
    for i in POLICY_PCRS:
        rogue.extend(i, b"firmware and kernel %d" % i)
    nonce = cvm.hsm.client.cvm_get_nonce(b"vm-a")
    attest, sig, values = rogue.quote(nonce, POLICY_PCRS, signer_name=cvm.vm_a.qualified_name)
    refused(cvm, V.CvmQuoteSignatureInvalid, cvm_evidence(b"vm-a", attest, sig, values), caplog, "registered AK")


def test_quote_naming_another_signer_gives_no_key(cvm: Cvm, caplog) -> None:
    nonce = cvm.hsm.client.cvm_get_nonce(b"vm-a")
    attest, sig, values = cvm.vm_a.quote(nonce, POLICY_PCRS, signer_name=cvm.vm_b.qualified_name)
    refused(cvm, V.CvmQuoteSignerMismatch, cvm_evidence(b"vm-a", attest, sig, values), caplog, "signer")


def test_presented_pcr_values_must_match_the_quote(cvm: Cvm, caplog) -> None:
    evidence = cvm.evidence(cvm.vm_a, b"vm-a")
    forged = cvm_evidence(b"vm-a", evidence.attest, evidence.signature, bytes(len(evidence.pcr_values)))
    refused(cvm, V.CvmPcrDigestMismatch, forged, caplog, "quoted digest")
    truncated = cvm_evidence(b"vm-a", evidence.attest[:-1], evidence.signature, evidence.pcr_values)
    refused(cvm, V.CvmQuoteMalformed, truncated, caplog, "truncated")


def test_policy_update_invalidates_old_evidence(cvm: Cvm, caplog) -> None:
    old_values = cvm.vm_a.values(POLICY_PCRS)
    pending = cvm.evidence(cvm.vm_a, b"vm-a")          # gathered before the update
    cvm.vm_b.extend(4, b"new kernel")
    assert cvm.set_policy(cvm.vm_b.values(POLICY_PCRS)) == 2
    refused(cvm, V.CvmNonceStale, pending, caplog, "before the last owner change")
    refused(cvm, V.CvmPolicyMismatch, cvm.evidence(cvm.vm_a, b"vm-a"), caplog, "policy v2")
    key, answer = release(cvm, cvm.evidence(cvm.vm_b, b"vm-b"))
    assert answer.policy_version == 2 and len(key) == 32
    assert cvm.set_policy(old_values) == 3
    release(cvm, cvm.evidence(cvm.vm_a, b"vm-a"))


def test_policy_bound_to_a_vm(cvm: Cvm, caplog) -> None:
    cvm.set_policy(cvm.vm_a.values(POLICY_PCRS), vm_id=b"vm-a")
    release(cvm, cvm.evidence(cvm.vm_a, b"vm-a"))
    refused(cvm, V.CvmPolicyVmMismatch, cvm.evidence(cvm.vm_b, b"vm-b"), caplog, "bound to another VM")


def test_unknown_vm_workload_and_key(cvm: Cvm, caplog) -> None:
    expect(V.CvmVmNotRegistered, cvm.hsm.client.cvm_get_nonce, b"vm-z")
    refused(cvm, V.CvmPolicyNotFound, cvm.evidence(cvm.vm_a, b"vm-a"), caplog, "no policy", workload=b"db")
    cvm.set_policy(cvm.vm_a.values(POLICY_PCRS), workload=b"seal-only", key_tag=None)
    refused(cvm, V.CvmReleaseKeyInvalid, cvm.evidence(cvm.vm_a, b"vm-a"), caplog, "no releasable",
            workload=b"seal-only")


def test_bad_recipient_is_refused_before_the_nonce_is_used(cvm: Cvm) -> None:
    evidence = cvm.evidence(cvm.vm_a, b"vm-a")
    recipient = Recipient()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    from pyhsm.protocol.cvm.owner import public_der
    expect(DdiStatus.InvalidArg, cvm.hsm.client.cvm_release_key, evidence, WORKLOAD, recipient.kem_pub,
           public_der(p256))
    expect(DdiStatus.InvalidArg, cvm.hsm.client.cvm_release_key, evidence, WORKLOAD, recipient.kem_pub[:-1],
           recipient.ecdh_pub)
    release(cvm, evidence)


def test_seal_and_unseal(cvm: Cvm, caplog) -> None:
    client = cvm.hsm.client
    sealed = client.cvm_seal(WORKLOAD, b"database password")
    recipient = Recipient()
    answer = client.cvm_unseal(cvm.evidence(cvm.vm_b, b"vm-b"), sealed, recipient.kem_pub, recipient.ecdh_pub)
    w = answer.wrapped
    assert recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), UNSEAL_CONTEXT) == b"database password"
    assert statement.verify(answer.statement, client.attestation_public_key())[1] == "unseal"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    expect(V.CvmSealedBlobInvalid, client.cvm_unseal, cvm.evidence(cvm.vm_b, b"vm-b"), tampered,
           recipient.kem_pub, recipient.ecdh_pub)
    cvm.vm_b.extend(0, b"other firmware")
    expect(V.CvmPolicyMismatch, client.cvm_unseal, cvm.evidence(cvm.vm_b, b"vm-b"), sealed,
           recipient.kem_pub, recipient.ecdh_pub)
    expect(V.CvmPolicyNotFound, client.cvm_seal, b"nothing", b"x")


def test_owner_commands_are_authenticated_and_fresh(cvm: Cvm) -> None:
    client = cvm.hsm.client
    intruder = ec.generate_private_key(ec.SECP384R1())
    vm = SoftVtpm("ecc")
    expect(V.CvmOwnerSignatureInvalid, client.cvm_register_vm, intruder, cvm.next_seq(), b"vm-x", vm.ek_public,
           vm.ak_public)
    expect(V.CvmOwnerSequenceReplayed, client.cvm_register_vm, cvm.owner_key, 1, b"vm-x", vm.ek_public, vm.ak_public)
    from pyhsm.protocol.cvm.owner import public_der
    expect(V.CvmOwnerAlreadySet, client.cvm_set_owner, public_der(intruder))
    weak = SoftVtpm("ecc", attributes=0x00040072)   # sign but not restricted: could sign forged quotes
    expect(DdiStatus.InvalidArg, client.cvm_register_vm, cvm.owner_key, cvm.next_seq(), b"vm-x", weak.ek_public,
           weak.ak_public)
    expect(DdiStatus.InvalidArg, cvm.set_policy, bytes(31))
    info = client.cvm_get_owner_info()
    assert info.owner_set and info.vms == 2 and info.policies == 1 and info.last_seq == 3


def test_owner_must_be_set_first(hsm: Provisioned) -> None:
    vm = SoftVtpm()
    expect(V.CvmOwnerNotSet, hsm.client.cvm_register_vm, ec.generate_private_key(ec.SECP384R1()), 1, b"vm",
           vm.ek_public, vm.ak_public)
    expect(DdiStatus.InvalidArg, hsm.client.cvm_set_owner, vm.ek_der)   # P-256, not P-384


def test_registrations_and_policies_survive_a_restart(cvm: Cvm) -> None:
    old = cvm.hsm.partition
    restarted = Partition(serial=old.serial, index=0, state_dir=old._store.path.parent, identity=old._identity)
    client = HsmClient(LocalTransport(restarted))
    client.open_session(APP_ID, PIN)
    info = client.cvm_get_owner_info()
    assert (info.owner_set, info.vms, info.policies, info.last_seq) == (True, 2, 1, 3)
    cvm.hsm.client = client
    key, _ = release(cvm, cvm.evidence(cvm.vm_a, b"vm-a"))
    assert len(key) == 32
    assert client.open_key(KEY_TAG).key_id == cvm.key_id


def test_nssr_wipes_cvm_state_but_sealed_blobs_survive_recovery(cvm: Cvm) -> None:
    """NSSR drops owner, VMs and policies with the keys; re-establishing with the same BK3, POTA key
    and BMK restores the masking key, so data sealed before the reset unseals after re-registration."""
    from pyhsm.protocol import link
    hsm, c = cvm.hsm, cvm.hsm.client
    sealed = c.cvm_seal(WORKLOAD, b"survives migration")
    unwrap = c.get_unwrapping_key()
    hsm.partition.reset(link.ResetKind.NSSR)
    fresh = hsm.another_client()
    fresh.establish_credential(APP_ID, PIN, hsm.masked_bk3, hsm.pota, bmk=hsm.bmk,
                               masked_unwrapping_key=unwrap.masked_key)
    fresh.open_session(APP_ID, PIN)
    info = fresh.cvm_get_owner_info()
    assert (info.owner_set, info.vms, info.policies) == (False, 0, 0)
    expect(V.CvmVmNotRegistered, fresh.cvm_get_nonce, b"vm-a")
    from pyhsm.protocol.cvm.owner import public_der
    fresh.cvm_set_owner(public_der(cvm.owner_key))
    cvm.hsm.client, cvm.seq = fresh, 0
    fresh.cvm_register_vm(cvm.owner_key, cvm.next_seq(), b"vm-a", cvm.vm_a.ek_public, cvm.vm_a.ak_public)
    cvm.set_policy(cvm.vm_a.values(POLICY_PCRS), key_tag=None)
    recipient = Recipient()
    w = fresh.cvm_unseal(cvm.evidence(cvm.vm_a, b"vm-a"), sealed, recipient.kem_pub, recipient.ecdh_pub).wrapped
    assert recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), UNSEAL_CONTEXT) == b"survives migration"
