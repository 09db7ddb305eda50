"""The AES fast-path backend module (pyhsm/backend/ddi/fastpath.py) without QEMU: key scoping and every status
(docs/device.md, "AES path"), XTS known answers, and the client's AES calls over the backend socket
(``SocketTransport``: AES_REQUEST / AES_RESPONSE through the real link server)."""

from __future__ import annotations

import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.ddi import fastpath, xts
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.backend.ddi.vault import Vault
from pyhsm.client import HsmClient, Usage
from pyhsm.client.aes import AesError
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import AesKeySize, DeviceKind, Flag, KeyClass, KeyType
from tests.backend.ddi.ddi_backend import make_backend, serving
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, rsa_aes_wrap

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


def test_ieee1619_and_cavp_xts_vectors():
    """XTS-AES-256 known answers (tests/vectors/xts_aes256.json) through ``fastpath.execute``."""
    from tests.vectors import xts_aes256
    vault = _vault()
    for v in xts_aes256():
        k1, k2 = _key(vault, KeyType.AesXtsBulk256, v.key1), _key(vault, KeyType.AesXtsBulk256, v.key2)
        xts = dict(cipher=1, key_id2=k2, tag_or_tweak=v.tweak)
        assert _run(vault, _gcm(k1, v.pt, **xts)).data == v.ct, v.id
        assert _run(vault, _gcm(k1, v.ct, decrypt=1, **xts)).data == v.pt, v.id


@pytest.mark.parametrize("sector", [0, 0xFF, 2**63 + 5, 2**64 - 3])   # the last carries into bytes 8-15
@pytest.mark.parametrize("dul,units", [(1, 1), (1, 7), (2, 3), (3, 2), (0, 1)])
def test_xts_of_many_data_units_matches_cryptography_unit_by_unit(sector, dul, units):
    """The one-pass XTS of a buffer of several data units (pyhsm/backend/ddi/xts.py) gives what
    cryptography gives one unit at a time, both ways, through ``fastpath.execute``."""
    vault = _vault()
    key1, key2 = os.urandom(32), os.urandom(32)
    k1, k2 = _key(vault, KeyType.AesXtsBulk256, key1), _key(vault, KeyType.AesXtsBulk256, key2)
    unit = fastpath.DATA_UNITS[dul] or 4096
    data = os.urandom(unit * units)
    xts_args = dict(cipher=1, key_id2=k2, tag_or_tweak=sector.to_bytes(8, "little") + os.urandom(8))
    expected = xts.unit_by_unit(key1, key2, sector, data, unit, False)
    assert _run(vault, _gcm(k1, data, dul=dul, **xts_args)).data == expected
    assert _run(vault, _gcm(k1, expected, dul=dul, decrypt=1, **xts_args)).data == data


def test_xts_one_pass_over_odd_unit_sizes_and_refusals():
    """Every unit size that is a multiple of 16 and every unit count agree with the reference; a
    length the units do not divide, a unit that is not whole blocks, or a sector beyond 64 bits is
    a ValueError, never a wrong answer."""
    for n in range(60):
        key1, key2 = os.urandom(32), os.urandom(32)
        unit, units = 16 * (1 + n % 33), 2 + n % 5
        data, sector = os.urandom(unit * units), int.from_bytes(os.urandom(8), "little")
        for decrypt in (False, True):
            assert (xts.crypt(key1, key2, sector, data, unit, decrypt)
                    == xts.unit_by_unit(key1, key2, sector, data, unit, decrypt)), (unit, units, sector)
    for args in [(0, bytes(48), 32), (0, bytes(40), 20), (0, b"", 16), (2**64, bytes(32), 16)]:
        with pytest.raises(ValueError):
            xts.crypt(bytes(32), bytes(range(32)), args[0], args[1], args[2], False)


# ---- the fast path over the backend socket (SocketTransport: AES_REQUEST / AES_RESPONSE) ----------

@pytest.fixture
def aes_socket(tmp_path):
    """A provisioned client with an open session on a real link server, and its session ids."""
    path = tmp_path / "hsm.sock"
    with serving(make_backend(tmp_path / "state"), path):
        transport = SocketTransport(path, serial="AES-SOCK-0001")
        client = HsmClient(transport)
        client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
        opened = client.open_session(APP_ID, PIN)
        yield client, {"session_id": opened.sess_id, "short_app_id": opened.short_app_id}
        transport.close()


def _import_bulk(client: HsmClient, key_class: KeyClass, material: bytes) -> int:
    """``material`` imported as a bulk key through RsaUnwrap; its bulk_key_id."""
    kek = client.get_unwrapping_key()
    public = serialization.load_der_public_key(bytes(kek.pub_key.der))
    return client.rsa_unwrap(kek.key_id, rsa_aes_wrap(public, material), key_class,
                             Usage.ENCRYPT_DECRYPT).bulk_key_id


def test_socket_transport_gcm_and_xts_match_cryptography(aes_socket):
    client, ids = aes_socket
    t = client.transport
    gcm_key, x1, x2 = os.urandom(32), os.urandom(32), os.urandom(32)
    gcm_id = _import_bulk(client, KeyClass.AesGcmBulk, gcm_key)
    xts1, xts2 = _import_bulk(client, KeyClass.AesXtsBulk, x1), _import_bulk(client, KeyClass.AesXtsBulk, x2)
    for size, aad in ((1, b""), (15, b"A" * 20), (4096, b"B" * 32), (65000, b"C" * 45), (1 << 20, b"")):
        pt, iv = os.urandom(size), os.urandom(12)
        enc = t.aes_gcm_encrypt(gcm_id, iv, pt, aad, **ids)
        assert enc.data + enc.tag == AESGCM(gcm_key).encrypt(iv, pt, aad or None) and enc.fips_approved
        assert t.aes_gcm_decrypt(gcm_id, iv, enc.data, enc.tag, aad, **ids).data == pt
    tweak = (0x1234).to_bytes(16, "little")
    for size, unit in ((16, None), (4096, 512), (8192 * 4, 8192)):
        data = os.urandom(size)
        ct = t.aes_xts_encrypt(xts1, xts2, tweak, data, data_unit=unit, **ids)
        c = Cipher(algorithms.AES(x1 + x2), modes.XTS(tweak)).encryptor()
        if unit is None:
            assert ct == c.update(data) + c.finalize()
        assert t.aes_xts_decrypt(xts1, xts2, tweak, ct, data_unit=unit, **ids) == data


def test_socket_transport_refusals_raise_aes_error(aes_socket):
    client, ids = aes_socket
    t = client.transport
    gcm_id = _import_bulk(client, KeyClass.AesGcmBulk, os.urandom(32))
    xts_id = _import_bulk(client, KeyClass.AesXtsBulk, os.urandom(32))
    deleted = client.aes_generate_key(AesKeySize.AesGcmBulk256)
    client.delete_key(deleted.key_id)
    enc = t.aes_gcm_encrypt(gcm_id, IV, b"secret", **ids)
    cases = [
        (lambda: t.aes_gcm_decrypt(gcm_id, IV, enc.data, bytes(16), **ids), DdiStatus.AesGcmDecryptTagDoesNotMatch),
        (lambda: t.aes_gcm_encrypt(xts_id, IV, b"x", **ids), DdiStatus.InvalidKeyType),
        (lambda: t.aes_xts_encrypt(xts_id, xts_id, bytes(16), bytes(32), **ids), DdiStatus.AesEncryptFailed),
        (lambda: t.aes_xts_encrypt(xts_id, xts_id, bytes(16), bytes(40), **ids), DdiStatus.AesXtsInvalidBufferSize),
        (lambda: t.aes_gcm_encrypt(gcm_id, IV, b"x", session_id=ids["session_id"] + 1,
                                   short_app_id=ids["short_app_id"]), DdiStatus.SessionNotFound),
        (lambda: t.aes_gcm_encrypt(deleted.bulk_key_id, IV, b"x", **ids), DdiStatus.KeyNotFound),
    ]
    for call, status in cases:
        with pytest.raises(AesError) as info:
            call()
        assert (info.value.result, info.value.ddi_status) == (link.Status.AES_REFUSED, int(status)), status
    client.close_session()
    with pytest.raises(AesError) as info:
        t.aes_gcm_encrypt(gcm_id, IV, b"x", **ids)
    assert info.value.ddi_status == int(DdiStatus.SessionNotFound)


def test_socket_transport_xts_vectors_with_imported_keys(aes_socket):
    """The XTS known answers end to end over the socket, with the keys imported through RsaUnwrap."""
    from tests.vectors import xts_aes256
    client, ids = aes_socket
    t = client.transport
    for v in xts_aes256()[:6]:
        k1 = _import_bulk(client, KeyClass.AesXtsBulk, v.key1)
        k2 = _import_bulk(client, KeyClass.AesXtsBulk, v.key2)
        assert t.aes_xts_encrypt(k1, k2, v.tweak, v.pt, **ids) == v.ct, v.id
        assert t.aes_xts_decrypt(k1, k2, v.tweak, v.ct, **ids) == v.pt, v.id
