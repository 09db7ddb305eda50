"""The AES fast-path backend module (pyhsm/backend/ddi/fastpath.py) without QEMU: key scoping and every status
(docs/device.md, "AES path")."""

from __future__ import annotations

import os
import threading

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.protocol import link
from pyhsm.backend.ddi import fastpath
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind, Flag, KeyType
from pyhsm.backend.ddi.vault import Vault

APP = bytes(range(16))
IV = bytes(12)


def _vault() -> Vault:
    vault = Vault(ec.generate_private_key(ec.SECP384R1()))
    vault.credential = (APP, bytes(16))
    vault.sessions.allocate((1, 0)).short_app_id = 9
    return vault


def _key(vault: Vault, kind: KeyType, material: bytes | None = None, **kw) -> int:
    entry = KeyEntry(kind, material or os.urandom(32), kw.pop("flags", Flag.ENCRYPT | Flag.DECRYPT),
                     kw.pop("app", APP), **kw)
    return vault.keys.insert(entry)


def _gcm(key_id: int, data: bytes, **kw) -> link.AesRequest:
    fields = dict(version=1, cipher=0, decrypt=0, dul=0, qid=256, cid=1, session_id=0, short_app_id=9,
                  key_id1=key_id, key_id2=0, aad_len=0, aligned_aad_len=0, tag_or_tweak=bytes(16), iv=IV,
                  src_tail_len=0, dst_len=len(data), data=data)
    fields.update(kw)
    return link.AesRequest(**fields)


def _run(vault: Vault, request: link.AesRequest, kind: DeviceKind = DeviceKind.Physical) -> link.AesResponse:
    answer = fastpath.execute(request, vault=vault, lock=threading.Lock(), kind=kind)
    # every answer survives the link codec
    assert link.decode_frame(link.encode_frame(1, answer))[1] == answer
    return answer


def _status(answer: link.AesResponse) -> DdiStatus | int:
    if answer.status == link.Status.AES_REFUSED:
        return DdiStatus(0x08700000 | answer.err)
    return answer.status


def test_gcm_with_aligned_aad_matches_cryptography():
    vault = _vault()
    material = os.urandom(32)
    key_id = _key(vault, KeyType.AesGcmBulk256, material)
    aad, data = b"A" * 5, os.urandom(100)
    src = bytes(16) + aad + bytes(11) + data            # AAD at offset 16, aligned to 32
    answer = _run(vault, _gcm(key_id, src, aad_len=5, aligned_aad_len=32))
    sealed = AESGCM(material).encrypt(IV, data, aad)
    assert (answer.status, answer.dst_offset, answer.data, answer.tag) == (0, 32, sealed[:-16], sealed[-16:])
    request = _gcm(key_id, src[:32] + answer.data, aad_len=5, aligned_aad_len=32, decrypt=1, tag_or_tweak=answer.tag)
    assert _run(vault, request).data == data
    assert fastpath.gcm_aad_offset(20, 32) == 0 and fastpath.gcm_aad_offset(40, 64) == 16
    assert fastpath.gcm_aad_offset(40, 96) is None


def test_statuses():
    vault = _vault()
    gcm = _key(vault, KeyType.AesGcmBulk256)
    xts1, xts2 = _key(vault, KeyType.AesXtsBulk256), _key(vault, KeyType.AesXtsBulk256)
    session_xts = _key(vault, KeyType.AesXtsBulk256, session=0)
    no_perm = _key(vault, KeyType.AesGcmBulk256, flags=Flag.ENCRYPT)
    foreign = _key(vault, KeyType.AesGcmBulk256, app=bytes(16))
    plain = _key(vault, KeyType.Aes256)
    xts = dict(cipher=1, key_id2=xts2, tag_or_tweak=bytes(16))
    S = DdiStatus
    cases = [
        (_gcm(gcm, bytes(32), session_id=5), S.SessionNotFound),
        (_gcm(gcm, bytes(32), short_app_id=0), S.InvalidShortAppId),
        (_gcm(foreign, bytes(32)), S.InvalidPermissions),
        (_gcm(no_perm, bytes(32)), S.InvalidPermissions),
        (_gcm(plain, bytes(32)), S.InvalidKeyType),
        (_gcm(xts1, bytes(32)), S.InvalidKeyType),
        (_gcm(0x0099, bytes(32)), S.KeyNotFound),
        (_gcm(0x10000, bytes(32)), S.InvalidKeyNumber),
        (_gcm(gcm, bytes(32), dst_len=31), S.AesGcmInvalidBufferSize),
        (_gcm(gcm, bytes(32), aad_len=40, aligned_aad_len=32), S.AesGcmInvalidBufferSize),
        (_gcm(gcm, bytes(32), aad_len=64, aligned_aad_len=64), S.AesGcmInvalidBufferSize),
        (_gcm(gcm, bytes(32), decrypt=1), S.AesGcmDecryptTagDoesNotMatch),
        (_gcm(gcm, bytes(32), dul=1), S.InvalidAlgorithm),
        (_gcm(gcm, bytes(32), version=2), S.InvalidAlgorithm),
        (_gcm(gcm, bytes(32), cipher=7), S.InvalidAlgorithm),
        (_gcm(xts1, bytes(32), **xts), 0),
        (_gcm(xts1, bytes(32), **{**xts, "key_id2": gcm}), S.InvalidKeyType),
        (_gcm(xts1, bytes(32), **{**xts, "key_id2": session_xts}), S.InvalidKeyType),
        (_gcm(xts1, bytes(32), **{**xts, "key_id2": xts1}), S.AesEncryptFailed),
        (_gcm(xts1, bytes(32), **{**xts, "key_id2": xts1, "decrypt": 1}), S.AesDecryptFailed),
        (_gcm(xts1, bytes(1536), **{**xts, "dul": 2}), S.AesXtsInvalidDul),
        (_gcm(xts1, bytes(1536), **{**xts, "dul": 1}), 0),
        (_gcm(xts1, bytes(40), **xts), S.AesXtsInvalidBufferSize),
        (_gcm(xts1, b"", **xts), S.AesXtsInvalidBufferSize),
        (_gcm(xts1, bytes(32), **{**xts, "dst_len": 16}), S.AesXtsInvalidBufferSize),
    ]
    for request, status in cases:
        assert _status(_run(vault, request)) == status, (request.cipher, request.key_id1, status)
    assert _status(_run(vault, _gcm(gcm, bytes(32), decrypt=1), DeviceKind.Virtual)) == S.AesDecryptFailed
    vault.sessions.mark_all_for_renegotiation()
    assert _status(_run(vault, _gcm(gcm, bytes(32)))) == S.SessionNeedsRenegotiation


def test_bulk_keys_follow_session_and_reset_rules():
    vault = _vault()
    key_id = _key(vault, KeyType.AesGcmBulk256, session=0)
    assert _run(vault, _gcm(key_id, bytes(16))).status == 0
    vault.close_all_sessions()
    vault.sessions.allocate((1, 0)).short_app_id = 9
    assert _status(_run(vault, _gcm(key_id, bytes(16)))) == DdiStatus.KeyNotFound
    app_key = _key(vault, KeyType.AesGcmBulk256)
    vault.nssr()
    assert _status(_run(vault, _gcm(app_key, bytes(16)))) == DdiStatus.SessionNeedsRenegotiation


def test_backend_without_aes_answers_not_supported():
    from pyhsm.backend.server import _Link
    answer = _Link._execute_aes(type("L", (), {"_partition": object()})(), _gcm(1, b"x"))
    assert (answer.status, answer.err) == (link.Status.NOT_SUPPORTED, link.Status.NOT_SUPPORTED)
