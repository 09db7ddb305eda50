"""Mirrors ecc_sign_stress.rs of the vendor's DDI integration tests (docs/conformance.md). The
vendor signs for 5 s on each of 7 threads; here each thread signs a fixed count (the suite stays
fast) and every signature is verified."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyhsm.client import DdiError, HsmClient
from pyhsm.protocol.ddi.types import EccCurve, HashAlgorithm
from tests.conformance.vendor import MAX_SESSIONS, S, Setup, ecc_verify

DIGEST = bytes([100]) * 20
SIGNATURES = 20


def test_ecc_sign_multi_threaded_stress(setup: Setup) -> None:
    setup.dev.close_session()

    def worker(dev: HsmClient) -> int:
        for _ in range(MAX_SESSIONS):   # concurrent logins race for the nonce: retry NonceMismatch
            try:
                setup.device.open_session(dev)
                break
            except DdiError as err:
                assert err.status is S.NonceMismatch
        key = dev.ecc_generate_key_pair(EccCurve.P256)
        for _ in range(SIGNATURES):
            ecc_verify(dev.ecc_sign(key.private_key_id, DIGEST, HashAlgorithm.Sha256), key.pub_key.der, DIGEST)
        return SIGNATURES

    handles = [setup.device.open() for _ in range(MAX_SESSIONS - 1)]
    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(worker, handles)) == SIGNATURES * len(handles)
