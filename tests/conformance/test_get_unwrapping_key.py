"""Mirrors get_unwrapping_key.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyhsm.client import DdiError, HsmClient
from pyhsm.protocol.ddi.types import KeyType
from tests.conformance.vendor import MAX_SESSIONS, S, Setup, expect


def test_get_unwrapping_key_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "GetUnwrappingKey", {}, sess_id=None, rev=None)


def test_get_unwrapping_key_incorrect_session_id(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "GetUnwrappingKey", {}, sess_id=20, rev=None)


def test_get_unwrapping_key(setup: Setup) -> None:
    key = setup.dev.get_unwrapping_key()
    assert key.pub_key.key_kind == KeyType.Rsa2kPublic and key.masked_key
    public = serialization.load_der_public_key(key.pub_key.der)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048


def test_get_unwrapping_key_multi_threaded_stress(setup: Setup) -> None:
    setup.dev.close_session()

    def worker(dev: HsmClient) -> bytes:
        for _ in range(MAX_SESSIONS):   # concurrent logins race for the nonce: retry NonceMismatch
            try:
                setup.device.open_session(dev)
                break
            except DdiError as err:
                assert err.status is S.NonceMismatch
        return dev.get_unwrapping_key().pub_key.der

    handles = [setup.device.open() for _ in range(MAX_SESSIONS)]
    with ThreadPoolExecutor(MAX_SESSIONS) as pool:
        assert len(set(pool.map(worker, handles))) == 1
