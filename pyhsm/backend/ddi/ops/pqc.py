"""Post-quantum keys (docs/vendor-ops.md): ML-DSA-65/87 generate, sign, public key; ML-KEM-768/1024
generate, decapsulate to a Secret256 key, public key. Key material is the FIPS seed; the arithmetic is
done by the ``pyhsm.crypto.pqc`` provider."""

from __future__ import annotations

import os

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.backend.ddi.ops.common import TagRule, create, new_entry, properties, require_family, tag_of
from pyhsm.crypto.pqc import MLDSA, MLKEM, MlDsaParams, MlKemParams, default_provider
from pyhsm.crypto.pqc.provider import InvalidInput
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import Family, Flag, KeyType

_MLDSA_KINDS = {65: KeyType.MlDsa65Private, 87: KeyType.MlDsa87Private}
_MLKEM_KINDS = {768: KeyType.MlKem768Private, 1024: KeyType.MlKem1024Private}
_PARAMS_OF: dict[KeyType, MlDsaParams | MlKemParams] = {
    **{kind: MLDSA[n] for n, kind in _MLDSA_KINDS.items()}, **{kind: MLKEM[n] for n, kind in _MLKEM_KINDS.items()}}

PROVIDER = default_provider()


def _seed(requested: bytes | None, length: int) -> bytes:
    if requested is None:
        return os.urandom(length)
    if len(requested) != length:
        raise DdiFailure(DdiStatus.InvalidArg, f"seed must be {length} bytes, got {len(requested)}")
    return requested


def _generate(call: Call, req: messages.DdiMlDsaGenerateKeyReq | messages.DdiMlKemGenerateKeyReq,
              kinds: dict[int, KeyType], family: str) -> tuple[int, bytes, bytes]:
    kind = kinds.get(req.params)
    if kind is None:
        raise DdiFailure(DdiStatus.InvalidArg, f"{family} parameter set {req.params} (have {sorted(kinds)})")
    params = _PARAMS_OF[kind]
    props = properties(req.key_properties, kind)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_IS_NONE)
    seed = _seed(req.seed, params.seed_len)
    public = (PROVIDER.mldsa_public(params, seed) if isinstance(params, MlDsaParams)
              else PROVIDER.mlkem_public(params, seed))
    key_id, masked = create(call, new_entry(call, kind, seed, props, tag, local=True))
    return key_id, public, masked


def _entry(call: Call, key_id: int, family: Family, flag: Flag) -> KeyEntry:
    entry = call.vault.keys.use(key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, family)
    entry.require(flag)
    return entry


def mldsa_generate_key(call: Call, req: messages.DdiMlDsaGenerateKeyReq) -> messages.DdiMlDsaGenerateKeyResp:
    key_id, public, masked = _generate(call, req, _MLDSA_KINDS, "ML-DSA")
    return messages.DdiMlDsaGenerateKeyResp(key_id=key_id, pub_key=public, masked_key=masked)


def mldsa_sign(call: Call, req: messages.DdiMlDsaSignReq) -> messages.DdiMlDsaSignResp:
    entry = _entry(call, req.key_id, Family.MLDSA, Flag.SIGN)
    params = _PARAMS_OF[entry.kind]
    assert isinstance(params, MlDsaParams)
    material = entry.material
    with call.unlocked():
        signature = PROVIDER.mldsa_sign(params, material, req.message, req.context or b"")
    return messages.DdiMlDsaSignResp(signature=signature)


def mldsa_get_public_key(call: Call, req: messages.DdiMlDsaGetPublicKeyReq) -> messages.DdiMlDsaGetPublicKeyResp:
    entry = _entry(call, req.key_id, Family.MLDSA, Flag(0))
    params = _PARAMS_OF[entry.kind]
    assert isinstance(params, MlDsaParams)
    return messages.DdiMlDsaGetPublicKeyResp(params=params.number,
                                             pub_key=PROVIDER.mldsa_public(params, entry.material))


def mlkem_generate_key(call: Call, req: messages.DdiMlKemGenerateKeyReq) -> messages.DdiMlKemGenerateKeyResp:
    key_id, public, masked = _generate(call, req, _MLKEM_KINDS, "ML-KEM")
    return messages.DdiMlKemGenerateKeyResp(key_id=key_id, pub_key=public, masked_key=masked)


def mlkem_decapsulate(call: Call, req: messages.DdiMlKemDecapsulateReq) -> messages.DdiMlKemDecapsulateResp:
    entry = _entry(call, req.key_id, Family.MLKEM, Flag.DERIVE)
    params = _PARAMS_OF[entry.kind]
    assert isinstance(params, MlKemParams)
    props = properties(req.key_properties, KeyType.Secret256)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_REJECTED)
    try:
        secret = PROVIDER.mlkem_decapsulate(params, entry.material, req.ciphertext)
    except InvalidInput as exc:
        raise DdiFailure(DdiStatus.InvalidArg, str(exc)) from None
    key_id, masked = create(call, new_entry(call, KeyType.Secret256, secret, props, tag, local=False))
    return messages.DdiMlKemDecapsulateResp(key_id=key_id, masked_key=masked)


def mlkem_get_public_key(call: Call, req: messages.DdiMlKemGetPublicKeyReq) -> messages.DdiMlKemGetPublicKeyResp:
    entry = _entry(call, req.key_id, Family.MLKEM, Flag(0))
    params = _PARAMS_OF[entry.kind]
    assert isinstance(params, MlKemParams)
    return messages.DdiMlKemGetPublicKeyResp(params=params.number,
                                             pub_key=PROVIDER.mlkem_public(params, entry.material))


HANDLERS: dict[str, Handler] = {
    "MlDsaGenerateKey": mldsa_generate_key,
    "MlDsaSign": mldsa_sign,
    "MlDsaGetPublicKey": mldsa_get_public_key,
    "MlKemGenerateKey": mlkem_generate_key,
    "MlKemDecapsulate": mlkem_decapsulate,
    "MlKemGetPublicKey": mlkem_get_public_key,
}
