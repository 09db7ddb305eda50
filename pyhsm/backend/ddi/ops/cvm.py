"""Confidential-VM operations (docs/vendor-ops.md): evidence nonces, TPM quote verification and
countersigning, owner-registered vTPMs and policies, key release and sealing, all hybrid-wrapped."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import weakref
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyhsm.backend.cvm_state import NONCE_LIFETIME_S, CvmState, NonceError, Nonces, Policy, VmRecord
from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.vault import Vault
from pyhsm.crypto.kdf import kbkdf384
from pyhsm.protocol.cvm import owner, pcr, statement, tpm2
from pyhsm.protocol.cvm.statement import Claim
from pyhsm.protocol.cvm.wrap import KEM, RELEASE_CONTEXT, UNSEAL_CONTEXT, WrapError, wrap
from pyhsm.protocol.ddi import mbor, messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.schemas_vendor import OWNER_BODIES, VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import KINDS, Family

_EXTENSION = "cvm"
_SEAL_MAGIC = b"AZCVMS1\0"
_SEAL_LABEL = b"azihsm-cvm-seal"
_RELEASABLE = (Family.AES, Family.SECRET, Family.HMAC)
_NONCE_FAILURES = {"unknown": VendorStatus.CvmNonceUnknown, "expired": VendorStatus.CvmNonceExpired, "stale": VendorStatus.CvmNonceStale,
                   "full": VendorStatus.CvmTooManyNonces}
_NONCES: weakref.WeakKeyDictionary[Vault, Nonces] = weakref.WeakKeyDictionary()


def _state(call: Call) -> CvmState:
    call.provisioned()
    return CvmState.from_json(call.vault.extensions.get(_EXTENSION))


def _save(call: Call, state: CvmState) -> None:
    call.vault.extensions[_EXTENSION] = state.to_json()
    call.dirty = True


def _nonces(vault: Vault) -> Nonces:
    return _NONCES.setdefault(vault, Nonces())


def _vm(state: CvmState, vm_id: bytes) -> VmRecord:
    record = state.vms.get(vm_id.hex())
    if record is None:
        raise DdiFailure(VendorStatus.CvmVmNotRegistered, f"VM {vm_id!r} is not registered")
    return record


# -- evidence ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """Evidence that passed every check: the quote and the quoted PCR values by (bank, index)."""

    vm_id: bytes
    ek: tpm2.PublicKey
    ak: tpm2.PublicKey
    quote: tpm2.Quote
    values: dict[tuple[int, int], bytes]

    def claims(self, purpose: str) -> dict[Claim, Any]:
        """The statement claims from purpose to clock (docs/vendor-ops.md, "Countersigned statement")."""
        ek_spki = self.ek.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return {Claim.PURPOSE: purpose, Claim.VM_ID: self.vm_id, Claim.EK_SHA256: hashlib.sha256(ek_spki).digest(),
                Claim.AK_NAME: self.ak.name, Claim.NONCE: self.quote.extra_data,
                Claim.ATTEST_SHA384: hashlib.sha384(self.quote.raw).digest(),
                Claim.PCR_SELECTION: [[s.bank.alg_id, s.mask] for s in self.quote.selections],
                Claim.PCR_DIGEST: self.quote.pcr_digest, Claim.CLOCK: self.quote.clock}

    def matches(self, bank: int, mask: int, values: bytes) -> bool:
        expected = pcr.expected_values(bank, mask, values)
        return all(key in self.values and hmac.compare_digest(self.values[key], value)
                   for key, value in expected.items())


def _verify(call: Call, state: CvmState, evidence: messages.CvmEvidence) -> Verified:
    """The evidence checks of docs/vendor-ops.md, in order; the nonce is consumed once found."""
    record = _vm(state, evidence.vm_id)
    try:
        quote = tpm2.parse_quote(evidence.attest)
        signature = tpm2.parse_signature(evidence.signature)
        values = tpm2.split_pcr_values(quote.selections, evidence.pcr_values)
    except tpm2.Tpm2Error as exc:
        raise DdiFailure(VendorStatus.CvmQuoteMalformed, str(exc)) from None
    try:
        _nonces(call.vault).consume(quote.extra_data, evidence.vm_id, state.generation)
    except NonceError as exc:
        raise DdiFailure(_NONCE_FAILURES[exc.kind], f"VM {evidence.vm_id!r}: {exc}") from None
    ek, ak = record.keys()
    if not tpm2.verify_quote_signature(ak, quote, signature):
        raise DdiFailure(VendorStatus.CvmQuoteSignatureInvalid, f"VM {evidence.vm_id!r}: quote not signed by its registered AK")
    if not hmac.compare_digest(quote.signer_name, tpm2.ak_qualified_name(ek, ak)):
        raise DdiFailure(VendorStatus.CvmQuoteSignerMismatch, f"VM {evidence.vm_id!r}: quote signer is not the registered AK "
                                            "under the registered EK")
    if signature.hash.digest(evidence.pcr_values) != quote.pcr_digest:
        raise DdiFailure(VendorStatus.CvmPcrDigestMismatch, f"VM {evidence.vm_id!r}: PCR values do not match the quoted digest")
    return Verified(evidence.vm_id, ek, ak, quote, values)


def _policy(state: CvmState, workload: bytes, verified: Verified) -> Policy:
    policy = state.policies.get(workload.hex())
    if policy is None:
        raise DdiFailure(VendorStatus.CvmPolicyNotFound, f"no policy for workload {workload!r}")
    if policy.vm_id and policy.vm_id != verified.vm_id.hex():
        raise DdiFailure(VendorStatus.CvmPolicyVmMismatch, f"workload {workload!r} is bound to another VM")
    if not verified.matches(policy.pcr_bank, policy.pcr_mask, bytes.fromhex(policy.pcr_values)):
        raise DdiFailure(VendorStatus.CvmPolicyMismatch, f"VM {verified.vm_id!r}: PCRs differ from workload {workload!r} "
                                       f"policy v{policy.version}")
    return policy


def _wrapped(secret: bytes, recipient: messages.CvmRecipient, context: bytes) -> messages.CvmWrapped:
    try:
        w = wrap(secret, recipient.kem_pub, recipient.ecdh_pub, context)
    except WrapError as exc:
        raise DdiFailure(DdiStatus.InvalidArg, str(exc)) from None
    return messages.CvmWrapped(kem_ct=w.kem_ct, ecdh_pub=w.ecdh_pub, ciphertext=w.ciphertext)


def _check_recipient(recipient: messages.CvmRecipient) -> None:
    """Reject an unusable recipient before any nonce is consumed."""
    try:
        owner.load_p384_public(recipient.ecdh_pub)
    except ValueError as exc:
        raise DdiFailure(DdiStatus.InvalidArg, f"recipient ECDH key: {exc}") from None
    if len(recipient.kem_pub) != KEM.public_len:
        raise DdiFailure(DdiStatus.InvalidArg, f"recipient ML-KEM-768 key must be {KEM.public_len} bytes")


def cvm_get_nonce(call: Call, req: messages.DdiCvmGetNonceReq) -> messages.DdiCvmGetNonceResp:
    state = _state(call)
    _vm(state, req.vm_id)
    try:
        nonce = _nonces(call.vault).issue(req.vm_id, state.generation)
    except NonceError as exc:
        raise DdiFailure(_NONCE_FAILURES[exc.kind], str(exc)) from None
    return messages.DdiCvmGetNonceResp(nonce=nonce, lifetime_ms=int(NONCE_LIFETIME_S * 1000))


def cvm_verify_evidence(call: Call, req: messages.DdiCvmVerifyEvidenceReq) -> messages.DdiCvmVerifyEvidenceResp:
    verified = _verify(call, _state(call), req.evidence)
    signed = statement.build(call.identity.attestation_key(), verified.claims("verify"))
    return messages.DdiCvmVerifyEvidenceResp(statement=signed)


def cvm_release_key(call: Call, req: messages.DdiCvmReleaseKeyReq) -> messages.DdiCvmReleaseKeyResp:
    state = _state(call)
    _check_recipient(req.recipient)
    verified = _verify(call, state, req.evidence)
    policy = _policy(state, req.workload, verified)
    key_id = None if policy.key_tag is None else call.vault.keys.find_tag(call.app_id, policy.key_tag)
    entry = None if key_id is None else call.vault.keys.get(key_id)
    if entry is None or KINDS[entry.kind].family not in _RELEASABLE:
        raise DdiFailure(VendorStatus.CvmReleaseKeyInvalid, f"workload {req.workload!r}: key tag {policy.key_tag} "
                                          "names no releasable app key")
    wrapped = _wrapped(entry.material, req.recipient, RELEASE_CONTEXT + req.workload)
    claims = {**verified.claims("release"), Claim.WORKLOAD: req.workload.decode("utf-8", "replace"),
              Claim.POLICY_VERSION: policy.version}
    signed = statement.build(call.identity.attestation_key(), claims)
    return messages.DdiCvmReleaseKeyResp(wrapped=wrapped, statement=signed, policy_version=policy.version)


# -- sealing -------------------------------------------------------------------------------------


def _seal_key(call: Call, digest: bytes) -> bytes:
    return kbkdf384(call.provisioned().masking_key, _SEAL_LABEL, digest, 32)


_SEAL_HEADER = struct.Struct(">8sHI48s")   # magic, PCR bank, PCR mask, policy digest
_IV_LEN, _TAG_LEN = 12, 16


def cvm_seal(call: Call, req: messages.DdiCvmSealReq) -> messages.DdiCvmSealResp:
    state = _state(call)
    policy = state.policies.get(req.workload.hex())
    if policy is None:
        raise DdiFailure(VendorStatus.CvmPolicyNotFound, f"no policy for workload {req.workload!r}")
    digest = pcr.policy_digest(policy.pcr_bank, policy.pcr_mask, bytes.fromhex(policy.pcr_values))
    header = _SEAL_HEADER.pack(_SEAL_MAGIC, policy.pcr_bank, policy.pcr_mask, digest)
    iv = os.urandom(_IV_LEN)
    sealed = header + iv + AESGCM(_seal_key(call, digest)).encrypt(iv, req.data, header)
    return messages.DdiCvmSealResp(sealed=sealed)


def cvm_unseal(call: Call, req: messages.DdiCvmUnsealReq) -> messages.DdiCvmUnsealResp:
    state = _state(call)
    _check_recipient(req.recipient)
    blob, size = req.sealed, _SEAL_HEADER.size
    if len(blob) < size + _IV_LEN + _TAG_LEN or not blob.startswith(_SEAL_MAGIC):
        raise DdiFailure(VendorStatus.CvmSealedBlobInvalid, "not a sealed blob")
    _, bank, mask, digest = _SEAL_HEADER.unpack_from(blob)
    verified = _verify(call, state, req.evidence)
    quoted = [verified.values.get((bank, i)) for i in pcr.pcrs_of(mask)]
    if None in quoted or pcr.policy_digest(bank, mask, b"".join(v for v in quoted if v)) != digest:
        raise DdiFailure(VendorStatus.CvmPolicyMismatch, f"VM {verified.vm_id!r}: quoted PCRs do not satisfy the sealing policy")
    try:
        data = AESGCM(_seal_key(call, digest)).decrypt(blob[size:size + _IV_LEN], blob[size + _IV_LEN:],
                                                       blob[:size])
    except InvalidTag:
        raise DdiFailure(VendorStatus.CvmSealedBlobInvalid, "sealed blob does not authenticate in this partition") from None
    signed = statement.build(call.identity.attestation_key(), verified.claims("unseal"))
    return messages.DdiCvmUnsealResp(wrapped=_wrapped(data, req.recipient, UNSEAL_CONTEXT), statement=signed)


# -- owner ---------------------------------------------------------------------------------------


def cvm_set_owner(call: Call, req: messages.DdiCvmSetOwnerReq) -> messages.DdiCvmSetOwnerResp:
    state = _state(call)
    if state.owner_pub:
        raise DdiFailure(VendorStatus.CvmOwnerAlreadySet, "owner key already registered")
    try:
        owner.load_p384_public(req.owner_pub)
    except ValueError as exc:
        raise DdiFailure(DdiStatus.InvalidArg, f"owner key: {exc}") from None
    state.owner_pub = req.owner_pub.hex()
    _save(call, state)
    return messages.DdiCvmSetOwnerResp()


def _owner_body(call: Call, state: CvmState, op: str,
                req: messages.DdiCvmRegisterVmReq | messages.DdiCvmSetPolicyReq) -> Any:
    """The decoded, authenticated, fresh body of an owner command (its seq is recorded on commit)."""
    if not state.owner_pub:
        raise DdiFailure(VendorStatus.CvmOwnerNotSet, "no owner key registered")
    try:
        body = mbor.decode(OWNER_BODIES[op], req.body)
    except mbor.MborError as exc:
        raise DdiFailure(DdiStatus.DdiDecodeFailed, f"{op} body: {exc}") from None
    if not owner.verify(bytes.fromhex(state.owner_pub), BY_NAME[op].code, req.body, req.owner_sig):
        raise DdiFailure(VendorStatus.CvmOwnerSignatureInvalid, f"{op}: owner signature does not verify")
    if body.seq <= state.last_seq:
        raise DdiFailure(VendorStatus.CvmOwnerSequenceReplayed, f"{op}: seq {body.seq} <= last accepted {state.last_seq}")
    return body


def _commit_owner_change(call: Call, state: CvmState, seq: int) -> None:
    state.last_seq = seq
    state.generation += 1
    _save(call, state)


def cvm_register_vm(call: Call, req: messages.DdiCvmRegisterVmReq) -> messages.DdiCvmRegisterVmResp:
    state = _state(call)
    body: messages.CvmRegisterVmBody = _owner_body(call, state, "CvmRegisterVm", req)
    if not body.vm_id:
        raise DdiFailure(DdiStatus.InvalidArg, "empty vm_id")
    try:
        tpm2.parse_public(body.ek_public)
        ak = tpm2.parse_public(body.ak_public)
    except tpm2.Tpm2Error as exc:
        raise DdiFailure(DdiStatus.InvalidArg, f"VM {body.vm_id!r}: EK or AK does not parse: {exc}") from None
    if ak.attributes & tpm2.AK_ATTRIBUTES != tpm2.AK_ATTRIBUTES:
        raise DdiFailure(DdiStatus.InvalidArg, f"VM {body.vm_id!r}: AK is not a restricted fixed signing key")
    state.vms[body.vm_id.hex()] = VmRecord(body.ek_public.hex(), body.ak_public.hex())
    _commit_owner_change(call, state, body.seq)
    return messages.DdiCvmRegisterVmResp()


def cvm_set_policy(call: Call, req: messages.DdiCvmSetPolicyReq) -> messages.DdiCvmSetPolicyResp:
    state = _state(call)
    body: messages.CvmSetPolicyBody = _owner_body(call, state, "CvmSetPolicy", req)
    if not body.workload:
        raise DdiFailure(DdiStatus.InvalidArg, "empty workload name")
    try:
        pcr.check_policy_shape(body.pcr_bank, body.pcr_mask, body.pcr_values)
    except ValueError as exc:
        raise DdiFailure(DdiStatus.InvalidArg, f"workload {body.workload!r}: {exc}") from None
    previous = state.policies.get(body.workload.hex())
    version = previous.version + 1 if previous else 1
    state.policies[body.workload.hex()] = Policy(body.vm_id.hex(), body.pcr_bank, body.pcr_mask,
                                                 body.pcr_values.hex(), body.key_tag, version)
    _commit_owner_change(call, state, body.seq)
    return messages.DdiCvmSetPolicyResp(version=version)


def cvm_get_owner_info(call: Call, req: messages.DdiCvmGetOwnerInfoReq) -> messages.DdiCvmGetOwnerInfoResp:
    state = _state(call)
    return messages.DdiCvmGetOwnerInfoResp(owner_set=bool(state.owner_pub), last_seq=state.last_seq,
                                           vms=len(state.vms), policies=len(state.policies))


HANDLERS: dict[str, Handler] = {
    "CvmGetNonce": cvm_get_nonce,
    "CvmVerifyEvidence": cvm_verify_evidence,
    "CvmReleaseKey": cvm_release_key,
    "CvmSeal": cvm_seal,
    "CvmUnseal": cvm_unseal,
    "CvmSetOwner": cvm_set_owner,
    "CvmRegisterVm": cvm_register_vm,
    "CvmSetPolicy": cvm_set_policy,
    "CvmGetOwnerInfo": cvm_get_owner_info,
}
