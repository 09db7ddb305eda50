"""Every DDI message as an MBOR schema (docs/ddi.md, "Wire encoding" and "Operations"): the single source of wire layouts.

``DDI_OPS`` maps each opcode to its name, its session-control kind (docs/ddi.md, "Session side band") and its request and response
structs. Enumerated fields (key types, curves, ...) are plain u32 on the wire; ``pyhsm.protocol.ddi.types``
gives them names.

Each field also says whether traces may show it: ``public(...)`` declares a field safe to log (ids, enums,
public keys, digests, signatures, certificates, evidence); ``secret(...)`` is a field that every trace
redacts (PINs and credentials, BK3, BMKs, masked and wrapped keys, seeds, message contents). A field
is redacted unless declared with ``P``; a struct-typed field declared with ``P`` shows its own fields
under their own declarations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pyhsm.protocol.ddi.mbor import BOOL, U8, U16, U32, U64, Field, Fixed, MborType, Struct, Var


class SessionKind(enum.IntEnum):
    """The side-band session control kind an opcode must travel with (docs/ddi.md, "Session side band")."""

    NO_SESSION = 0
    OPEN = 1
    CLOSE = 2
    IN_SESSION = 3


secret = Field  # a field whose value traces redact


def public(id: int, name: str, type: MborType, optional: bool = False) -> Field:  # noqa: A002
    """A field whose value is safe to show in traces and logs."""
    return Field(id, name, type, optional, safe=True)


API_REV = Struct("DdiApiRev", public(1, "major", U32), public(2, "minor", U32))
REQ_HDR = Struct("DdiReqHdr", public(1, "rev", API_REV, True), public(2, "op", U32), public(3, "sess_id", U16, True))
RESP_HDR = Struct("DdiRespHdr", public(1, "rev", API_REV, True), public(2, "op", U32), public(3, "sess_id", U16, True),
                  public(4, "status", U32), public(5, "fips_approved", BOOL))
PUBLIC_KEY = Struct("DdiDerPublicKey", public(1, "der", Var(768)), public(2, "key_kind", U32))
KEY_METADATA = Struct("DdiTargetKeyMetadata", public(1, "blob", Fixed(16)))
KEY_PROPERTIES = Struct("DdiTargetKeyProperties", public(1, "key_metadata", KEY_METADATA),
                        public(2, "key_label", Var(128)))
ESTABLISH_CREDENTIAL = Struct(
    "DdiEncryptedEstablishCredential", secret(1, "encrypted_id", Var(16)), secret(2, "encrypted_pin", Var(16)),
    secret(3, "iv", Var(16)), secret(4, "nonce", Fixed(32)), secret(5, "tag", Fixed(48)))
SESSION_CREDENTIAL = Struct(
    "DdiEncryptedSessionCredential", secret(1, "encrypted_id", Var(16)), secret(2, "encrypted_pin", Var(16)),
    secret(3, "encrypted_seed", Var(48)), secret(4, "iv", Var(16)), secret(5, "nonce", Fixed(32)), secret(6, "tag", Fixed(48)))
ENCRYPTED_PIN = Struct("DdiEncryptedPin", secret(2, "encrypted_pin", Var(16)), secret(3, "iv", Var(16)),
                       secret(4, "nonce", Fixed(32)), secret(5, "tag", Fixed(48)))
KEY_ATTRIBUTES = Struct("DdiMaskedKeyAttributes", public(1, "blob", Fixed(32)))
MASKED_KEY_METADATA = Struct(
    "DdiMaskedKeyMetadata", public(1, "svn", U64, True), public(2, "key_type", U32), public(3, "key_attributes", KEY_ATTRIBUTES),
    public(4, "bks2_index", U16, True), public(5, "key_tag", U16, True), public(6, "key_label", Var(128)),
    public(7, "key_length", U16))

_MASKED = Var(3072)
_BLOB_1K = Var(1024)
_KEY_CREATED = (public(1, "key_id", U16), secret(2, "masked_key", _MASKED), public(3, "bulk_key_id", U16, True))
_KEY_IMPORTED = (public(1, "key_id", U16), public(2, "pub_key", PUBLIC_KEY, True), public(3, "bulk_key_id", U16, True),
                 public(4, "kind", U32), secret(5, "masked_key", _MASKED))
_CRED_KEY = (public(1, "pub_key", PUBLIC_KEY), public(2, "nonce", Fixed(32)), public(3, "pub_key_signature", Var(192)))
_SESSION_OPENED = (public(1, "sess_id", U16), public(2, "short_app_id", U8), secret(3, "bmk_session", _BLOB_1K))


def _derive_request(name: str, a: str, b: str) -> Struct:
    return Struct(name, public(1, "key_id", U16), public(2, "hash_algorithm", U32), public(3, a, Var(256), True),
                  public(4, b, Var(256), True), public(5, "key_type", U32), public(6, "key_tag", U16, True),
                  public(7, "key_properties", KEY_PROPERTIES), public(8, "key_length", U8, True))


@dataclass(frozen=True)
class OpSpec:
    code: int
    name: str
    kind: SessionKind
    request: Struct
    response: Struct




def _op(code: int, name: str, kind: SessionKind, request: Struct | tuple[Field, ...],
        response: tuple[Field, ...]) -> OpSpec:
    req = request if isinstance(request, Struct) else Struct(f"Ddi{name}Req", *request)
    return OpSpec(code, name, kind, req, Struct(f"Ddi{name}Resp", *response))


DDI_OPS: dict[int, OpSpec] = {spec.code: spec for spec in (
    _op(1002, "GetApiRev", SessionKind.NO_SESSION, (), (public(1, "min", API_REV), public(2, "max", API_REV))),
    _op(1003, "GetDeviceInfo", SessionKind.NO_SESSION, (), (public(1, "kind", U32), public(2, "tables", U8), public(3, "fips_approved", BOOL))),
    _op(1014, "DeleteKey", SessionKind.IN_SESSION, (public(1, "key_id", U16),), ()),
    _op(1015, "OpenKey", SessionKind.IN_SESSION, (public(1, "key_tag", U16),),
        (public(1, "key_id", U16), public(2, "key_kind", U32), public(3, "pub_key", PUBLIC_KEY, True),
         public(4, "bulk_key_id", U16, True))),
    _op(1016, "AttestKey", SessionKind.IN_SESSION, (public(1, "key_id", U16), public(2, "report_data", Var(128))),
        (public(1, "report", Var(834)),)),
    _op(1031, "RsaModExp", SessionKind.IN_SESSION, (public(1, "key_id", U16), secret(2, "y", Var(512)), public(3, "op_type", U32)),
        (secret(1, "x", Var(512)),)),
    _op(1035, "RsaUnwrap", SessionKind.IN_SESSION,
        (public(1, "key_id", U16), secret(2, "wrapped_blob", _MASKED), public(3, "wrapped_blob_key_class", U32),
         public(4, "wrapped_blob_padding", U32), public(5, "wrapped_blob_hash_algorithm", U32),
         public(6, "key_tag", U16, True), public(7, "key_properties", KEY_PROPERTIES)), _KEY_IMPORTED),
    _op(1051, "GetUnwrappingKey", SessionKind.IN_SESSION, (),
        (public(1, "key_id", U16), public(2, "pub_key", PUBLIC_KEY), secret(3, "masked_key", _BLOB_1K))),
    _op(1061, "EccGenerateKeyPair", SessionKind.IN_SESSION,
        (public(1, "curve", U32), public(2, "key_tag", U16, True), public(3, "key_properties", KEY_PROPERTIES)),
        (public(1, "private_key_id", U16), public(2, "pub_key", PUBLIC_KEY), secret(3, "masked_key", _MASKED))),
    _op(1062, "EccSign", SessionKind.IN_SESSION, (public(1, "key_id", U16), public(2, "digest", Var(96)), public(3, "digest_algo", U32)),
        (public(1, "signature", Var(192)),)),
    _op(1071, "AesGenerateKey", SessionKind.IN_SESSION,
        (public(1, "key_size", U32), public(2, "key_tag", U16, True), public(3, "key_properties", KEY_PROPERTIES)),
        (public(1, "key_id", U16), public(2, "bulk_key_id", U16, True), secret(3, "masked_key", _MASKED))),
    _op(1072, "AesEncryptDecrypt", SessionKind.IN_SESSION,
        (public(1, "key_id", U16), public(2, "op", U32), secret(3, "msg", Var(1024)), public(4, "iv", Var(16))),
        (secret(1, "msg", Var(1024)), secret(2, "iv", Var(16)))),  # the chained IV is the last ciphertext block
    _op(1074, "EcdhKeyExchange", SessionKind.IN_SESSION,
        (public(1, "priv_key_id", U16), public(2, "pub_key_der", Var(192)), public(3, "key_type", U32),
         public(4, "key_tag", U16, True), public(5, "key_properties", KEY_PROPERTIES)),
        (public(1, "key_id", U16), secret(2, "masked_key", _MASKED))),
    _op(1075, "HkdfDerive", SessionKind.IN_SESSION, _derive_request("DdiHkdfDeriveReq", "salt", "info"), _KEY_CREATED),
    _op(1076, "KbkdfCounterHmacDerive", SessionKind.IN_SESSION,
        _derive_request("DdiKbkdfCounterHmacDeriveReq", "label", "context"), _KEY_CREATED),
    _op(1077, "Hmac", SessionKind.IN_SESSION, (public(1, "key_id", U16), secret(2, "msg", Var(1024))), (public(1, "tag", Var(64)),)),
    _op(1101, "GetEstablishCredEncryptionKey", SessionKind.NO_SESSION, (), _CRED_KEY),
    _op(1102, "EstablishCredential", SessionKind.NO_SESSION,
        (public(1, "encrypted_credential", ESTABLISH_CREDENTIAL), public(2, "pub_key", PUBLIC_KEY),
         secret(3, "masked_bk3", _BLOB_1K), secret(4, "bmk", _BLOB_1K), secret(5, "masked_unwrapping_key", _BLOB_1K),
         public(6, "pota_sig", _BLOB_1K), public(7, "pota_pub_key", PUBLIC_KEY)),
        (secret(1, "bmk", _BLOB_1K),)),
    _op(1103, "GetSessionEncryptionKey", SessionKind.NO_SESSION, (), _CRED_KEY),
    _op(1104, "OpenSession", SessionKind.OPEN,
        (public(1, "encrypted_credential", SESSION_CREDENTIAL), public(2, "pub_key", PUBLIC_KEY)), _SESSION_OPENED),
    _op(1105, "CloseSession", SessionKind.CLOSE, (), ()),
    _op(1106, "ChangePin", SessionKind.IN_SESSION, (public(1, "new_pin", ENCRYPTED_PIN), public(2, "pub_key", PUBLIC_KEY)), ()),
    _op(1107, "UnmaskKey", SessionKind.IN_SESSION, (secret(1, "masked_key", _MASKED),), _KEY_IMPORTED),
    _op(1108, "GetCertChainInfo", SessionKind.NO_SESSION, (public(1, "slot_id", U8),),
        (public(1, "num_certs", U8), public(2, "thumbprint", Var(32)))),
    _op(1109, "GetCertificate", SessionKind.NO_SESSION, (public(1, "slot_id", U8), public(2, "cert_id", U8)),
        (public(1, "certificate", Var(2048)),)),
    _op(1110, "ReopenSession", SessionKind.IN_SESSION,
        (public(1, "encrypted_credential", SESSION_CREDENTIAL), public(2, "pub_key", PUBLIC_KEY),
         secret(3, "bmk_session", _BLOB_1K)), _SESSION_OPENED),
    _op(1111, "InitBk3", SessionKind.NO_SESSION, (secret(1, "bk3", Var(48)),),
        (secret(1, "masked_bk3", _BLOB_1K), public(2, "vm_launch_guid", Fixed(16)))),
    _op(1112, "GetSealedBk3", SessionKind.NO_SESSION, (), (secret(1, "sealed_bk3", _BLOB_1K),)),
    _op(1113, "SetSealedBk3", SessionKind.NO_SESSION, (secret(1, "sealed_bk3", _BLOB_1K),), ()),
)}

OP_INVALID = 1001
EMPTY = Struct("DdiEmpty")
