"""Mirrors get_cert_chain.rs of the vendor's DDI integration tests (docs/conformance.md). The
certificate-chain checks are Physical-only in the vendor suite (the simulator has one certificate)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from pyhsm.client import HsmClient
from tests.conformance.vendor import MAX_SESSIONS, Setup, physical_only

DEVICE_CALCULATED = 2   # the alias and partition-ID certificates are hashed on their own


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _chain_and_check(dev: HsmClient) -> tuple[int, bytes]:
    """Every certificate read; the thumbprint recomputed as SHA-256(SHA-256(SHA-256 of each of the
    first n-2) || SHA-256(alias) || SHA-256(partition ID)) must equal the reported one."""
    info = dev.get_cert_chain_info()
    certs = [dev.get_certificate(i) for i in range(info.num_certs)]
    head = _sha256(b"".join(_sha256(c) for c in certs[:-DEVICE_CALCULATED]))
    assert _sha256(head + b"".join(_sha256(c) for c in certs[-DEVICE_CALCULATED:])) == info.thumbprint
    return info.num_certs, info.thumbprint


def test_get_certificate_chain(setup: Setup) -> None:
    physical_only(setup)
    setup.dev.close_session()
    assert _chain_and_check(setup.dev)[0] > DEVICE_CALCULATED


def test_get_cert_chain_length_multiple_times(setup: Setup) -> None:
    physical_only(setup)
    setup.dev.close_session()
    infos = {(i.num_certs, i.thumbprint) for i in (setup.dev.get_cert_chain_info() for _ in range(3))}
    assert len(infos) == 1


def _parallel(setup: Setup, work) -> set:
    setup.dev.close_session()
    handles = [setup.device.open() for _ in range(MAX_SESSIONS - 1)]
    with ThreadPoolExecutor(len(handles)) as pool:
        return set(pool.map(work, handles))


def test_get_cert_chain_multithread(setup: Setup) -> None:
    physical_only(setup)
    assert len(_parallel(setup, _chain_and_check)) == 1


def test_get_cert_chain_info_multithread(setup: Setup) -> None:
    physical_only(setup)
    results = _parallel(setup, lambda dev: tuple(vars(dev.get_cert_chain_info()).values()))
    assert len(results) == 1
