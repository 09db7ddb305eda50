"""Mirrors aes_gcm_bulk_stress.rs of the vendor's DDI integration tests (docs/conformance.md). The
vendor's threads (one per session, at most one GCM bulk key each) encrypt and decrypt for 5 s through
the fast path; here each thread runs a fixed number of rounds (the suite stays fast)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.types import AesKeySize, AesOp
from tests.conformance.vendor import MAX_SESSIONS, Setup, fast_path, open_retrying

ROUNDS = 4
DATA = bytes([1]) * 16384
AAD = bytes([4]) * 32
IV = bytes([3]) * 12


def test_aes_gcm_encrypt_decrypt_multi_threaded_stress(setup: Setup) -> None:
    setup.dev.close_session()
    threads = min(setup.dev.get_device_info().tables * 7, MAX_SESSIONS)

    def worker(dev: HsmClient) -> int:
        opened = open_retrying(dev, threads)
        sess_id, short_app_id = opened.sess_id, opened.short_app_id
        key = dev.aes_generate_key(AesKeySize.AesGcmBulk256Unapproved)
        assert key.bulk_key_id is not None
        ids = dict(session_id=sess_id, short_app_id=short_app_id, key_id=key.bulk_key_id, iv=IV, aad=AAD)
        for _ in range(ROUNDS):
            sealed = fast_path(setup.device, AesOp.Encrypt, DATA, **ids)
            assert sealed.ok, sealed
            assert len(sealed.data) == len(DATA) and sealed.data != DATA
            opened = fast_path(setup.device, AesOp.Decrypt, sealed.data, tag=sealed.tag, **ids)
            assert opened.ok, opened
            assert opened.data == DATA
        dev.close_session()
        return ROUNDS

    handles = [setup.device.open() for _ in range(threads)]
    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(worker, handles)) == ROUNDS * threads
