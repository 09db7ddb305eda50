"""Credentials and sessions (docs/ddi.md, "Credential encryption" and "Masking-key hierarchy"): establish, open, reopen, close, change PIN.

PIN lockout (the spec is silent; our choice): after ``MAX_FAILED_LOGINS`` consecutive OpenSession or
ReopenSession attempts whose tag verified but whose ID/PIN did not match, the partition answers
LoginFailed to every further OpenSession/ReopenSession until an NSSR wipes the credential. The
counter is persisted, so a backend restart does not reset it; a successful login resets it.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pyhsm.backend.ddi import masking, provisioning, rsa_keygen
from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keyformat import KeyFormatError, material_to_private, spki
from pyhsm.backend.ddi.keys import INTERNAL_APP, KeyEntry
from pyhsm.backend.ddi.vault import Provisioning, generated_entry
from pyhsm.protocol.ddi import messages, physical
from pyhsm.protocol.ddi.credential_seal import open_sealed, parse_client_key
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import Flag, KeyType

MAX_FAILED_LOGINS = 5
_UNWRAPPING_FLAGS = Flag.UNWRAP | Flag.WRAP | Flag.LOCAL


def _credential_key(call: Call, key_id: int | None) -> tuple[messages.DdiDerPublicKey, bytes, bytes]:
    """(pub_key, nonce, pub_key_signature) of a credential-encryption key's response."""
    if key_id is None:
        raise DdiFailure(DdiStatus.KeyNotFound, "the establish-credential key was already used")
    key = call.vault.device_private(key_id)
    der = spki(key)
    return (messages.DdiDerPublicKey(der=der, key_kind=int(KeyType.Ecc384Public)), call.vault.nonce,
            _endorsement(call, der) if call.physical else b"")


def _endorsement(call: Call, der: bytes) -> bytes:
    """Physical: r || s (big-endian here) of ECDSA-SHA-384 by the partition-ID (attestation) key over
    the key's raw little-endian X || Y (its Physical wire form)."""
    signature = call.identity.attestation_key().sign(physical.ecc_public_to_raw(der), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(signature)
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def get_establish_cred_encryption_key(call: Call, req: messages.DdiGetEstablishCredEncryptionKeyReq
                                      ) -> messages.DdiGetEstablishCredEncryptionKeyResp:
    pub_key, nonce, signature = _credential_key(call, call.vault.establish_key_id)
    return messages.DdiGetEstablishCredEncryptionKeyResp(pub_key=pub_key, nonce=nonce, pub_key_signature=signature)


def get_session_encryption_key(call: Call, req: messages.DdiGetSessionEncryptionKeyReq
                               ) -> messages.DdiGetSessionEncryptionKeyResp:
    if call.vault.credential is None:
        raise DdiFailure(DdiStatus.CredentialsNotEstablished, "no credential yet")
    pub_key, nonce, signature = _credential_key(call, call.vault.session_key_id)
    return messages.DdiGetSessionEncryptionKeyResp(pub_key=pub_key, nonce=nonce, pub_key_signature=signature)


def _check_lengths(**pieces: tuple[bytes, int]) -> None:
    for name, (value, length) in pieces.items():
        if len(value) != length:
            raise DdiFailure(DdiStatus.InvalidArg, f"{name} must be {length} bytes")


def _decrypt(call: Call, key_id: int, pub_key: messages.DdiDerPublicKey, pieces: list[bytes], iv: bytes, nonce: bytes,
             tag: bytes) -> list[bytes]:
    """Nonce, client key, tag; then the nonce is replaced (before any ID/PIN comparison)."""
    if not hmac.compare_digest(nonce, call.vault.nonce):
        raise DdiFailure(DdiStatus.NonceMismatch, "stale nonce")
    client = parse_client_key(pub_key.der, pub_key.key_kind)
    plain = open_sealed(call.vault.device_private(key_id), call.vault.nonce, client, pieces, iv, nonce, tag)
    call.vault.renew_nonce()
    return plain


def _verify_pota(call: Call, req: messages.DdiEstablishCredentialReq) -> None:
    if req.pota_pub_key.key_kind != KeyType.Ecc384Public or len(req.pota_sig) != 96:
        raise DdiFailure(DdiStatus.InvalidArg, "POTA key must be Ecc384Public with a 96-byte r||s signature")
    try:
        pota = serialization.load_der_public_key(req.pota_pub_key.der)
        if not isinstance(pota, ec.EllipticCurvePublicKey) or not isinstance(pota.curve, ec.SECP384R1):
            raise ValueError("not P-384")
        point = call.identity.attestation_key().public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        sig = encode_dss_signature(int.from_bytes(req.pota_sig[:48], "big"), int.from_bytes(req.pota_sig[48:], "big"))
        pota.verify(sig, point, ec.ECDSA(hashes.SHA384()))
    except (ValueError, TypeError, InvalidSignature):
        raise DdiFailure(DdiStatus.InvalidArg, "POTA endorsement does not verify") from None


def establish_credential(call: Call, req: messages.DdiEstablishCredentialReq) -> messages.DdiEstablishCredentialResp:
    vault = call.vault
    if not req.masked_bk3:
        raise DdiFailure(DdiStatus.InvalidArg, "masked BK3 is required")
    _verify_pota(call, req)
    if vault.establish_key_id is None:
        raise DdiFailure(DdiStatus.KeyNotFound, "credentials were already established")
    cred = req.encrypted_credential
    _check_lengths(encrypted_id=(cred.encrypted_id, 16), encrypted_pin=(cred.encrypted_pin, 16), iv=(cred.iv, 16))
    app_id, pin = _decrypt(call, vault.establish_key_id, req.pub_key, [cred.encrypted_id, cred.encrypted_pin],
                           cred.iv, cred.nonce, cred.tag)
    if not any(app_id) or not any(pin) or app_id == INTERNAL_APP:
        raise DdiFailure(DdiStatus.InvalidAppCredentials, "all-zero or reserved ID or PIN")
    if vault.provisioning is not None:
        raise DdiFailure(DdiStatus.PartitionAlreadyProvisioned, "already provisioned")
    prov, unwrapping = _provision(call, req)
    vault.keys.remove(vault.establish_key_id)
    vault.establish_key_id = None
    prov.unwrapping_key_id = vault.keys.insert(unwrapping)
    vault.credential = (app_id, pin)
    vault.failed_logins = 0
    vault.provisioning = prov
    call.dirty = True
    return messages.DdiEstablishCredentialResp(bmk=prov.bmk)


def _provision(call: Call, req: messages.DdiEstablishCredentialReq) -> tuple[Provisioning, KeyEntry]:
    """Derive every provisioning secret without touching the vault (so a failure changes nothing)."""
    try:
        _, bk3 = masking.unmask(call.bk_boot, req.masked_bk3)
        bk_part = provisioning.bk_partition(bk3, req.pota_pub_key.der)
        bmk = req.bmk or provisioning.new_partition_bmk(bk_part)
        meta, mk = masking.unmask(bk_part, bmk)
        if len(mk) != masking.MASKING_KEY_LEN:
            raise masking.MaskError("partition masking key has the wrong length")
        if req.masked_unwrapping_key:
            meta, material = masking.unmask(mk, req.masked_unwrapping_key)
            if meta.key_type != KeyType.Rsa2kPrivate or meta.app_id != INTERNAL_APP:
                raise masking.MaskError("not a masked unwrapping key")
            unwrapping = generated_entry(KeyType.Rsa2kPrivate, material_to_private(KeyType.Rsa2kPrivate, material),
                                         Flag(meta.flags), INTERNAL_APP)
            masked_unwrapping = req.masked_unwrapping_key
        else:
            key = rsa_keygen.generate(2048)
            unwrapping = generated_entry(KeyType.Rsa2kPrivate, key, _UNWRAPPING_FLAGS, INTERNAL_APP)
            masked_unwrapping = masking.mask(mk, unwrapping.material, masking.Metadata(
                KeyType.Rsa2kPrivate, int(_UNWRAPPING_FLAGS), 0, INTERNAL_APP, len(unwrapping.material)))
    except (masking.MaskError, KeyFormatError) as exc:
        raise DdiFailure(DdiStatus.MaskedKeyDecodeFailed, str(exc)) from None
    return Provisioning(bk_part, mk, bmk, -1, masked_unwrapping), unwrapping


def _login(call: Call, cred: messages.DdiEncryptedSessionCredential, pub_key: messages.DdiDerPublicKey) -> bytes:
    """Check a session credential; returns the 48-byte seed."""
    vault = call.vault
    if vault.credential is None or vault.provisioning is None:
        raise DdiFailure(DdiStatus.CredentialsNotEstablished, "no credential yet")
    if vault.failed_logins >= MAX_FAILED_LOGINS:
        raise DdiFailure(DdiStatus.LoginFailed, "locked out after too many wrong credentials")
    _check_lengths(encrypted_id=(cred.encrypted_id, 16), encrypted_pin=(cred.encrypted_pin, 16),
                   encrypted_seed=(cred.encrypted_seed, 48), iv=(cred.iv, 16))
    app_id, pin, seed = _decrypt(call, vault.session_key_id, pub_key,
                                 [cred.encrypted_id, cred.encrypted_pin, cred.encrypted_seed],
                                 cred.iv, cred.nonce, cred.tag)
    good = hmac.compare_digest(app_id + pin, vault.credential[0] + vault.credential[1])
    if not good:
        vault.failed_logins += 1
        call.dirty = True
        raise DdiFailure(DdiStatus.InvalidAppCredentials, f"wrong ID or PIN ({vault.failed_logins} in a row)")
    if vault.failed_logins:
        vault.failed_logins = 0
        call.dirty = True
    return seed


def open_session(call: Call, req: messages.DdiOpenSessionReq) -> messages.DdiOpenSessionResp:
    seed = _login(call, req.encrypted_credential, req.pub_key)
    bk_sess = provisioning.bk_session(call.provisioned().bk_partition, seed)
    masking_key, bmk_session = provisioning.new_session_bmk(bk_sess)
    session = call.vault.sessions.allocate(call.rev)
    session.seed, session.masking_key = seed, masking_key
    call.opened = session
    return messages.DdiOpenSessionResp(sess_id=session.sess_id, short_app_id=session.short_app_id,
                                       bmk_session=bmk_session)


def reopen_session(call: Call, req: messages.DdiReopenSessionReq) -> messages.DdiReopenSessionResp:
    session = call.active_session()
    call.provisioned()   # PartitionNotProvisioned until the credential is established again (after NSSR)
    seed = _login(call, req.encrypted_credential, req.pub_key)
    bk_sess = provisioning.bk_session(call.provisioned().bk_partition, seed)
    try:
        _, masking_key = masking.unmask(bk_sess, req.bmk_session)
    except masking.MaskError as exc:
        raise DdiFailure(DdiStatus.MaskedKeyDecodeFailed, f"session BMK: {exc}") from None
    session.seed, session.masking_key = seed, masking_key
    session.rev, session.needs_renegotiation = call.rev, False
    call.opened = session
    return messages.DdiReopenSessionResp(sess_id=session.sess_id, short_app_id=session.short_app_id,
                                         bmk_session=req.bmk_session)


def close_session(call: Call, req: messages.DdiCloseSessionReq) -> messages.DdiCloseSessionResp:
    session = call.active_session()
    call.vault.keys.drop_session(session.sess_id)
    call.vault.sessions.free(session.sess_id)
    return messages.DdiCloseSessionResp()


def change_pin(call: Call, req: messages.DdiChangePinReq) -> messages.DdiChangePinResp:
    vault = call.vault
    new = req.new_pin
    _check_lengths(encrypted_pin=(new.encrypted_pin, 16), iv=(new.iv, 16))
    (pin,) = _decrypt(call, vault.session_key_id, req.pub_key, [new.encrypted_pin], new.iv, new.nonce, new.tag)
    if not any(pin):
        raise DdiFailure(DdiStatus.InvalidAppCredentials, "all-zero PIN")
    assert vault.credential is not None
    vault.credential = (vault.credential[0], pin)
    call.dirty = True
    return messages.DdiChangePinResp()


HANDLERS: dict[str, Handler] = {
    "GetEstablishCredEncryptionKey": get_establish_cred_encryption_key,
    "GetSessionEncryptionKey": get_session_encryption_key,
    "EstablishCredential": establish_credential,
    "OpenSession": open_session,
    "ReopenSession": reopen_session,
    "CloseSession": close_session,
    "ChangePin": change_pin,
}
