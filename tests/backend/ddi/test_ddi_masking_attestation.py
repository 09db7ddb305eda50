"""Masked-key blobs (exact format, tamper rejection, UnmaskKey rules), attestation, certificates, BK3."""

from __future__ import annotations

import hashlib
import struct

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pyhsm.backend.ddi import masking
from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve, Flag, KeyType
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, Provisioned, expect

SPEC_METADATA = bytes.fromhex(
    "A5 18 01 1B" + "00" * 7 + "01 18 02 1A 00 00 00 0C 18 03 A1 18 01 80 00 20 20 0C" + "00" * 30
    + "18 06 80 00 00 18 07 19 00 20")


def test_metadata_matches_the_spec_example() -> None:
    meta = masking.Metadata(KeyType.Aes256, int(Flag.LOCAL | Flag.ENCRYPT | Flag.DECRYPT), 0, bytes(16), 32)
    assert meta.encode() == SPEC_METADATA
    assert masking.Metadata.decode(SPEC_METADATA) == meta


def test_blob_layout_and_sizes(hsm: Provisioned) -> None:
    c = hsm.client
    aes = c.aes_generate_key(AesKeySize.Aes256)
    blob = aes.masked_key
    assert len(blob) == 220
    version, algorithm, iv_len, iv_pad, meta_len, meta_pad, key_len, key_pad, tag_len = struct.unpack_from("<9H", blob)
    assert (version, algorithm, iv_len, iv_pad, tag_len) == (1, 1, 16, 0, 48)
    assert (meta_len, meta_pad, key_len, key_pad) == (69, 3, 32, 0)
    assert blob[18:52] == bytes(34)
    meta = masking.Metadata.decode(blob[68:68 + 69])
    assert meta.key_type == KeyType.Aes256 and meta.app_id == APP_ID and meta.key_length == 32
    assert meta.flags == Flag.LOCAL | Flag.ENCRYPT | Flag.DECRYPT
    assert len(c.ecc_generate_key_pair(EccCurve.P256, tag=7).masked_key) == 340


def test_unmask_restores_a_deleted_key(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P384, tag=0x42, label=b"my label")
    c.delete_key(key.private_key_id)
    back = c.unmask_key(key.masked_key)
    assert back.kind == KeyType.Ecc384Private and back.pub_key.der == key.pub_key.der
    assert back.masked_key == key.masked_key
    assert c.open_key(0x42).key_id == back.key_id
    assert masking.peek_metadata(key.masked_key).label == b"my label"
    expect(S.KeyTagAlreadyExists, c.unmask_key, key.masked_key)


def test_tampered_and_foreign_blobs_are_rejected(hsm: Provisioned) -> None:
    c = hsm.client
    blob = c.aes_generate_key(AesKeySize.Aes128).masked_key
    for offset in (0, 20, 60, 80, 150, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[offset] ^= 0x40
        expect(S.MaskedKeyDecodeFailed, c.unmask_key, bytes(tampered))
    expect(S.MaskedKeyDecodeFailed, c.unmask_key, blob[:-1])
    expect(S.MaskedKeyDecodeFailed, c.unmask_key, blob + b"\0\0\0\0")
    expect(S.MaskedKeyDecodeFailed, c.unmask_key, b"")
    expect(S.UnmaskUnwrappingKeyNotAllowed, c.unmask_key, c.get_unwrapping_key().masked_key)


def test_session_blob_needs_its_session(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    meta = masking.peek_metadata(key.masked_key)
    assert meta.session_key and meta.owner == c.session_id
    restored = c.unmask_key(key.masked_key)
    assert restored.key_id != key.key_id
    other = hsm.another_client()
    other.open_session(APP_ID, PIN)
    expect(S.MaskedKeyDecodeFailed, other.unmask_key, key.masked_key)  # other session's masking key


def _verify_report(report: bytes, public: ec.EllipticCurvePublicKey) -> dict:
    """Decode with an independent CBOR implementation and verify the ES384 signature."""
    sign1 = cbor2.loads(report)
    assert isinstance(sign1, cbor2.CBORTag) and sign1.tag == 18
    protected, unprotected, payload, signature = sign1.value
    assert cbor2.loads(protected) == {1: -35, 3: "application/cbor"} and unprotected == {}
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    public.verify(der, to_sign, ec.ECDSA(hashes.SHA384()))
    return cbor2.loads(payload)


def test_attest_key_report_verifies(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P256)
    report = c.attest_key(key.private_key_id, b"challenge")
    assert len(report) <= 834
    claims = _verify_report(report, c.attestation_public_key())
    assert sorted(claims) == [0, 1, 2, 3, 4, 5, 6] and claims[0] == 1
    nums = serialization.load_der_public_key(key.pub_key.der).public_numbers()
    assert len(claims[1]) == 525
    cose_key = cbor2.loads(claims[1][:claims[2]])
    assert cose_key == {1: 2, -1: 1, -2: nums.x.to_bytes(32, "big").lstrip(b"\0"),
                        -3: nums.y.to_bytes(32, "big").lstrip(b"\0")}
    assert not any(claims[1][claims[2]:])
    assert claims[3] == (1 << 2) | (1 << 5) | (1 << 6)  # generated, sign, verify
    assert claims[4] == APP_ID and claims[5] == b"challenge".ljust(128, b"\0") and claims[6] == bytes(16)
    aes = c.aes_generate_key(AesKeySize.Aes256)
    aes_claims = _verify_report(c.attest_key(aes.key_id, b""), c.attestation_public_key())  # Physical: any kind
    assert aes_claims[2] == 0 and not any(aes_claims[1]) and aes_claims[3] == (1 << 2) | (1 << 3) | (1 << 4)


def test_certificate_chain(client: HsmClient, identity) -> None:
    info = client.get_cert_chain_info()
    cert = client.get_certificate(0)
    assert info.num_certs == 1 and info.thumbprint == hashlib.sha256(cert).digest()
    assert cert == identity.certificate_chain()[0]
    x509.load_der_x509_certificate(cert)
    expect(S.InvalidArg, client.get_certificate, 1)
    expect(S.InvalidArg, client.get_certificate, 0, slot_id=1)


def test_physical_thumbprint_formula() -> None:
    from pyhsm.backend.ddi.ops.certs import thumbprint
    chain = [b"root", b"mid", b"alias", b"leaf"]
    h = lambda d: hashlib.sha256(d).digest()  # noqa: E731
    assert thumbprint(chain) == h(h(h(b"root") + h(b"mid")) + h(b"alias") + h(b"leaf"))


def test_bk3_and_sealed_storage(client: HsmClient) -> None:
    masked = client.init_bk3(BK3)
    assert len(masked) == 236 and masked != client.init_bk3(BK3)
    expect(S.InvalidArg, client.init_bk3, BK3[:47])
    expect(S.SealedBk3NotPresent, client.get_sealed_bk3)
    expect(S.SealedBk3TooLarge, client.set_sealed_bk3, bytes(513))
    client.set_sealed_bk3(b"sealed")
    assert client.get_sealed_bk3() == b"sealed"
    expect(S.SealedBk3AlreadySet, client.set_sealed_bk3, b"again")


def test_masked_bk3_of_another_device_is_rejected(client: HsmClient, tmp_path) -> None:
    from pyhsm.backend.ddi.partition import Partition
    from tests.backend.ddi.ddi_helpers import LocalTransport
    from tests.backend.ddi.ddi_identity import TestIdentity
    other_id = TestIdentity("OTHER-0002")
    other = HsmClient(LocalTransport(Partition(serial=other_id.serial, index=0, state_dir=tmp_path / "o",
                                               identity=other_id)))
    foreign = other.init_bk3(BK3)
    expect(S.MaskedKeyDecodeFailed, client.establish_credential, APP_ID, PIN, foreign,
           ec.generate_private_key(ec.SECP384R1()))


def test_aes_key_after_unmask_still_decrypts(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.aes_generate_key(AesKeySize.Aes192)
    ct = c.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, bytes(16), bytes(16)).msg
    c.delete_key(key.key_id)
    again = c.unmask_key(key.masked_key)
    assert c.aes_encrypt_decrypt(again.key_id, AesOp.Decrypt, ct, bytes(16)).msg == bytes(16)


@pytest.mark.parametrize("kind", [KeyType.Ecc521Private])
def test_p521_blob_round_trip(hsm: Provisioned, kind) -> None:
    key = hsm.client.ecc_generate_key_pair(EccCurve.P521)
    assert masking.peek_metadata(key.masked_key).key_length == 241
    hsm.client.delete_key(key.private_key_id)
    assert hsm.client.unmask_key(key.masked_key).kind == kind
