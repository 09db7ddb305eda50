"""ECC: key generation, ECDSA signing of a supplied digest, ECDH to a Secret key (docs/ddi.md, "Operations")."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keyformat import private_to_material, spki
from pyhsm.backend.ddi.ops.common import (
    TagRule,
    create,
    enum_value,
    new_entry,
    private_key,
    properties,
    require_family,
    tag_of,
)
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import CURVES, ECC_BY_NAME, EccCurve, Family, Flag, KeyType

# ECDSA signs the digest as given; its length picks the hash that cryptography's Prehashed needs
# (the signature only depends on the digest bytes and the curve; digest_algo is ignored as in Virtual).
_DIGEST_HASHES: dict[int, hashes.HashAlgorithm] = {
    20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}


def ecc_generate_key_pair(call: Call, req: messages.DdiEccGenerateKeyPairReq) -> messages.DdiEccGenerateKeyPairResp:
    curve, private_kind, public_kind = CURVES[enum_value(EccCurve, req.curve, "curve")]
    props = properties(req.key_properties, private_kind)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_IS_NONE)
    key = ec.generate_private_key(curve)
    key_id, masked = create(call, new_entry(call, private_kind, private_to_material(key), props, tag,
                                            local=True, private=key))
    return messages.DdiEccGenerateKeyPairResp(
        private_key_id=key_id, pub_key=messages.DdiDerPublicKey(der=spki(key), key_kind=int(public_kind)),
        masked_key=masked)


def ecc_sign(call: Call, req: messages.DdiEccSignReq) -> messages.DdiEccSignResp:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.ECC)
    entry.require(Flag.SIGN)
    algorithm = _DIGEST_HASHES.get(len(req.digest))
    if algorithm is None:
        raise DdiFailure(DdiStatus.InvalidArg, f"digest of {len(req.digest)} bytes (need 20/32/48/64)")
    key: ec.EllipticCurvePrivateKey = private_key(entry)
    with call.unlocked():
        der = key.sign(req.digest, ec.ECDSA(Prehashed(algorithm)))
    r, s = decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return messages.DdiEccSignResp(signature=r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def ecdh_key_exchange(call: Call, req: messages.DdiEcdhKeyExchangeReq) -> messages.DdiEcdhKeyExchangeResp:
    entry = call.vault.keys.use(req.priv_key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.ECC)
    entry.require(Flag.DERIVE)
    key: ec.EllipticCurvePrivateKey = private_key(entry)
    secret_kind = ECC_BY_NAME[key.curve.name][2]
    if req.key_type != secret_kind:
        raise DdiFailure(DdiStatus.InvalidKeyType, f"ECDH on {key.curve.name} yields {secret_kind.name}")
    props = properties(req.key_properties, KeyType(secret_kind))
    tag = tag_of(req.key_tag, props, TagRule.ZERO_REJECTED)
    try:
        peer = serialization.load_der_public_key(req.pub_key_der)
    except (ValueError, TypeError):
        raise DdiFailure(DdiStatus.KeyDecodeFailed, "peer key is not SPKI DER") from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise DdiFailure(DdiStatus.DerAndKeyTypeMismatch, "peer key is not on the private key's curve")
    try:
        with call.unlocked():
            secret = key.exchange(ec.ECDH(), peer)
    except ValueError:
        raise DdiFailure(DdiStatus.EccDeriveError, "ECDH failed") from None
    key_id, masked = create(call, new_entry(call, secret_kind, secret, props, tag, local=call.physical))
    return messages.DdiEcdhKeyExchangeResp(key_id=key_id, masked_key=masked)


HANDLERS: dict[str, Handler] = {
    "EccGenerateKeyPair": ecc_generate_key_pair,
    "EccSign": ecc_sign,
    "EcdhKeyExchange": ecdh_key_exchange,
}
