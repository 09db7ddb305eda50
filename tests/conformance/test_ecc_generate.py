"""Mirrors ecc_generate.rs of the vendor's DDI integration tests (docs/conformance.md). The unmask
test returns early on a Physical device in the vendor suite; ours unmasks under both profiles."""

from __future__ import annotations

from pyhsm.client import HsmClient, Usage, key_properties
from pyhsm.protocol.ddi.types import EccCurve, HashAlgorithm
from tests.conformance.vendor import S, Setup, ecc_verify, expect, generate, malformed

P256 = {"curve": int(EccCurve.P256), "key_tag": None, "key_properties": key_properties(Usage.SIGN_VERIFY)}


def _second_session(setup: Setup) -> HsmClient:
    """The vendor opens another file handle with a session of its own for session-only keys."""
    dev = setup.device.open()
    setup.device.open_session(dev)
    return dev


def test_ecc_generate_malformed_ddi(setup: Setup) -> None:
    assert malformed(setup, "EccGenerateKeyPair") == [S.DdiDecodeFailed, S.DdiDecodeFailed]


def test_ecc_generate_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EccGenerateKeyPair", P256, sess_id=None)


def test_ecc_generate_invalid_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EccGenerateKeyPair", P256, sess_id=20)


def test_ecc_generate_invalid_key_usage(setup: Setup) -> None:
    expect(S.InvalidPermissions, generate, setup.dev, "EccGenerateKeyPair", Usage.ENCRYPT_DECRYPT,
           curve=int(EccCurve.P256))


def test_ecc_generate_session_only_key_with_key_tag(setup: Setup) -> None:
    expect(S.InvalidArg, _second_session(setup).ecc_generate_key_pair, EccCurve.P256, tag=0x9876, session_only=True)


def test_ecc_generate_session_only_key(setup: Setup) -> None:
    key = _second_session(setup).ecc_generate_key_pair(EccCurve.P256, session_only=True)
    assert key.pub_key.der and key.masked_key


def test_ecc_generate(setup: Setup) -> None:
    for curve in EccCurve:
        assert setup.dev.ecc_generate_key_pair(curve).pub_key.der


def test_ecc_generate_and_unmask(setup: Setup) -> None:
    """Both the generated and the unmasked key sign a 20-byte digest (named SHA-256) verifiably."""
    dev = setup.dev
    key = dev.ecc_generate_key_pair(EccCurve.P256)
    unmasked = dev.unmask_key(key.masked_key).key_id
    assert unmasked != key.private_key_id
    digest = bytes([1]) * 20
    for key_id in (key.private_key_id, unmasked):
        ecc_verify(dev.ecc_sign(key_id, digest, HashAlgorithm.Sha256), key.pub_key.der, digest)
