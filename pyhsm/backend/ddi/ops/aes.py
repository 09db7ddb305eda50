"""AES: key generation (incl. GCM/XTS bulk keys) and AES-CBC through the control path (docs/ddi.md, "Operations")."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.ops.common import (
    TagRule,
    bulk_id,
    create,
    enum_value,
    new_entry,
    properties,
    require_family,
    tag_of,
)
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import AES_SIZES, KINDS, AesKeySize, AesOp, Family, Flag

MAX_MESSAGE = 1024


def aes_generate_key(call: Call, req: messages.DdiAesGenerateKeyReq) -> messages.DdiAesGenerateKeyResp:
    kind = AES_SIZES[enum_value(AesKeySize, req.key_size, "AES key size")]
    props = properties(req.key_properties, kind)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_IS_NONE)
    material = os.urandom(32 if KINDS[kind].family is Family.BULK else KINDS[kind].size)
    entry = new_entry(call, kind, material, props, tag, local=True)
    key_id, masked = create(call, entry)
    return messages.DdiAesGenerateKeyResp(key_id=key_id, bulk_key_id=bulk_id(entry, key_id), masked_key=masked)


def aes_encrypt_decrypt(call: Call, req: messages.DdiAesEncryptDecryptReq) -> messages.DdiAesEncryptDecryptResp:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.AES)
    op = enum_value(AesOp, req.op, "AES op")
    entry.require(Flag.ENCRYPT | Flag.DECRYPT)
    if not req.msg or len(req.msg) % 16:
        raise DdiFailure(DdiStatus.InvalidArg, "AES-CBC message must be a non-empty multiple of 16 bytes")
    if len(req.iv) != 16:
        raise DdiFailure(DdiStatus.InvalidArg, "IV must be 16 bytes")
    cipher = Cipher(algorithms.AES(entry.material), modes.CBC(req.iv))
    worker = cipher.encryptor() if op is AesOp.Encrypt else cipher.decryptor()
    out = worker.update(req.msg) + worker.finalize()
    chained = (out if op is AesOp.Encrypt else req.msg)[-16:]
    return messages.DdiAesEncryptDecryptResp(msg=out, iv=chained)


HANDLERS: dict[str, Handler] = {
    "AesGenerateKey": aes_generate_key,
    "AesEncryptDecrypt": aes_encrypt_decrypt,
}
