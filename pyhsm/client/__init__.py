"""The host-side DDI client: one typed method per DDI operation over any ``Transport``.

Like the SDK (docs/ddi.md, "Session side band"), a client holds at most one session. Each command carries the side band
its opcode needs: NoSession ops go without a session id, OpenSession with the Open kind, CloseSession
with Close and the id, everything else In-session with the id. The id comes from the OpenSession
completion. Failures raise ``DdiError`` (a DDI status inside a successful completion) or
``DeviceError`` (a nonzero CQE status, no DDI answer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import load_der_x509_certificate

from pyhsm.client.transport import Transport
from pyhsm.protocol.cvm import owner as cvm_owner
from pyhsm.protocol.ddi import envelope, messages, physical
from pyhsm.protocol.ddi.credential_seal import seal
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.optable import BY_NAME, OPS
from pyhsm.protocol.ddi.schemas import SessionKind
from pyhsm.protocol.ddi.schemas_vendor import OWNER_BODIES, VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import (
    AesKeySize,
    AesOp,
    DeviceKind,
    EccCurve,
    HashAlgorithm,
    KeyClass,
    KeyType,
    RsaOpType,
    Usage,
)
from pyhsm.protocol.link import SessionFlags, SessionOp

__all__ = ["DdiError", "DeviceError", "EncodeError", "HsmClient", "Usage", "cvm_evidence", "key_properties"]

REV = (1, 0)
_UNSET: Any = object()
_DIGEST_ALGOS = {20: HashAlgorithm.Sha1, 32: HashAlgorithm.Sha256, 48: HashAlgorithm.Sha384, 64: HashAlgorithm.Sha512}
_USAGE_BITS = {Usage.ENCRYPT_DECRYPT: (2, 3), Usage.SIGN_VERIFY: (4, 5), Usage.UNWRAP: (8,), Usage.DERIVE: (6,)}


class DdiError(Exception):
    """The device answered the command with a DDI error status."""

    def __init__(self, op: str, status: int) -> None:
        known = {int(s): s for enum_cls in (DdiStatus, VendorStatus) for s in enum_cls}
        self.status: DdiStatus | VendorStatus | int = known.get(status, status)
        self.name = getattr(self.status, "name", f"unknown status 0x{status:08x}")
        super().__init__(f"{op}: {self.name} (0x{status:08X})")


class EncodeError(Exception):
    """The request has no form in the device's field formats (Physical); nothing was sent."""

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"{op}: cannot encode for a Physical device: {reason}")


class DeviceError(Exception):
    """The command completed with a nonzero CQE status (no DDI response)."""

    def __init__(self, op: str, status: int) -> None:
        self.status = status
        super().__init__(f"{op}: device status 0x{status:03X}")


def key_properties(usage: Usage, *, session_only: bool = False,
                   label: bytes = b"") -> messages.DdiTargetKeyProperties:
    """A DdiTargetKeyProperties with one usage class."""
    value = sum(1 << bit for bit in _USAGE_BITS[usage]) | int(session_only)
    return messages.DdiTargetKeyProperties(
        key_metadata=messages.DdiTargetKeyMetadata(blob=value.to_bytes(16, "little")), key_label=label)


@dataclass(frozen=True)
class OpenedSession:
    sess_id: int
    short_app_id: int
    bmk_session: bytes
    seed: bytes


class HsmClient:
    def __init__(self, transport: Transport, kind: DeviceKind | None = None) -> None:
        """``kind``: the device's profile if known (else asked of the device when first needed)."""
        self.transport = transport
        self.session_id: int | None = None
        self.kind = kind

    # -- the generic command path ----------------------------------------------------------------

    def call(self, op: str, /, **fields: Any) -> Any:
        """Send DDI op ``op`` with request ``fields``; returns the decoded response data."""
        return self.request(op, fields)

    def request(self, op: str, fields: dict[str, Any], *, sess_id: Any = _UNSET, rev: Any = _UNSET) -> Any:
        """``call`` with the header's session id and revision overridable (None = absent), as a raw
        DDI caller may set them. The file-handle rules of the vendor's driver apply first: a session
        id on a NoSession or Open op is InvalidArg, Open with a session already open is
        FileHandleSessionLimitReached, an in-session op without one FileHandleNoExistingSession and
        with another id FileHandleSessionIdDoesNotMatch. Against a Physical device the request is
        converted to the device's field formats (``EncodeError`` if it has none) and the response
        back (``pyhsm.protocol.ddi.physical``)."""
        spec = BY_NAME[op]
        in_session = spec.kind in (SessionKind.IN_SESSION, SessionKind.CLOSE)
        header_sess = (self.session_id if in_session else None) if sess_id is _UNSET else sess_id
        if in_session:
            if self.session_id is None:
                raise DdiError(op, DdiStatus.FileHandleNoExistingSession)
            if header_sess != self.session_id:
                raise DdiError(op, DdiStatus.FileHandleSessionIdDoesNotMatch)
        elif spec.kind == SessionKind.OPEN and self.session_id is not None:
            raise DdiError(op, DdiStatus.FileHandleSessionLimitReached)
        elif header_sess is not None:
            raise DdiError(op, DdiStatus.InvalidArg)
        data = spec.request(**fields)
        converting = self._physical(op)
        if converting:
            try:
                data = physical.to_device(op, "request", data)
            except DdiFailure as failure:
                raise EncodeError(op, failure.reason) from None
        if rev is _UNSET:
            rev = None if op == "GetApiRev" else REV
        payload = envelope.encode_request(spec.code, spec.request, data,
                                          rev=None if rev is None else envelope.rev(*rev), sess_id=header_sess)
        flags = SessionFlags(SessionOp(int(spec.kind)), in_session)
        completion = self.transport.submit(payload, flags, header_sess or 0)
        if spec.kind == SessionKind.CLOSE and completion.flags.safe_to_close:
            self.session_id = None
        if completion.status:
            raise DeviceError(op, completion.status)
        header, data = envelope.decode_response(completion.payload, spec.response)
        if header.status:
            raise DdiError(op, header.status)
        if spec.kind == SessionKind.OPEN:
            if not completion.flags.id_valid:
                raise DeviceError(op, 0x703)
            self.session_id = completion.session_id
        return physical.from_device(op, "response", data) if converting else data

    def _physical(self, op: str) -> bool:
        """Whether ``op``'s messages take the Physical formats; learns the device kind (GetDeviceInfo)
        the first time it matters, as the vendor's SDK does when it opens a device."""
        if op in ("GetApiRev", "GetDeviceInfo"):
            return False
        if self.kind is None:
            self.kind = DeviceKind(self.call("GetDeviceInfo").kind)
        return self.kind is DeviceKind.Physical

    # -- information -----------------------------------------------------------------------------

    def get_api_rev(self) -> messages.DdiGetApiRevResp:
        return self.call("GetApiRev")

    def get_device_info(self) -> messages.DdiGetDeviceInfoResp:
        return self.call("GetDeviceInfo")

    def get_cert_chain_info(self, slot_id: int = 0) -> messages.DdiGetCertChainInfoResp:
        return self.call("GetCertChainInfo", slot_id=slot_id)

    def get_certificate(self, cert_id: int, slot_id: int = 0) -> bytes:
        return self.call("GetCertificate", slot_id=slot_id, cert_id=cert_id).certificate

    def attestation_public_key(self) -> ec.EllipticCurvePublicKey:
        """The public key of the last certificate of the chain (it signs reports)."""
        count = self.get_cert_chain_info().num_certs
        key = load_der_x509_certificate(self.get_certificate(count - 1)).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    # -- credentials and sessions ----------------------------------------------------------------

    def get_establish_cred_encryption_key(self) -> messages.DdiGetEstablishCredEncryptionKeyResp:
        return self.call("GetEstablishCredEncryptionKey")

    def get_session_encryption_key(self) -> messages.DdiGetSessionEncryptionKeyResp:
        return self.call("GetSessionEncryptionKey")

    def establish_credential(self, app_id: bytes, pin: bytes, masked_bk3: bytes,
                             pota_key: ec.EllipticCurvePrivateKey, *, bmk: bytes = b"",
                             masked_unwrapping_key: bytes = b"") -> bytes:
        """Provision the partition; returns the partition BMK blob."""
        point = self.attestation_public_key().public_bytes(serialization.Encoding.X962,
                                                           serialization.PublicFormat.UncompressedPoint)
        r, s = decode_dss_signature(pota_key.sign(point, ec.ECDSA(hashes.SHA384())))
        pota_der = pota_key.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        device = self.get_establish_cred_encryption_key()
        sealed = seal(device.pub_key.der, device.nonce, [app_id, pin])
        cred = messages.DdiEncryptedEstablishCredential(
            encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1], iv=sealed.iv, nonce=device.nonce,
            tag=sealed.tag)
        return self.call("EstablishCredential", encrypted_credential=cred, pub_key=_p384(sealed.client_public_der),
                         masked_bk3=masked_bk3, bmk=bmk, masked_unwrapping_key=masked_unwrapping_key,
                         pota_sig=r.to_bytes(48, "big") + s.to_bytes(48, "big"),
                         pota_pub_key=_p384(pota_der)).bmk

    def _session_credential(self, app_id: bytes, pin: bytes,
                            seed: bytes) -> tuple[messages.DdiEncryptedSessionCredential, messages.DdiDerPublicKey]:
        device = self.get_session_encryption_key()
        sealed = seal(device.pub_key.der, device.nonce, [app_id, pin, seed])
        cred = messages.DdiEncryptedSessionCredential(
            encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1], encrypted_seed=sealed.pieces[2],
            iv=sealed.iv, nonce=device.nonce, tag=sealed.tag)
        return cred, _p384(sealed.client_public_der)

    def open_session(self, app_id: bytes, pin: bytes, seed: bytes | None = None) -> OpenedSession:
        seed = seed if seed is not None else os.urandom(48)
        cred, pub = self._session_credential(app_id, pin, seed)
        data: messages.DdiOpenSessionResp = self.call("OpenSession", encrypted_credential=cred, pub_key=pub)
        return OpenedSession(data.sess_id, data.short_app_id, data.bmk_session, seed)

    def reopen_session(self, sess_id: int, app_id: bytes, pin: bytes, seed: bytes,
                       bmk_session: bytes) -> messages.DdiReopenSessionResp:
        self.session_id = sess_id
        cred, pub = self._session_credential(app_id, pin, seed)
        return self.call("ReopenSession", encrypted_credential=cred, pub_key=pub, bmk_session=bmk_session)

    def close_session(self) -> None:
        self.call("CloseSession")

    def change_pin(self, new_pin: bytes) -> None:
        device = self.get_session_encryption_key()
        sealed = seal(device.pub_key.der, device.nonce, [new_pin])
        enc = messages.DdiEncryptedPin(encrypted_pin=sealed.pieces[0], iv=sealed.iv, nonce=device.nonce,
                                       tag=sealed.tag)
        self.call("ChangePin", new_pin=enc, pub_key=_p384(sealed.client_public_der))

    # -- keys ------------------------------------------------------------------------------------

    def ecc_generate_key_pair(self, curve: EccCurve, usage: Usage = Usage.SIGN_VERIFY, *, tag: int | None = None,
                              session_only: bool = False, label: bytes = b"") -> messages.DdiEccGenerateKeyPairResp:
        return self.call("EccGenerateKeyPair", curve=int(curve), key_tag=tag,
                         key_properties=key_properties(usage, session_only=session_only, label=label))

    def aes_generate_key(self, size: AesKeySize, *, tag: int | None = None, session_only: bool = False,
                         label: bytes = b"") -> messages.DdiAesGenerateKeyResp:
        return self.call("AesGenerateKey", key_size=int(size), key_tag=tag,
                         key_properties=key_properties(Usage.ENCRYPT_DECRYPT, session_only=session_only,
                                                       label=label))

    def open_key(self, tag: int) -> messages.DdiOpenKeyResp:
        return self.call("OpenKey", key_tag=tag)

    def delete_key(self, key_id: int) -> None:
        self.call("DeleteKey", key_id=key_id)

    def unmask_key(self, masked_key: bytes) -> messages.DdiUnmaskKeyResp:
        return self.call("UnmaskKey", masked_key=masked_key)

    def get_unwrapping_key(self) -> messages.DdiGetUnwrappingKeyResp:
        return self.call("GetUnwrappingKey")

    def rsa_unwrap(self, kek_id: int, wrapped_blob: bytes, key_class: KeyClass, usage: Usage, *,
                   hash_algorithm: HashAlgorithm = HashAlgorithm.Sha256, tag: int | None = None,
                   session_only: bool = False) -> messages.DdiRsaUnwrapResp:
        return self.call("RsaUnwrap", key_id=kek_id, wrapped_blob=wrapped_blob, wrapped_blob_key_class=int(key_class),
                         wrapped_blob_padding=1, wrapped_blob_hash_algorithm=int(hash_algorithm), key_tag=tag,
                         key_properties=key_properties(usage, session_only=session_only))

    def rsa_mod_exp(self, key_id: int, y: bytes, op: RsaOpType) -> bytes:
        return self.call("RsaModExp", key_id=key_id, y=y, op_type=int(op)).x

    def ecc_sign(self, key_id: int, digest: bytes, digest_algo: HashAlgorithm | None = None) -> bytes:
        """``digest_algo`` defaults to the hash whose output has the digest's length (a Physical device
        reads as many digest bytes as the named hash produces)."""
        algo = digest_algo or _DIGEST_ALGOS.get(len(digest), HashAlgorithm.Sha384)
        return self.call("EccSign", key_id=key_id, digest=digest, digest_algo=int(algo)).signature

    def ecdh_key_exchange(self, key_id: int, peer_der: bytes, key_type: KeyType, *, tag: int | None = None,
                          session_only: bool = False) -> messages.DdiEcdhKeyExchangeResp:
        return self.call("EcdhKeyExchange", priv_key_id=key_id, pub_key_der=peer_der, key_type=int(key_type),
                         key_tag=tag, key_properties=key_properties(Usage.DERIVE, session_only=session_only))

    def aes_encrypt_decrypt(self, key_id: int, op: AesOp, msg: bytes, iv: bytes) -> messages.DdiAesEncryptDecryptResp:
        return self.call("AesEncryptDecrypt", key_id=key_id, op=int(op), msg=msg, iv=iv)

    def hkdf_derive(self, key_id: int, hash_algorithm: HashAlgorithm, key_type: KeyType, usage: Usage, *,
                    salt: bytes | None = None, info: bytes | None = None, tag: int | None = None,
                    session_only: bool = False) -> messages.DdiHkdfDeriveResp:
        return self.call("HkdfDerive", key_id=key_id, hash_algorithm=int(hash_algorithm), salt=salt, info=info,
                         key_type=int(key_type), key_tag=tag,
                         key_properties=key_properties(usage, session_only=session_only))

    def kbkdf_derive(self, key_id: int, hash_algorithm: HashAlgorithm, key_type: KeyType, usage: Usage, *,
                     label: bytes | None = None, context: bytes | None = None, tag: int | None = None,
                     session_only: bool = False) -> messages.DdiKbkdfCounterHmacDeriveResp:
        return self.call("KbkdfCounterHmacDerive", key_id=key_id, hash_algorithm=int(hash_algorithm), label=label,
                         context=context, key_type=int(key_type), key_tag=tag,
                         key_properties=key_properties(usage, session_only=session_only))

    def hmac(self, key_id: int, msg: bytes) -> bytes:
        return self.call("Hmac", key_id=key_id, msg=msg).tag

    def attest_key(self, key_id: int, report_data: bytes) -> bytes:
        return self.call("AttestKey", key_id=key_id, report_data=report_data).report

    # -- owner backup key ------------------------------------------------------------------------

    def init_bk3(self, bk3: bytes) -> bytes:
        return self.call("InitBk3", bk3=bk3).masked_bk3

    def set_sealed_bk3(self, sealed: bytes) -> None:
        self.call("SetSealedBk3", sealed_bk3=sealed)

    def get_sealed_bk3(self) -> bytes:
        return self.call("GetSealedBk3").sealed_bk3

    # -- post-quantum keys (docs/vendor-ops.md) --------------------------------------------------

    def mldsa_generate_key(self, params: int, *, tag: int | None = None, session_only: bool = False,
                           label: bytes = b"", seed: bytes | None = None) -> messages.DdiMlDsaGenerateKeyResp:
        return self.call("MlDsaGenerateKey", params=params, key_tag=tag, seed=seed,
                         key_properties=key_properties(Usage.SIGN_VERIFY, session_only=session_only, label=label))

    def mldsa_sign(self, key_id: int, message: bytes, context: bytes | None = None) -> bytes:
        return self.call("MlDsaSign", key_id=key_id, message=message, context=context).signature

    def mldsa_get_public_key(self, key_id: int) -> bytes:
        return self.call("MlDsaGetPublicKey", key_id=key_id).pub_key

    def mlkem_generate_key(self, params: int, *, tag: int | None = None, session_only: bool = False,
                           label: bytes = b"", seed: bytes | None = None) -> messages.DdiMlKemGenerateKeyResp:
        return self.call("MlKemGenerateKey", params=params, key_tag=tag, seed=seed,
                         key_properties=key_properties(Usage.DERIVE, session_only=session_only, label=label))

    def mlkem_decapsulate(self, key_id: int, ciphertext: bytes, *, tag: int | None = None,
                          session_only: bool = False) -> messages.DdiMlKemDecapsulateResp:
        return self.call("MlKemDecapsulate", key_id=key_id, ciphertext=ciphertext, key_tag=tag,
                         key_properties=key_properties(Usage.DERIVE, session_only=session_only))

    def mlkem_get_public_key(self, key_id: int) -> bytes:
        return self.call("MlKemGetPublicKey", key_id=key_id).pub_key

    # -- confidential VMs (docs/vendor-ops.md) ---------------------------------------------------

    def cvm_get_nonce(self, vm_id: bytes) -> bytes:
        return self.call("CvmGetNonce", vm_id=vm_id).nonce

    def cvm_verify_evidence(self, evidence: messages.CvmEvidence) -> bytes:
        """``evidence``: ``cvm_evidence(...)``; returns the countersigned statement."""
        return self.call("CvmVerifyEvidence", evidence=evidence).statement

    def cvm_release_key(self, evidence: messages.CvmEvidence, workload: bytes, kem_pub: bytes,
                        ecdh_pub: bytes) -> messages.DdiCvmReleaseKeyResp:
        return self.call("CvmReleaseKey", evidence=evidence, workload=workload,
                         recipient=messages.CvmRecipient(kem_pub=kem_pub, ecdh_pub=ecdh_pub))

    def cvm_seal(self, workload: bytes, data: bytes) -> bytes:
        return self.call("CvmSeal", workload=workload, data=data).sealed

    def cvm_unseal(self, evidence: messages.CvmEvidence, sealed: bytes, kem_pub: bytes,
                   ecdh_pub: bytes) -> messages.DdiCvmUnsealResp:
        return self.call("CvmUnseal", evidence=evidence, sealed=sealed,
                         recipient=messages.CvmRecipient(kem_pub=kem_pub, ecdh_pub=ecdh_pub))

    def cvm_set_owner(self, owner_public_der: bytes) -> None:
        self.call("CvmSetOwner", owner_pub=owner_public_der)

    def cvm_get_owner_info(self) -> messages.DdiCvmGetOwnerInfoResp:
        return self.call("CvmGetOwnerInfo")

    def cvm_owner_command(self, op: str, owner_key: ec.EllipticCurvePrivateKey,
                          **body: Any) -> messages.DdiCvmRegisterVmResp | messages.DdiCvmSetPolicyResp:
        """Send owner command ``op`` (CvmRegisterVm, CvmSetPolicy) with ``body`` fields, signed."""
        return self.cvm_submit(cvm_owner.signed_command(op, owner_key, **body))

    def cvm_submit(self,
                   command: cvm_owner.SignedCommand) -> messages.DdiCvmRegisterVmResp | messages.DdiCvmSetPolicyResp:
        """Send an owner command signed elsewhere (e.g. relayed by the guest agent)."""
        spec = OPS.get(command.opcode)
        if spec is None or spec.name not in OWNER_BODIES:
            raise ValueError(f"opcode {command.opcode} is not an owner command")
        return self.call(spec.name, body=command.body, owner_sig=command.signature)

    def cvm_register_vm(self, owner_key: ec.EllipticCurvePrivateKey, seq: int, vm_id: bytes, ek_public: bytes,
                        ak_public: bytes) -> None:
        """``ek_public``, ``ak_public``: TPM2B_PUBLIC (tpm2_createek -u, tpm2_createak -u)."""
        self.cvm_owner_command("CvmRegisterVm", owner_key, seq=seq, vm_id=vm_id, ek_public=ek_public,
                               ak_public=ak_public)

    def cvm_set_policy(self, owner_key: ec.EllipticCurvePrivateKey, seq: int, workload: bytes, pcr_bank: int,
                       pcr_mask: int, pcr_values: bytes, *, vm_id: bytes = b"", key_tag: int | None = None) -> int:
        response = self.cvm_owner_command("CvmSetPolicy", owner_key, seq=seq, workload=workload, vm_id=vm_id,
                                          pcr_bank=pcr_bank, pcr_mask=pcr_mask, pcr_values=pcr_values,
                                          key_tag=key_tag)
        return cast(messages.DdiCvmSetPolicyResp, response).version  # the response of CvmSetPolicy


def cvm_evidence(vm_id: bytes, attest: bytes, signature: bytes, pcr_values: bytes) -> messages.CvmEvidence:
    """The evidence structure of the CVM ops: a TPM2 quote (TPMS_ATTEST, TPMT_SIGNATURE) and PCR values."""
    return messages.CvmEvidence(vm_id=vm_id, attest=attest, signature=signature, pcr_values=pcr_values)


def _p384(der: bytes) -> messages.DdiDerPublicKey:
    return messages.DdiDerPublicKey(der=der, key_kind=int(KeyType.Ecc384Public))
