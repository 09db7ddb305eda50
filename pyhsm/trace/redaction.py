"""The one declaration of secret DDI fields: struct name -> field names whose values never appear in
a trace (PINs, credentials, seeds, BK3, masked keys, key material, message contents).

A redacted field is shown as ``{"redacted": <byte length>}``. A struct listed with ``ALL`` has every
field redacted (the encrypted credential structs).
"""

from __future__ import annotations

from pyhsm.ddi.schemas import ENCRYPTED_PIN, ESTABLISH_CREDENTIAL, SESSION_CREDENTIAL

ALL = frozenset({"*"})

SECRET_FIELDS: dict[str, frozenset[str]] = {
    ESTABLISH_CREDENTIAL.name: ALL,
    SESSION_CREDENTIAL.name: ALL,
    ENCRYPTED_PIN.name: ALL,
    "DdiEstablishCredentialReq": frozenset({"masked_bk3", "bmk", "masked_unwrapping_key"}),
    "DdiEstablishCredentialResp": frozenset({"bmk"}),
    "DdiOpenSessionResp": frozenset({"bmk_session"}),
    "DdiReopenSessionReq": frozenset({"bmk_session"}),
    "DdiReopenSessionResp": frozenset({"bmk_session"}),
    "DdiInitBk3Req": frozenset({"bk3"}),
    "DdiInitBk3Resp": frozenset({"masked_bk3"}),
    "DdiGetSealedBk3Resp": frozenset({"sealed_bk3"}),
    "DdiSetSealedBk3Req": frozenset({"sealed_bk3"}),
    "DdiEccGenerateKeyPairResp": frozenset({"masked_key"}),
    "DdiAesGenerateKeyResp": frozenset({"masked_key"}),
    "DdiEcdhKeyExchangeResp": frozenset({"masked_key"}),
    "DdiHkdfDeriveResp": frozenset({"masked_key"}),
    "DdiKbkdfCounterHmacDeriveResp": frozenset({"masked_key"}),
    "DdiGetUnwrappingKeyResp": frozenset({"masked_key"}),
    "DdiUnmaskKeyReq": frozenset({"masked_key"}),
    "DdiUnmaskKeyResp": frozenset({"masked_key"}),
    "DdiRsaUnwrapReq": frozenset({"wrapped_blob"}),
    "DdiRsaUnwrapResp": frozenset({"masked_key"}),
    "DdiRsaModExpReq": frozenset({"y"}),
    "DdiRsaModExpResp": frozenset({"x"}),
    "DdiAesEncryptDecryptReq": frozenset({"msg"}),
    "DdiAesEncryptDecryptResp": frozenset({"msg"}),
    "DdiHmacReq": frozenset({"msg"}),
}


def is_secret(struct_name: str, field_name: str) -> bool:
    """True when ``struct_name.field_name`` must not appear in a trace."""
    secret = SECRET_FIELDS.get(struct_name, frozenset())
    return secret is ALL or field_name in secret
