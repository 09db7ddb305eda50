"""Mirrors aes_xts_bulk_stress.rs of the vendor's DDI integration tests (docs/conformance.md). The
vendor's threads (one per session, two XTS bulk keys each) encrypt and decrypt 1 MiB as one data unit
for 5 s through the fast path. One command of 1 MiB is exactly our device's largest AES transfer per
direction; each thread runs a fixed number of rounds with the vendor's 1 MiB, unpaced."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.types import AesKeySize, AesOp
from tests.conformance.vendor import MAX_SESSIONS, Setup, fast_path, open_retrying

ROUNDS = 2
DATA = bytes([1]) * (1024 * 1024)
TWEAK = bytes([4]) * 16


def test_aes_xts_encrypt_decrypt_multi_threaded_stress(setup: Setup) -> None:
    setup.dev.close_session()
    threads = min(setup.dev.get_device_info().tables * 7 // 2, MAX_SESSIONS)

    def worker(dev: HsmClient) -> int:
        opened = open_retrying(dev, threads)
        sess_id, short_app_id = opened.sess_id, opened.short_app_id
        keys = [dev.aes_generate_key(AesKeySize.AesXtsBulk256).bulk_key_id for _ in range(2)]
        assert None not in keys
        ids = dict(session_id=sess_id, short_app_id=short_app_id, key_id=keys[0], key_id2=keys[1], tweak=TWEAK)
        data = DATA
        for _ in range(ROUNDS):
            sealed = fast_path(setup.device, AesOp.Encrypt, data, **ids)
            assert sealed.ok, sealed
            assert len(sealed.data) == len(data) and sealed.data != data
            opened = fast_path(setup.device, AesOp.Decrypt, sealed.data, **ids)
            assert opened.ok, opened
            assert opened.data == data
        dev.close_session()
        return ROUNDS

    handles = [setup.device.open() for _ in range(threads)]
    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(worker, handles)) == ROUNDS * threads
