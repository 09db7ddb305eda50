"""The AES fast path at the qtest level (docs/device.md, "AES path"): SQE, SGL and CQE fields and errors,
GCM and XTS round trips checked against ``cryptography``, Wycheproof AES-GCM vectors, aborts and link loss.

The backend double answers AES_REQUESTs with the real fast-path module (pyhsm/backend/ddi/fastpath.py) over a
vault built in the test, so the keys' bytes are known and every output can be checked.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.ddi import fastpath, xts
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.backend.ddi.vault import Vault
from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind, Flag, KeyType
from pyhsm.testing.qtest import aes

APP = bytes(range(16))
OTHER_APP = bytes(16)
IV = bytes.fromhex("000102030405060708090a0b")
TWEAK = (0x1122334455667788).to_bytes(8, "little") + bytes(8)
VECTORS = Path(os.environ.get("PYHSM_VECTORS", Path(__file__).resolve().parents[3] / "shared" / "vectors"))
Q = L.AES_FIRST_QID
MAX = link.MAX_AES_TRANSFER   # 1 MiB per direction (docs/device.md)


class Hsm:
    """A vault with one open session (short_app_id 5), and bulk keys of known bytes."""

    def __init__(self) -> None:
        self.vault = Vault(ec.generate_private_key(ec.SECP384R1()))
        self.vault.credential = (APP, bytes(16))
        self.session = self.vault.sessions.allocate((1, 0))
        self.session.short_app_id = 5
        self.lock = threading.Lock()

    def key(self, kind: KeyType, material: bytes | None = None, *, app: bytes = APP, session: int | None = None,
            flags: Flag = Flag.ENCRYPT | Flag.DECRYPT) -> tuple[int, bytes]:
        material = material if material is not None else os.urandom(32 if kind != KeyType.Aes128 else 16)
        return self.vault.keys.insert(KeyEntry(kind, material, flags, app, session=session)), material

    def handler(self, msg_id: int, request: link.AesRequest) -> link.AesResponse:
        return fastpath.execute(request, vault=self.vault, lock=self.lock, kind=DeviceKind.Physical)


@pytest.fixture
def hsm(rig) -> Hsm:
    h = Hsm()
    rig.backend.aes_handler = h.handler
    return h


def refused(cqe: L.AesCqe, status: DdiStatus) -> bool:
    return (cqe.status, cqe.err, cqe.length) == (link.Status.AES_REFUSED, int(status) & 0xFFFF, 0)


def xts_reference(key: bytes, data: bytes, tweak: bytes, unit: int, decrypt: bool = False) -> bytes:
    """``cryptography``'s XTS a unit at a time, the first unit numbered by the SQE tweak's first 8 bytes."""
    return xts.unit_by_unit(key[:32], key[32:], int.from_bytes(tweak[:8], "little"), data, unit, decrypt)


# ---- GCM ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,aad_len,workaround,src_offset,chunk", [
    (1, 0, True, 0, 4096), (1, 5, True, 3, 4096), (15, 20, True, 1, 4096), (16, 32, False, 0, 4096),
    (17, 40, True, 4095, 4096), (4097, 7, True, 17, 4096), (1000, 0, False, 5, 64),
    (65536, 0, False, 3, 4096), (65536 - 32 + 9, 17, True, 1, 4096),
])
def test_gcm_round_trip_matches_cryptography(rig, hsm, length, aad_len, workaround, src_offset, chunk):
    key_id, key = hsm.key(KeyType.AesGcmBulk256)
    data, aad = os.urandom(length), os.urandom(aad_len)
    sealed = AESGCM(key).encrypt(IV, data, aad or None)
    common = dict(key_id=key_id, iv=IV, aad=aad, session_id=hsm.session.sess_id, short_app_id=5,
                  workaround=workaround, src_offset=src_offset, dst_offset=(src_offset * 7) % 4096, chunk=chunk)
    enc = aes.gcm(rig.ctrl, data=data, **common)
    assert (enc.cqe.status, enc.cqe.err, enc.cqe.cid, enc.cqe.sqid) == (0, 0, enc.cqe.cid, Q)
    assert (enc.cqe.attr, enc.cqe.iv, enc.cqe.fips_approved) == (0x002C, IV, 1)
    assert enc.data == sealed[:-16] and enc.cqe.tag == sealed[-16:]
    src_len = len(aes.align_aad(aad)) + length
    tail = src_len % 16 if workaround else 0
    assert (enc.cqe.length, enc.cqe.dst_tail_len) == (src_len - tail, tail)
    dec = aes.gcm(rig.ctrl, data=enc.data, decrypt=True, tag=enc.cqe.tag, **common)
    assert (dec.cqe.status, dec.cqe.attr, dec.data) == (0, 0x002D, data)


def test_gcm_tag_mismatch_and_unapproved_key(rig, hsm):
    key_id, key = hsm.key(KeyType.AesGcmBulk256Unapproved)
    enc = aes.gcm(rig.ctrl, key_id=key_id, data=b"secret", iv=IV, session_id=0, short_app_id=5)
    assert enc.cqe.status == 0 and enc.cqe.fips_approved == 0
    bad = bytes([enc.cqe.tag[0] ^ 1]) + enc.cqe.tag[1:]
    dec = aes.gcm(rig.ctrl, key_id=key_id, data=enc.data, iv=IV, decrypt=True, tag=bad, short_app_id=5)
    assert refused(dec.cqe, DdiStatus.AesGcmDecryptTagDoesNotMatch)
    assert dec.cqe.tag == bytes(16) and dec.cqe.dst_tail_len == 0


def test_gcm_malformed_aad_lengths_are_refused(rig, hsm):
    key_id, _ = hsm.key(KeyType.AesGcmBulk256)
    for aad_len, aligned in ((5, 16), (40, 32), (33, 64 + 32)):
        params = L.gcm_params(key_id, aad_len, bytes(16), IV, aligned)
        r = aes.gcm(rig.ctrl, key_id=key_id, data=bytes(64), iv=IV, short_app_id=5, workaround=False,
                    params=params)
        assert refused(r.cqe, DdiStatus.AesGcmInvalidBufferSize), (aad_len, aligned)


# ---- XTS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,unit,offset", [
    (16, None, 0), (48, None, 7), (512 * 3, 512, 1), (4096 * 2, 4096, 4095), (8192 * 8, 8192, 3),
])
def test_xts_round_trip_matches_cryptography(rig, hsm, length, unit, offset):
    k1, m1 = hsm.key(KeyType.AesXtsBulk256)
    k2, m2 = hsm.key(KeyType.AesXtsBulk256)
    data = os.urandom(length)
    common = dict(key_id1=k1, key_id2=k2, tweak=TWEAK, data_unit=unit, short_app_id=5, src_offset=offset,
                  dst_offset=offset + 1)
    enc = aes.xts(rig.ctrl, data=data, **common)
    assert (enc.cqe.status, enc.cqe.length, enc.cqe.fips_approved, enc.cqe.dst_tail_len) == (0, length, 1, 0)
    assert enc.data == xts_reference(m1 + m2, data, TWEAK, unit or length)
    dec = aes.xts(rig.ctrl, data=enc.data, decrypt=True, **common)
    assert (dec.cqe.status, dec.data) == (0, data)


def test_transfer_limit_is_one_mib_per_direction(rig, hsm):
    """Exactly 1 MiB each way is carried: an XTS round trip, and GCM with 1 MiB in the SGLs and a 15-byte
    tail on top; 1 MiB + 1 in either direction is the device's own 0x002, nothing reaches the backend."""
    k1, m1 = hsm.key(KeyType.AesXtsBulk256)
    k2, m2 = hsm.key(KeyType.AesXtsBulk256)
    data = os.urandom(MAX)
    common = dict(key_id1=k1, key_id2=k2, tweak=TWEAK, data_unit=4096, short_app_id=5, src_offset=5, dst_offset=9)
    enc = aes.xts(rig.ctrl, data=data, **common)
    assert (enc.cqe.status, enc.cqe.length) == (0, MAX)
    assert enc.data == xts_reference(m1 + m2, data, TWEAK, 4096)
    dec = aes.xts(rig.ctrl, data=enc.data, decrypt=True, **common)
    assert (dec.cqe.status, dec.data) == (0, data)
    key_id, key = hsm.key(KeyType.AesGcmBulk256)
    plain = data + os.urandom(15)
    sealed = aes.gcm(rig.ctrl, key_id=key_id, data=plain, iv=IV, short_app_id=5)
    assert (sealed.cqe.status, sealed.cqe.length, sealed.cqe.dst_tail_len) == (0, MAX, 15)
    assert sealed.data + sealed.cqe.tag == AESGCM(key).encrypt(IV, plain, None)
    seen = len(rig.backend.aes_requests)
    for over in (dict(src_len=MAX + 1), dict(dst_len=MAX + 1)):
        r = aes.xts(rig.ctrl, data=bytes(32), key_id1=k1, key_id2=k2, tweak=TWEAK, short_app_id=5, **over)
        assert _device_error(r.cqe, link.Status.INVALID_FIELD), over
    assert len(rig.backend.aes_requests) == seen


def test_xts_refusals(rig, hsm):
    k1, m1 = hsm.key(KeyType.AesXtsBulk256)
    k2, _ = hsm.key(KeyType.AesXtsBulk256)
    twin, _ = hsm.key(KeyType.AesXtsBulk256, m1)
    gcm_key, _ = hsm.key(KeyType.AesGcmBulk256)
    run = lambda **kw: aes.xts(rig.ctrl, **{**dict(key_id1=k1, key_id2=k2, data=bytes(1024), tweak=TWEAK,
                                                     short_app_id=5), **kw}).cqe
    assert refused(run(key_id2=k1), DdiStatus.AesEncryptFailed)
    assert refused(run(key_id2=twin, decrypt=True), DdiStatus.AesDecryptFailed)
    assert refused(run(key_id2=gcm_key), DdiStatus.InvalidKeyType)
    assert refused(run(data=bytes(1024 + 512), data_unit=1024 // 2 * 8), DdiStatus.AesXtsInvalidDul)
    assert refused(run(data=bytes(24)), DdiStatus.AesXtsInvalidBufferSize)
    assert run().status == 0


# ---- key scoping ----------------------------------------------------------------------------------

def test_key_scoping_and_session_checks(rig, hsm):
    key_id, _ = hsm.key(KeyType.AesGcmBulk256)
    foreign, _ = hsm.key(KeyType.AesGcmBulk256, app=OTHER_APP)
    other_session_key, _ = hsm.key(KeyType.AesGcmBulk256, session=hsm.session.sess_id + 1)
    aes128, _ = hsm.key(KeyType.Aes128)
    xts_key, _ = hsm.key(KeyType.AesXtsBulk256)
    run = lambda **kw: aes.gcm(rig.ctrl, **{**dict(key_id=key_id, data=b"x" * 20, iv=IV, short_app_id=5),
                                            **kw}).cqe
    assert run().status == 0
    assert refused(run(short_app_id=4), DdiStatus.InvalidShortAppId)
    assert refused(run(session_id=3), DdiStatus.SessionNotFound)
    assert refused(run(key_id=foreign), DdiStatus.InvalidPermissions)
    assert refused(run(key_id=other_session_key), DdiStatus.InvalidPermissions)
    assert refused(run(key_id=aes128), DdiStatus.InvalidKeyType)
    assert refused(run(key_id=xts_key), DdiStatus.InvalidKeyType)
    assert refused(run(key_id=0x0077), DdiStatus.KeyNotFound)
    assert refused(run(key_id=0x3F00), DdiStatus.InvalidKeyNumber)
    hsm.vault.sessions.mark_all_for_renegotiation()
    assert refused(run(), DdiStatus.SessionNeedsRenegotiation)


# ---- malformed SQEs and SGLs (the device answers itself) -----------------------------------------

def _device_error(cqe: L.AesCqe, status: int) -> bool:
    return (cqe.status, cqe.err, cqe.length, cqe.dst_tail_len) == (status, status, 0, 0)


@pytest.mark.parametrize("attr", [
    L.AesSqe.attr_word(psdt=0), L.AesSqe.attr_word(cmd_type=4), L.AesSqe.attr_word() | 1 << 1,
    L.AesSqe.attr_word() | 1 << 12, L.AesSqe.attr_word(dul=1),
])
def test_malformed_attr_is_invalid_field(rig, hsm, attr):
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV, attr=attr)
    assert _device_error(r.cqe, link.Status.INVALID_FIELD) and r.cqe.attr == attr
    assert rig.backend.aes_requests == []


@pytest.mark.parametrize("fields", [
    dict(frame_type=0), dict(src_len=0), dict(dst_len=0), dict(src_len=MAX + 1), dict(dst_len=MAX + 1),
    dict(params=L.gcm_params(1, 0, bytes(16), IV, 0, 16, 16, 0x0100_0000, 0x0100_0000)),
    dict(params=L.gcm_params(1, 0, bytes(16), IV, 0, 3, 0, 0x0100_0000, 0)),
])
def test_malformed_fields_are_invalid_field(rig, hsm, fields):
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV, workaround=False, **fields)
    assert _device_error(r.cqe, link.Status.INVALID_FIELD)


def test_tail_buffer_outside_ram_is_a_transfer_error(rig, hsm):
    params = L.gcm_params(1, 0, bytes(16), IV, 0, 3, 3, 0xFEE0_0000, 0xFEE0_0000)
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV, workaround=False, params=params)
    assert _device_error(r.cqe, link.Status.DATA_TRANSFER_ERROR)


def _sgl_case(rig, descriptor: bytes, list_bytes: bytes | None = None, src_len: int = 32) -> L.AesCqe:
    page = rig.ctrl.memory.alloc(4096)
    if list_bytes is not None:
        here = page.to_bytes(8, "little")
        rig.ctrl.qtest.write(page, list_bytes.replace(b"@@@@@@@@", here))
        descriptor = descriptor.replace(b"@@@@@@@@", here)
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(src_len), iv=IV, workaround=False, src_sgl=descriptor)
    return r.cqe


def test_sgl_errors(rig, hsm):
    ram = rig.ctrl.memory.alloc(4096)
    d = L.sgl_descriptor
    at = b"@@@@@@@@"
    last = lambda n: at + (16 * n).to_bytes(4, "little") + bytes(3) + bytes([L.SGL_LAST_SEGMENT << 4])
    seg = lambda n: at + (16 * n).to_bytes(4, "little") + bytes(3) + bytes([L.SGL_SEGMENT << 4])
    S = link.Status
    cases = [
        (d(ram, 32, subtype=1), None, S.SGL_SUBTYPE_INVALID),
        (d(ram, 32, kind=0x5), None, S.SGL_DESCRIPTOR_TYPE_INVALID),
        (d(ram, 31), None, S.SGL_DATA_LENGTH_INVALID),
        (last(2), d(ram, 16) + d(ram, 8), S.SGL_DATA_LENGTH_INVALID),
        (last(2), d(ram, 16) + d(ram, 32), S.SGL_DATA_LENGTH_INVALID),
        (last(2), d(ram, 16) + d(ram, 16, subtype=2), S.SGL_SUBTYPE_INVALID),
        (last(2), d(ram, 16) + d(ram, 16, kind=0x1), S.SGL_DESCRIPTOR_TYPE_INVALID),
        (last(2), d(ram, 16, kind=L.SGL_LAST_SEGMENT) + d(ram, 16), S.SGL_DESCRIPTOR_TYPE_INVALID),
        (last(2), d(ram, 16) + d(ram, 16, kind=L.SGL_SEGMENT), S.SGL_DESCRIPTOR_TYPE_INVALID),
        (seg(2), d(ram, 16) + d(ram, 16), S.SGL_DESCRIPTOR_TYPE_INVALID),
        (at + (20).to_bytes(4, "little") + bytes(3) + bytes([0x30]), d(ram, 32) * 2, S.SGL_DESCRIPTOR_COUNT_INVALID),
        (at + bytes(4) + bytes(3) + bytes([0x30]), d(ram, 32), S.SGL_DESCRIPTOR_COUNT_INVALID),
        (d(0xFEE0_0000, 16, kind=L.SGL_LAST_SEGMENT), None, S.DATA_TRANSFER_ERROR),
        (last(1), d(0xFEE0_0000, 32), S.DATA_TRANSFER_ERROR),
        (last(2), d(ram, 16) + d(1 << 50, 16), S.DATA_TRANSFER_ERROR),
    ]
    for descriptor, list_bytes, status in cases:
        assert _device_error(_sgl_case(rig, descriptor, list_bytes), status), (descriptor.hex(), status)
    # A list page that links to itself ends at the descriptor budget, not in a loop.
    loop = _sgl_case(rig, seg(256), d(ram, 0) * 255 + seg(256))
    assert _device_error(loop, S.SGL_DESCRIPTOR_COUNT_INVALID)
    assert rig.backend.aes_requests == []
    rig.assert_alive()


def test_data_block_in_the_sqe_and_long_chained_lists(rig, hsm):
    key_id, key = hsm.key(KeyType.AesGcmBulk256)
    data = os.urandom(48)
    ram = rig.ctrl.memory.alloc(4096)
    rig.ctrl.qtest.write(ram, data)
    r = aes.gcm(rig.ctrl, key_id=key_id, data=data, iv=IV, short_app_id=5, workaround=False,
                src_sgl=L.sgl_descriptor(ram, 48))
    assert r.cqe.status == 0 and r.data == AESGCM(key).encrypt(IV, data, None)[:-16]
    # 16-byte blocks: 2048 descriptors over 9 list pages (segments, then a last segment)
    big = os.urandom(32768)
    r = aes.gcm(rig.ctrl, key_id=key_id, data=big, iv=IV, short_app_id=5, workaround=False, chunk=16)
    assert r.cqe.status == 0 and r.data == AESGCM(key).encrypt(IV, big, None)[:-16]


# ---- link, aborts, resets -------------------------------------------------------------------------

def test_link_down_answers_0x701_at_once(rig, hsm):
    rig.backend.kill()
    down = lambda: aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV).cqe.status == link.Status.BACKEND_UNAVAILABLE
    assert rig.backend.wait_for(down, 5)
    started = time.monotonic()
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV)
    assert _device_error(r.cqe, link.Status.BACKEND_UNAVAILABLE) and time.monotonic() - started < 1.0


def test_level1_abort_and_level2_reset_on_an_aes_queue(rig, hsm):
    ctrl = rig.ctrl
    key_id, _ = hsm.key(KeyType.AesGcmBulk256)
    rig.backend.aes_handler = lambda msg_id, request: None   # hold every AES command
    mem = aes.Placement(ctrl)
    blocks = mem.buffer(bytes(32))
    sqe = L.AesSqe(attr=0x002C, cid=4, short_app_id=5, src_len=32, src_sgl=mem.sgl(blocks), dst_len=32,
                   dst_sgl=mem.sgl(blocks), params=L.gcm_params(key_id, 0, bytes(16), IV, 0))
    aes.submit(ctrl, Q, sqe)
    assert rig.backend.wait_for(lambda: len(rig.backend.aes_requests) == 1)
    abandoned = ctrl.level1_abort(Q)
    assert abandoned[4] is not None and _device_error(abandoned[4], link.Status.ABORTED_SQ_DELETED)
    assert rig.backend.wait_for(lambda: rig.backend.cancels == [rig.backend.aes_requests[0][0]])
    rig.backend.aes_handler = hsm.handler
    assert aes.gcm(ctrl, key_id=key_id, data=b"after", iv=IV, short_app_id=5).cqe.status == 0
    ctrl.level2_reset(via_nssr=True)
    rig.wait_link_up()
    assert aes.gcm(ctrl, key_id=key_id, data=b"after reset", iv=IV, short_app_id=5).cqe.status == 0
    mem.free()


def test_a_large_answer_arriving_in_pieces_is_read_whole_and_what_follows_it_is_not_swallowed(rig, hsm):
    """A 1 MiB AES_RESPONSE trickles in (header with a few body bytes, half a megabyte, the rest with a
    stray frame right behind it): the device reads the body's rest from the socket itself as it comes
    (docs/link-protocol.md, "Framing"), completes the command, and the following frame is parsed as
    the next one (dropped as a stray), the link staying up."""
    key_id, key = hsm.key(KeyType.AesGcmBulk256)
    data = os.urandom(MAX)
    stray = link.encode_frame(0xBEEF, link.Response(0, 0, 0, 0, b"stray"))

    def trickle(msg_id: int, request: link.AesRequest) -> None:
        frame = link.encode_frame(msg_id, hsm.handler(msg_id, request))

        def send() -> None:
            for piece in (frame[:link.HEADER.size + 100], frame[link.HEADER.size + 100:MAX // 2],
                          frame[MAX // 2:] + stray):
                time.sleep(0.1)
                rig.backend.send_raw(piece)

        threading.Thread(target=send, daemon=True).start()

    rig.backend.aes_handler = trickle
    sealed = aes.gcm(rig.ctrl, key_id=key_id, data=data, iv=IV, short_app_id=5, workaround=False)
    assert (sealed.cqe.status, sealed.cqe.length) == (0, MAX)
    assert sealed.data + sealed.cqe.tag == AESGCM(key).encrypt(IV, data, None)
    rig.backend.aes_handler = hsm.handler
    again = aes.gcm(rig.ctrl, key_id=key_id, data=data[:4096], iv=IV, short_app_id=5)
    assert again.data + again.cqe.tag == AESGCM(key).encrypt(IV, data[:4096], None)
    assert len(rig.backend.hellos) == 1, "the link must not have been dropped"
    rig.assert_alive()


def test_malformed_aes_response_is_a_protocol_error(rig, hsm):
    rig.backend.aes_handler = lambda msg_id, request: link.AesResponse(1, 0, 0, 0, bytes(16), bytes(12),
                                                                       request.dst_len, b"x")
    r = aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV)
    assert _device_error(r.cqe, link.Status.BACKEND_PROTOCOL_ERROR)
    rig.backend.aes_handler = lambda msg_id, request: link.AesResponse(2, 0, 0, 0, bytes(16), bytes(12), 0, b"")
    assert _device_error(aes.gcm(rig.ctrl, key_id=1, data=bytes(32), iv=IV).cqe, link.Status.BACKEND_PROTOCOL_ERROR)
    rig.assert_alive()


def test_firmware_capabilities_report_the_gcm_workaround(rig):
    assert rig.ctrl.admin_command(L.AdminOpcode.GET_FEATURES, dw10=L.Feature.FIRMWARE_CAPABILITIES).dw0 == 1


# ---- Wycheproof -----------------------------------------------------------------------------------

def _wycheproof_gcm() -> list[dict]:
    path = VECTORS / "wycheproof_aes_gcm.json"
    if not path.exists():
        pytest.skip(f"shared vectors absent: {path} (set PYHSM_VECTORS or put shared/ beside the clone)")
    groups = json.loads(path.read_text())["testGroups"]
    return [t for g in groups if (g["keySize"], g["ivSize"], g["tagSize"]) == (256, 96, 128) for t in g["tests"]]


def test_wycheproof_aes_gcm_256_through_the_fast_path(rig, hsm):
    """Every 256-bit-key, 96-bit-IV, 128-bit-tag vector: bulk keys take only 32-byte keys and 12-byte IVs."""
    tests = _wycheproof_gcm()
    assert tests
    for t in tests:
        key_id, _ = hsm.key(KeyType.AesGcmBulk256, bytes.fromhex(t["key"]))
        iv, aad, msg, ct, tag = (bytes.fromhex(t[k]) for k in ("iv", "aad", "msg", "ct", "tag"))
        if msg:
            enc = aes.gcm(rig.ctrl, key_id=key_id, data=msg, aad=aad, iv=iv, short_app_id=5)
            if t["result"] == "valid":
                assert (enc.cqe.status, enc.data, enc.cqe.tag) == (0, ct, tag), t["tcId"]
        if ct:
            dec = aes.gcm(rig.ctrl, key_id=key_id, data=ct, aad=aad, iv=iv, decrypt=True, tag=tag, short_app_id=5)
            if t["result"] == "valid":
                assert (dec.cqe.status, dec.data) == (0, msg), t["tcId"]
            else:
                assert refused(dec.cqe, DdiStatus.AesGcmDecryptTagDoesNotMatch), t["tcId"]
        hsm.vault.keys.remove(key_id)


def test_ieee1619_and_cavp_xts_vectors_through_the_fast_path(rig, hsm):
    """XTS-AES-256 known answers (tests/vectors/xts_aes256.json: IEEE 1619-2007 vector 10, NIST CAVP
    XTSGenAES256 with the data unit sequence number as tweak) through the SGLs, both directions."""
    from tests.vectors import xts_aes256
    vectors = xts_aes256()
    assert len(vectors) >= 20
    for n, v in enumerate(vectors):
        k1, _ = hsm.key(KeyType.AesXtsBulk256, v.key1)
        k2, _ = hsm.key(KeyType.AesXtsBulk256, v.key2)
        common = dict(key_id1=k1, key_id2=k2, tweak=v.tweak, short_app_id=5, src_offset=n * 7 % 4096,
                      dst_offset=n * 13 % 4096, chunk=64 if n % 2 else 4096)
        enc = aes.xts(rig.ctrl, data=v.pt, **common)
        assert (enc.cqe.status, enc.data) == (0, v.ct), v.id
        dec = aes.xts(rig.ctrl, data=v.ct, decrypt=True, **common)
        assert (dec.cqe.status, dec.data) == (0, v.pt), v.id
        for key_id in (k1, k2):
            hsm.vault.keys.remove(key_id)
