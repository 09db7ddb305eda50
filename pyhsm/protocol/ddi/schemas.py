"""Every DDI message as an MBOR schema (ddi.md 1.4 and section 2): the single source of wire layouts.

``DDI_OPS`` maps each opcode to its name, its session-control kind (1.7) and its request and response
structs. Enumerated fields (key types, curves, ...) are plain u32 on the wire; ``pyhsm.protocol.ddi.types``
gives them names.

Each field also says whether traces may show it: ``P(...)`` declares a field safe to log (ids, enums,
public keys, digests, signatures, certificates, evidence); ``F(...)`` is a field that every trace
redacts (PINs and credentials, BK3, BMKs, masked and wrapped keys, seeds, message contents). A field
is redacted unless declared with ``P``; a struct-typed field declared with ``P`` shows its own fields
under their own declarations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pyhsm.protocol.ddi.mbor import BOOL, U8, U16, U32, U64, Field, Fixed, MborType, Struct, Var


class SessionKind(enum.IntEnum):
    """The side-band session control kind an opcode must travel with (ddi.md 1.7)."""

    NO_SESSION = 0
    OPEN = 1
    CLOSE = 2
    IN_SESSION = 3


F = Field  # a field whose value traces redact


def P(id: int, name: str, type: MborType, optional: bool = False) -> Field:  # noqa: A002
    """A field whose value is safe to show in traces and logs."""
    return Field(id, name, type, optional, safe=True)


API_REV = Struct("DdiApiRev", P(1, "major", U32), P(2, "minor", U32))
REQ_HDR = Struct("DdiReqHdr", P(1, "rev", API_REV, True), P(2, "op", U32), P(3, "sess_id", U16, True))
RESP_HDR = Struct("DdiRespHdr", P(1, "rev", API_REV, True), P(2, "op", U32), P(3, "sess_id", U16, True),
                  P(4, "status", U32), P(5, "fips_approved", BOOL))
PUBLIC_KEY = Struct("DdiDerPublicKey", P(1, "der", Var(768)), P(2, "key_kind", U32))
KEY_METADATA = Struct("DdiTargetKeyMetadata", P(1, "blob", Fixed(16)))
KEY_PROPERTIES = Struct("DdiTargetKeyProperties", P(1, "key_metadata", KEY_METADATA),
                        P(2, "key_label", Var(128)))
ESTABLISH_CREDENTIAL = Struct(
    "DdiEncryptedEstablishCredential", F(1, "encrypted_id", Var(16)), F(2, "encrypted_pin", Var(16)),
    F(3, "iv", Var(16)), F(4, "nonce", Fixed(32)), F(5, "tag", Fixed(48)))
SESSION_CREDENTIAL = Struct(
    "DdiEncryptedSessionCredential", F(1, "encrypted_id", Var(16)), F(2, "encrypted_pin", Var(16)),
    F(3, "encrypted_seed", Var(48)), F(4, "iv", Var(16)), F(5, "nonce", Fixed(32)), F(6, "tag", Fixed(48)))
ENCRYPTED_PIN = Struct("DdiEncryptedPin", F(2, "encrypted_pin", Var(16)), F(3, "iv", Var(16)),
                       F(4, "nonce", Fixed(32)), F(5, "tag", Fixed(48)))
KEY_ATTRIBUTES = Struct("DdiMaskedKeyAttributes", P(1, "blob", Fixed(32)))
MASKED_KEY_METADATA = Struct(
    "DdiMaskedKeyMetadata", P(1, "svn", U64, True), P(2, "key_type", U32), P(3, "key_attributes", KEY_ATTRIBUTES),
    P(4, "bks2_index", U16, True), P(5, "key_tag", U16, True), P(6, "key_label", Var(128)),
    P(7, "key_length", U16))

_MASKED = Var(3072)
_BLOB_1K = Var(1024)
_KEY_CREATED = (P(1, "key_id", U16), F(2, "masked_key", _MASKED), P(3, "bulk_key_id", U16, True))
_KEY_IMPORTED = (P(1, "key_id", U16), P(2, "pub_key", PUBLIC_KEY, True), P(3, "bulk_key_id", U16, True),
                 P(4, "kind", U32), F(5, "masked_key", _MASKED))
_CRED_KEY = (P(1, "pub_key", PUBLIC_KEY), P(2, "nonce", Fixed(32)), P(3, "pub_key_signature", Var(192)))
_SESSION_OPENED = (P(1, "sess_id", U16), P(2, "short_app_id", U8), F(3, "bmk_session", _BLOB_1K))


def _derive_request(name: str, a: str, b: str) -> Struct:
    return Struct(name, P(1, "key_id", U16), P(2, "hash_algorithm", U32), P(3, a, Var(256), True),
                  P(4, b, Var(256), True), P(5, "key_type", U32), P(6, "key_tag", U16, True),
                  P(7, "key_properties", KEY_PROPERTIES), P(8, "key_length", U8, True))


@dataclass(frozen=True)
class OpSpec:
    code: int
    name: str
    kind: SessionKind
    request: Struct
    response: Struct


_N, _O, _C, _S = SessionKind.NO_SESSION, SessionKind.OPEN, SessionKind.CLOSE, SessionKind.IN_SESSION


def _op(code: int, name: str, kind: SessionKind, request: Struct | tuple[Field, ...],
        response: tuple[Field, ...]) -> OpSpec:
    req = request if isinstance(request, Struct) else Struct(f"Ddi{name}Req", *request)
    return OpSpec(code, name, kind, req, Struct(f"Ddi{name}Resp", *response))


DDI_OPS: dict[int, OpSpec] = {spec.code: spec for spec in (
    _op(1002, "GetApiRev", _N, (), (P(1, "min", API_REV), P(2, "max", API_REV))),
    _op(1003, "GetDeviceInfo", _N, (), (P(1, "kind", U32), P(2, "tables", U8), P(3, "fips_approved", BOOL))),
    _op(1014, "DeleteKey", _S, (P(1, "key_id", U16),), ()),
    _op(1015, "OpenKey", _S, (P(1, "key_tag", U16),),
        (P(1, "key_id", U16), P(2, "key_kind", U32), P(3, "pub_key", PUBLIC_KEY, True),
         P(4, "bulk_key_id", U16, True))),
    _op(1016, "AttestKey", _S, (P(1, "key_id", U16), P(2, "report_data", Var(128))),
        (P(1, "report", Var(834)),)),
    _op(1031, "RsaModExp", _S, (P(1, "key_id", U16), F(2, "y", Var(512)), P(3, "op_type", U32)),
        (F(1, "x", Var(512)),)),
    _op(1035, "RsaUnwrap", _S,
        (P(1, "key_id", U16), F(2, "wrapped_blob", _MASKED), P(3, "wrapped_blob_key_class", U32),
         P(4, "wrapped_blob_padding", U32), P(5, "wrapped_blob_hash_algorithm", U32),
         P(6, "key_tag", U16, True), P(7, "key_properties", KEY_PROPERTIES)), _KEY_IMPORTED),
    _op(1051, "GetUnwrappingKey", _S, (),
        (P(1, "key_id", U16), P(2, "pub_key", PUBLIC_KEY), F(3, "masked_key", _BLOB_1K))),
    _op(1061, "EccGenerateKeyPair", _S,
        (P(1, "curve", U32), P(2, "key_tag", U16, True), P(3, "key_properties", KEY_PROPERTIES)),
        (P(1, "private_key_id", U16), P(2, "pub_key", PUBLIC_KEY), F(3, "masked_key", _MASKED))),
    _op(1062, "EccSign", _S, (P(1, "key_id", U16), P(2, "digest", Var(96)), P(3, "digest_algo", U32)),
        (P(1, "signature", Var(192)),)),
    _op(1071, "AesGenerateKey", _S,
        (P(1, "key_size", U32), P(2, "key_tag", U16, True), P(3, "key_properties", KEY_PROPERTIES)),
        (P(1, "key_id", U16), P(2, "bulk_key_id", U16, True), F(3, "masked_key", _MASKED))),
    _op(1072, "AesEncryptDecrypt", _S,
        (P(1, "key_id", U16), P(2, "op", U32), F(3, "msg", Var(1024)), P(4, "iv", Var(16))),
        (F(1, "msg", Var(1024)), F(2, "iv", Var(16)))),  # the chained IV is the last ciphertext block
    _op(1074, "EcdhKeyExchange", _S,
        (P(1, "priv_key_id", U16), P(2, "pub_key_der", Var(192)), P(3, "key_type", U32),
         P(4, "key_tag", U16, True), P(5, "key_properties", KEY_PROPERTIES)),
        (P(1, "key_id", U16), F(2, "masked_key", _MASKED))),
    _op(1075, "HkdfDerive", _S, _derive_request("DdiHkdfDeriveReq", "salt", "info"), _KEY_CREATED),
    _op(1076, "KbkdfCounterHmacDerive", _S,
        _derive_request("DdiKbkdfCounterHmacDeriveReq", "label", "context"), _KEY_CREATED),
    _op(1077, "Hmac", _S, (P(1, "key_id", U16), F(2, "msg", Var(1024))), (P(1, "tag", Var(64)),)),
    _op(1101, "GetEstablishCredEncryptionKey", _N, (), _CRED_KEY),
    _op(1102, "EstablishCredential", _N,
        (P(1, "encrypted_credential", ESTABLISH_CREDENTIAL), P(2, "pub_key", PUBLIC_KEY),
         F(3, "masked_bk3", _BLOB_1K), F(4, "bmk", _BLOB_1K), F(5, "masked_unwrapping_key", _BLOB_1K),
         P(6, "pota_sig", _BLOB_1K), P(7, "pota_pub_key", PUBLIC_KEY)),
        (F(1, "bmk", _BLOB_1K),)),
    _op(1103, "GetSessionEncryptionKey", _N, (), _CRED_KEY),
    _op(1104, "OpenSession", _O,
        (P(1, "encrypted_credential", SESSION_CREDENTIAL), P(2, "pub_key", PUBLIC_KEY)), _SESSION_OPENED),
    _op(1105, "CloseSession", _C, (), ()),
    _op(1106, "ChangePin", _S, (P(1, "new_pin", ENCRYPTED_PIN), P(2, "pub_key", PUBLIC_KEY)), ()),
    _op(1107, "UnmaskKey", _S, (F(1, "masked_key", _MASKED),), _KEY_IMPORTED),
    _op(1108, "GetCertChainInfo", _N, (P(1, "slot_id", U8),),
        (P(1, "num_certs", U8), P(2, "thumbprint", Var(32)))),
    _op(1109, "GetCertificate", _N, (P(1, "slot_id", U8), P(2, "cert_id", U8)),
        (P(1, "certificate", Var(2048)),)),
    _op(1110, "ReopenSession", _S,
        (P(1, "encrypted_credential", SESSION_CREDENTIAL), P(2, "pub_key", PUBLIC_KEY),
         F(3, "bmk_session", _BLOB_1K)), _SESSION_OPENED),
    _op(1111, "InitBk3", _N, (F(1, "bk3", Var(48)),),
        (F(1, "masked_bk3", _BLOB_1K), P(2, "vm_launch_guid", Fixed(16)))),
    _op(1112, "GetSealedBk3", _N, (), (F(1, "sealed_bk3", _BLOB_1K),)),
    _op(1113, "SetSealedBk3", _N, (F(1, "sealed_bk3", _BLOB_1K),), ()),
)}

OP_INVALID = 1001
EMPTY = Struct("DdiEmpty")
