"""Mirrors reopen_session.rs of the vendor's DDI integration tests (docs/conformance.md): a session
opened, a live migration (NSSR), the credential re-established with the saved BK3 and partition BMK,
then ReopenSession of the saved session with its BMK on the handle that opened it."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from pyhsm.client import DdiError, HsmClient
from pyhsm.protocol.ddi import mbor
from pyhsm.protocol.ddi.schemas import MASKED_KEY_METADATA, SESSION_CREDENTIAL
from tests.conformance.credential_cases import expect_invalid_key, invalid_key
from tests.conformance.vendor import (
    CRED_ID,
    CRED_PIN,
    POTA_KEY,
    Device,
    LmSetup,
    S,
    expect,
    flip,
    physical_only,
    session_credential,
    setup_for_lm,
)

RESERVED_END = 52   # version, algorithm, seven u16 lengths, 34 reserved bytes


def _migrated(device: Device) -> LmSetup:
    """common_setup_for_lm, the migration, and the credential established again with the BMK."""
    lm = setup_for_lm(device)
    device.nssr()
    device.open().establish_credential(CRED_ID, CRED_PIN, lm.masked_bk3, POTA_KEY, bmk=lm.partition_bmk)
    return lm


def _reopen(lm: LmSetup, cred: Any, pub: Any, *, handle: HsmClient | None = None, bmk: bytes | None = None,
            **request: Any) -> Any:
    fields = {"encrypted_credential": cred, "pub_key": pub,
              "bmk_session": lm.session_bmk if bmk is None else bmk}
    return (handle or lm.handle).request("ReopenSession", fields, **request)


def _credential(lm: LmSetup, cred_id: bytes = CRED_ID, pin: bytes = CRED_PIN) -> tuple[Any, Any]:
    return session_credential(lm.handle, cred_id, pin, lm.seed)


def _reopened(lm: LmSetup, **kw: Any) -> None:
    data = _reopen(lm, *_credential(lm), **kw)
    assert data.sess_id == lm.session_id and data.bmk_session


def _fails(device: Device, spoil: Any) -> None:
    lm = _migrated(device)
    cred, pub = _credential(lm)
    with pytest.raises(DdiError):
        _reopen(lm, *spoil(cred, pub))


def _with_svn(blob: bytes, svn: int) -> bytes:
    """A masked blob with the SVN of its metadata replaced (not re-authenticated)."""
    iv_len, iv_pad, meta_len = struct.unpack_from("<3H", blob, 4)
    start = RESERVED_END + iv_len + iv_pad
    meta = mbor.decode(MASKED_KEY_METADATA, blob[start:start + meta_len])
    edited = mbor.encode(MASKED_KEY_METADATA, replace(meta, svn=svn))
    assert len(edited) == meta_len
    return blob[:start] + edited + blob[start + meta_len:]


def _svn(blob: bytes) -> int:
    iv_len, iv_pad, meta_len = struct.unpack_from("<3H", blob, 4)
    start = RESERVED_END + iv_len + iv_pad
    return mbor.decode(MASKED_KEY_METADATA, blob[start:start + meta_len]).svn or 0


def test_reopen_session_with_session(device: Device) -> None:
    lm = _migrated(device)
    expect(S.FileHandleSessionIdDoesNotMatch, _reopen, lm, *_credential(lm), sess_id=lm.session_id + 3)


def test_reopen_session_without_revision(device: Device) -> None:
    lm = _migrated(device)
    expect(S.UnsupportedRevision, _reopen, lm, *_credential(lm), rev=None)


def test_reopen_session(device: Device) -> None:
    _reopened(_migrated(device))


def test_reopen_session_mismatch_sessions(device: Device) -> None:
    """Another handle with a session of its own cannot reopen the migrated session."""
    lm = _migrated(device)
    other = device.open()
    other.open_session(CRED_ID, CRED_PIN, lm.seed)
    with pytest.raises(DdiError):
        _reopen(lm, *session_credential(other, CRED_ID, CRED_PIN, lm.seed), handle=other, sess_id=lm.session_id)


def _invalid_point(device: Device, which: str) -> None:
    lm = _migrated(device)
    if device.physical:
        expect_invalid_key(which, _reopen, lm, _credential(lm)[0], invalid_key(which))
    else:
        with pytest.raises(DdiError):
            _reopen(lm, _credential(lm)[0], invalid_key(which))


def test_reopen_session_invalid_public_key_p384_y_as_prime(device: Device) -> None:
    _invalid_point(device, "y")


def test_reopen_session_invalid_public_key_p384_x_as_prime(device: Device) -> None:
    physical_only(device)
    _invalid_point(device, "x")


def test_reopen_session_invalid_public_key_p384_not_on_curve(device: Device) -> None:
    _invalid_point(device, "curve")


def test_reopen_session_invalid_public_key_p384_point_at_infinity(device: Device) -> None:
    physical_only(device)
    _invalid_point(device, "infinity")


def test_reopen_session_without_get_key(device: Device) -> None:
    lm = _migrated(device)
    cred = SESSION_CREDENTIAL(encrypted_id=bytes(range(16)), encrypted_pin=bytes(range(16, 32)),
                              encrypted_seed=bytes([2]) * 48, iv=bytes(range(32, 48)),
                              nonce=(2187282822).to_bytes(4, "little") + bytes(28), tag=bytes([29]) * 48)
    with pytest.raises(DdiError):
        _reopen(lm, cred, _credential(lm)[1])


def test_reopen_session_multiple(device: Device) -> None:
    """A reopen request is good once; repeating it fails (its nonce is used up)."""
    lm = _migrated(device)
    cred, pub = _credential(lm)
    assert _reopen(lm, cred, pub).sess_id == lm.session_id
    for _ in range(10):
        with pytest.raises(DdiError):
            _reopen(lm, cred, pub)


def test_reopen_session_tamper_id(device: Device) -> None:
    lm = _migrated(device)
    cred, pub = _credential(lm)
    expect(S.PinDecryptionFailed, _reopen, lm, replace(cred, encrypted_id=flip(cred.encrypted_id, 10)), pub)


def test_reopen_session_tamper_pin(device: Device) -> None:
    lm = _migrated(device)
    cred, pub = _credential(lm)
    expect(S.PinDecryptionFailed, _reopen, lm, replace(cred, encrypted_pin=flip(cred.encrypted_pin, 10)), pub)


def test_reopen_session_tamper_iv(device: Device) -> None:
    _fails(device, lambda c, p: (replace(c, iv=flip(c.iv, 10)), p))


def test_reopen_session_tamper_nonce(device: Device) -> None:
    _fails(device, lambda c, p: (replace(c, nonce=flip(c.nonce, 0)), p))


def test_reopen_session_tamper_tag(device: Device) -> None:
    _fails(device, lambda c, p: (replace(c, tag=flip(c.tag, 10)), p))


def test_reopen_session_tamper_pub_key(device: Device) -> None:
    _fails(device, lambda c, p: (c, replace(p, der=flip(p.der, 30))))


def test_reopen_session_null_id(device: Device) -> None:
    lm = _migrated(device)
    with pytest.raises(DdiError):
        _reopen(lm, *_credential(lm, bytes(16), CRED_PIN))


def test_reopen_session_null_pin(device: Device) -> None:
    lm = _migrated(device)
    with pytest.raises(DdiError):
        _reopen(lm, *_credential(lm, CRED_ID, bytes(16)))


def test_reopen_session_verify_nonce_change(device: Device) -> None:
    lm = _migrated(device)
    cred, pub = _credential(lm)
    assert _reopen(lm, cred, pub).sess_id == lm.session_id
    assert _credential(lm)[0].nonce != cred.nonce


def test_reopen_session_verify_public_key_not_change(device: Device) -> None:
    lm = _migrated(device)
    before = lm.handle.get_session_encryption_key().pub_key
    _reopened(lm)
    assert lm.handle.get_session_encryption_key().pub_key == before


def test_reopen_session_null_id_then_proper_id(device: Device) -> None:
    lm = _migrated(device)
    cred, pub = _credential(lm, bytes(16), CRED_PIN)
    with pytest.raises(DdiError):
        _reopen(lm, cred, pub)
    proper = _credential(lm)
    assert proper[0].nonce != cred.nonce
    assert _reopen(lm, *proper).sess_id == lm.session_id


def test_reopen_session_incorrect_id(device: Device) -> None:
    lm = _migrated(device)
    expect(S.InvalidAppCredentials, _reopen, lm, *_credential(lm, bytes([1]) * 16, CRED_PIN))


def test_reopen_session_incorrect_pin(device: Device) -> None:
    lm = _migrated(device)
    expect(S.InvalidAppCredentials, _reopen, lm, *_credential(lm, CRED_ID, bytes([1]) * 16))


def test_reopen_session_dest_smaller_svn(device: Device) -> None:
    """BMKs whose SVN was raised (a destination with a smaller SVN than the blobs claim) are refused:
    the partition BMK by EstablishCredential, the session BMK by ReopenSession; the originals work."""
    physical_only(device)
    lm = setup_for_lm(device)
    device.nssr()
    dev = device.open()
    newer = _svn(lm.partition_bmk) + 1
    with pytest.raises(DdiError):
        dev.establish_credential(CRED_ID, CRED_PIN, lm.masked_bk3, POTA_KEY, bmk=_with_svn(lm.partition_bmk, newer))
    assert dev.establish_credential(CRED_ID, CRED_PIN, lm.masked_bk3, POTA_KEY, bmk=lm.partition_bmk)
    with pytest.raises(DdiError):
        _reopen(lm, *_credential(lm), bmk=_with_svn(lm.session_bmk, _svn(lm.session_bmk) + 1))
    _reopened(lm)


def test_reopen_session_multi_threaded_single_winner(device: Device) -> None:
    """One reopen request sent from 16 threads on the same handle at once: one succeeds."""
    lm = _migrated(device)
    cred, pub = _credential(lm)

    def attempt(_: int) -> bool:
        try:
            _reopen(lm, cred, pub)
        except DdiError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(attempt, range(16))) == 1
