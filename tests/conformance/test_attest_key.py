"""Mirrors attest_key.rs of the vendor's DDI integration tests (docs/conformance.md). Physical-only
in the vendor suite: reports on every key kind, checked against the certificate chain."""

from __future__ import annotations

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pyhsm.client import HsmClient, Usage
from pyhsm.protocol.ddi.types import AesKeySize, EccCurve, KeyClass, KeyType
from tests.conformance.vendor import Setup, ecc_key_pair, ecdh_secret, hmac_key, physical_only, rsa_import

REPORT_DATA = bytes([2]) * 128
REPORT_MAX = 834   # tag + protected header + largest payload + signature + COSE framing
FLAG_BITS = ("imported", "session", "generated", "encrypt", "decrypt", "sign", "verify", "wrap", "unwrap", "derive")


def _chain(dev: HsmClient) -> list[x509.Certificate]:
    """helper_get_cert_chain + helper_verify_cert_chain: root first, each certificate issued by the one before."""
    count = dev.get_cert_chain_info().num_certs
    certs = [x509.load_der_x509_certificate(dev.get_certificate(i)) for i in range(count)]
    for issuer, cert in zip(certs, certs[1:]):
        cert.verify_directly_issued_by(issuer)
    return certs


def _report(setup: Setup, key_id: int) -> dict:
    """AttestKey, the COSE_Sign1 verified with the partition-ID (last) certificate; the claims."""
    report = setup.dev.attest_key(key_id, REPORT_DATA)
    assert len(report) <= REPORT_MAX
    signer = _chain(setup.dev)[-1].public_key()
    sign1 = cbor2.loads(report)
    protected, _, payload, signature = sign1.value
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    signer.verify(der, to_sign, ec.ECDSA(hashes.SHA384()))
    claims = cbor2.loads(payload)
    assert claims[5] == REPORT_DATA and len(claims[1]) >= claims[2]
    return claims


def _flags(claims: dict) -> set[str]:
    return {name for bit, name in enumerate(FLAG_BITS) if claims[3] >> bit & 1}


def _cose_public(claims: dict) -> dict:
    return cbor2.loads(claims[1][:claims[2]])


def _no_public_key(claims: dict) -> None:
    assert claims[2] == 0 and not any(claims[1])


def _check_ecc(claims: dict, pub_der: bytes, curve_id: int) -> None:
    nums = serialization.load_der_public_key(pub_der).public_numbers()
    key = _cose_public(claims)
    assert key[-1] == curve_id
    assert int.from_bytes(key[-2], "big") == nums.x and int.from_bytes(key[-3], "big") == nums.y


def _check_rsa(claims: dict, pub_der: bytes) -> None:
    nums = serialization.load_der_public_key(pub_der).public_numbers()
    key = _cose_public(claims)
    assert int.from_bytes(key[-1], "big") == nums.n and int.from_bytes(key[-2], "big") == nums.e


def test_attest_ecc_signing_key(setup: Setup) -> None:
    physical_only(setup)
    key = ecc_key_pair(setup.dev, EccCurve.P256, Usage.SIGN_VERIFY)
    claims = _report(setup, key.private_key_id)
    assert _flags(claims) == {"generated", "sign", "verify"}
    _check_ecc(claims, key.pub_key.der, 1)


def test_attest_ecc_seed_key(setup: Setup) -> None:
    physical_only(setup)
    key = ecc_key_pair(setup.dev, EccCurve.P256, Usage.DERIVE)
    claims = _report(setup, key.private_key_id)
    assert _flags(claims) == {"generated", "derive"}
    _check_ecc(claims, key.pub_key.der, 1)


def test_attest_rsa_unwrapping_key(setup: Setup) -> None:
    physical_only(setup)
    kek = setup.dev.get_unwrapping_key()
    claims = _report(setup, kek.key_id)
    assert _flags(claims) == {"generated", "unwrap"}
    _check_rsa(claims, kek.pub_key.der)


def test_attest_rsa_decryption_key(setup: Setup) -> None:
    physical_only(setup)
    key = rsa_import(setup.dev, 3072)
    claims = _report(setup, key.key_id)
    assert _flags(claims) == {"imported", "encrypt", "decrypt"}
    _check_rsa(claims, key.pub_key.der)


def _attest_rsa_der_import(setup: Setup, bits: int, crt: bool) -> None:
    """The report of an imported key equals the report of the same key unmasked from its blob."""
    physical_only(setup)
    key = rsa_import(setup.dev, bits, KeyClass.RsaCrt if crt else KeyClass.Rsa)
    first = _report(setup, key.key_id)
    setup.dev.delete_key(key.key_id)
    again = _report(setup, setup.dev.unmask_key(key.masked_key).key_id)
    assert all(first[i] == again[i] for i in (0, 1, 2, 3, 4, 6))


def test_attest_masked_key_rsa_2k_no_crt_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 2048, False)


def test_attest_masked_key_rsa_3k_no_crt_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 3072, False)


def test_attest_masked_key_rsa_4k_no_crt_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 4096, False)


def test_attest_masked_key_rsa_2k_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 2048, True)


def test_attest_masked_key_rsa_3k_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 3072, True)


def test_attest_masked_key_rsa_4k_der_import(setup: Setup) -> None:
    _attest_rsa_der_import(setup, 4096, True)


def test_attest_aes_key(setup: Setup) -> None:
    physical_only(setup)
    claims = _report(setup, setup.dev.aes_generate_key(AesKeySize.Aes128).key_id)
    assert _flags(claims) == {"generated", "encrypt", "decrypt"}
    _no_public_key(claims)


def test_attest_aes_xts_bulk_key(setup: Setup) -> None:
    physical_only(setup)
    claims = _report(setup, setup.dev.aes_generate_key(AesKeySize.AesXtsBulk256, session_only=True).key_id)
    assert _flags(claims) == {"imported", "session", "encrypt", "decrypt"}
    _no_public_key(claims)


def test_attest_hmac_key(setup: Setup) -> None:
    physical_only(setup)
    key = hmac_key(setup.dev, KeyType.HmacSha384)
    assert len(setup.dev.hmac(key.key_id, bytes(64))) == 48
    claims = _report(setup, key.key_id)
    assert _flags(claims) == {"session", "generated"}
    _no_public_key(claims)


def test_attest_secret_key(setup: Setup) -> None:
    physical_only(setup)
    secret = ecdh_secret(setup.dev)
    assert secret.key_id != 0
    claims = _report(setup, secret.key_id)
    assert _flags(claims) == {"generated", "derive"}
    _no_public_key(claims)
