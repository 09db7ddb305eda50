"""Key generation, lookup, deletion and every crypto operation: success paths and documented errors."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pyhsm.client import DdiError, EncodeError, Usage, key_properties
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve, HashAlgorithm, KeyClass, KeyType, RsaOpType
from tests.backend.ddi.ddi_helpers import PIN, Provisioned, expect, rsa_aes_wrap


def verify_raw(public: ec.EllipticCurvePublicKey, signature: bytes, digest: bytes, algorithm) -> None:
    half = len(signature) // 2
    der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
    public.verify(der, digest, ec.ECDSA(Prehashed(algorithm)))


@pytest.mark.parametrize("curve,size,algorithm", [(EccCurve.P256, 32, hashes.SHA256()),
                                                  (EccCurve.P384, 48, hashes.SHA384()),
                                                  (EccCurve.P521, 66, hashes.SHA512())])
def test_ecc_generate_and_sign(hsm: Provisioned, curve, size, algorithm) -> None:
    key = hsm.client.ecc_generate_key_pair(curve)
    public = serialization.load_der_public_key(key.pub_key.der)
    digest = hashlib.new(algorithm.name, b"message").digest()
    signature = hsm.client.ecc_sign(key.private_key_id, digest)
    assert len(signature) == 2 * size
    verify_raw(public, signature, digest, algorithm)


def test_ecc_errors(hsm: Provisioned) -> None:
    c = hsm.client
    derive_key = c.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE)
    expect(S.InvalidPermissions, c.ecc_sign, derive_key.private_key_id, bytes(48))
    expect(S.InvalidPermissions, c.ecc_generate_key_pair, EccCurve.P384, Usage.ENCRYPT_DECRYPT)
    expect(S.InvalidArg, c.call, "EccGenerateKeyPair", curve=9, key_tag=None,
           key_properties=key_properties(Usage.SIGN_VERIFY))
    aes = c.aes_generate_key(AesKeySize.Aes256)
    expect(S.InvalidKeyType, c.ecc_sign, aes.key_id, bytes(48))
    sign_key = c.ecc_generate_key_pair(EccCurve.P384)
    expect(S.InvalidArg, c.call, "EccSign", key_id=sign_key.private_key_id, digest=bytes(48), digest_algo=9)
    expect(S.KeyNotFound, c.ecc_sign, 0x00F0, bytes(48))
    expect(S.InvalidKeyNumber, c.ecc_sign, 0x3F00, bytes(48))


def test_ecdh_matches_host_side(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE)
    peer = ec.generate_private_key(ec.SECP384R1())
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = c.ecdh_key_exchange(key.private_key_id, peer_der, KeyType.Secret384)
    shared = peer.exchange(ec.ECDH(), serialization.load_der_public_key(key.pub_key.der))
    # Prove the device holds the same secret: derive an HMAC key from it on both sides.
    derived = c.hkdf_derive(secret.key_id, HashAlgorithm.Sha384, KeyType.HmacSha384, Usage.SIGN_VERIFY, info=b"i")
    expected_key = HKDF(hashes.SHA384(), 48, None, b"i").derive(shared)
    mac = hmac.HMAC(expected_key, hashes.SHA384())
    mac.update(b"data")
    assert c.hmac(derived.key_id, b"data") == mac.finalize()
    expect(S.InvalidKeyType, c.ecdh_key_exchange, key.private_key_id, peer_der, KeyType.Secret256)
    with pytest.raises(EncodeError):  # not a point: no Physical (raw X || Y) form, nothing is sent
        c.ecdh_key_exchange(key.private_key_id, b"\x30\x03junk", KeyType.Secret384)
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expect(S.DerAndKeyTypeMismatch, c.ecdh_key_exchange, key.private_key_id, other, KeyType.Secret384)
    sign_key = c.ecc_generate_key_pair(EccCurve.P384)
    expect(S.InvalidPermissions, c.ecdh_key_exchange, sign_key.private_key_id, peer_der, KeyType.Secret384)
    expect(S.InvalidArg, c.ecdh_key_exchange, key.private_key_id, peer_der, KeyType.Secret384, tag=0)


@pytest.mark.parametrize("size,length", [(AesKeySize.Aes128, 16), (AesKeySize.Aes192, 24), (AesKeySize.Aes256, 32)])
def test_aes_cbc_round_trip_and_chaining(hsm: Provisioned, size, length) -> None:
    c = hsm.client
    key = c.aes_generate_key(size)
    msg, iv = os.urandom(64), os.urandom(16)
    enc = c.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, msg, iv)
    assert enc.iv == enc.msg[-16:]
    dec = c.aes_encrypt_decrypt(key.key_id, AesOp.Decrypt, enc.msg, iv)
    assert dec.msg == msg and dec.iv == enc.msg[-16:]
    first = c.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, msg[:32], iv)
    second = c.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, msg[32:], first.iv)
    assert first.msg + second.msg == enc.msg


def test_aes_errors_and_bulk_keys(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.aes_generate_key(AesKeySize.Aes256)
    expect(S.InvalidArg, c.aes_encrypt_decrypt, key.key_id, AesOp.Encrypt, bytes(15), bytes(16))
    expect(S.InvalidArg, c.aes_encrypt_decrypt, key.key_id, AesOp.Encrypt, b"", bytes(16))
    expect(S.InvalidArg, c.aes_encrypt_decrypt, key.key_id, AesOp.Encrypt, bytes(16), bytes(8))
    for size in (AesKeySize.AesXtsBulk256, AesKeySize.AesGcmBulk256, AesKeySize.AesGcmBulk256Unapproved):
        bulk = c.aes_generate_key(size)
        assert bulk.bulk_key_id == bulk.key_id
        expect(S.InvalidKeyType, c.aes_encrypt_decrypt, bulk.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    assert key.bulk_key_id is None
    expect(S.InvalidPermissions, c.call, "AesGenerateKey", key_size=3, key_tag=None,
           key_properties=key_properties(Usage.DERIVE))


def test_tags_open_key_and_delete(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P256, tag=0x77)
    found = c.open_key(0x77)
    assert found.key_id == key.private_key_id and found.key_kind == KeyType.Ecc256Private
    assert found.pub_key.der == key.pub_key.der
    expect(S.KeyTagAlreadyExists, c.ecc_generate_key_pair, EccCurve.P256, tag=0x77)
    expect(S.KeyNotFound, c.open_key, 0x78)
    expect(S.KeyNotFound, c.open_key, 0)
    untagged = c.ecc_generate_key_pair(EccCurve.P256, tag=0)  # generate: tag 0 means "no tag"
    expect(S.InvalidArg, c.ecc_generate_key_pair, EccCurve.P256, tag=5, session_only=True)
    c.delete_key(key.private_key_id)
    expect(S.KeyNotFound, c.open_key, 0x77)
    expect(S.KeyNotFound, c.delete_key, key.private_key_id)
    expect(S.CannotDeleteInternalKeys, c.delete_key, c.get_unwrapping_key().key_id)
    c.delete_key(untagged.private_key_id)
    bulk = c.aes_generate_key(AesKeySize.AesGcmBulk256, tag=9)
    assert c.open_key(9).bulk_key_id == bulk.key_id


def test_hmac_and_kdfs_match_reference(hsm: Provisioned) -> None:
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P256, Usage.DERIVE)
    peer = ec.generate_private_key(ec.SECP256R1())
    der = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = c.ecdh_key_exchange(key.private_key_id, der, KeyType.Secret256)
    z = peer.exchange(ec.ECDH(), serialization.load_der_public_key(key.pub_key.der))
    from pyhsm.crypto.kdf import kbkdf
    for hash_algorithm, kind, cls, length in [(HashAlgorithm.Sha256, KeyType.HmacSha256, hashes.SHA256, 32),
                                              (HashAlgorithm.Sha512, KeyType.HmacSha512, hashes.SHA512, 64)]:
        derived = c.kbkdf_derive(secret.key_id, hash_algorithm, kind, Usage.SIGN_VERIFY, label=b"L", context=b"C")
        mac = hmac.HMAC(kbkdf(cls, z, b"L", b"C", length), cls())
        mac.update(b"m" * 1024)
        assert c.hmac(derived.key_id, b"m" * 1024) == mac.finalize()
    aes = c.hkdf_derive(secret.key_id, HashAlgorithm.Sha256, KeyType.Aes128, Usage.ENCRYPT_DECRYPT, salt=b"s")
    aes_key = HKDF(hashes.SHA256(), 16, b"s", b"").derive(z)
    ct = c.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, bytes(16), bytes(16)).msg
    enc = Cipher(algorithms.AES(aes_key), modes.CBC(bytes(16))).encryptor()
    assert ct == enc.update(bytes(16)) + enc.finalize()
    expect(S.InvalidKeyType, c.hkdf_derive, secret.key_id, HashAlgorithm.Sha256, KeyType.Secret256, Usage.DERIVE)
    expect(S.InvalidKeyType, c.hkdf_derive, key.private_key_id, HashAlgorithm.Sha256, KeyType.Aes128,
           Usage.ENCRYPT_DECRYPT)
    expect(S.InvalidPermissions, c.hkdf_derive, secret.key_id, HashAlgorithm.Sha256, KeyType.Aes128, Usage.DERIVE)
    expect(S.InvalidArg, c.kbkdf_derive, secret.key_id, HashAlgorithm.Sha256, KeyType.Aes128,
           Usage.ENCRYPT_DECRYPT, tag=0)
    expect(S.InvalidKeyType, c.hmac, secret.key_id, b"x")


def test_rsa_unwrap_and_mod_exp(hsm: Provisioned) -> None:
    c = hsm.client
    kek = c.get_unwrapping_key()
    kek_public = serialization.load_der_public_key(kek.pub_key.der)
    assert kek.pub_key.key_kind == KeyType.Rsa2kPublic and len(kek.pub_key.der) == 294
    target = rsa.generate_private_key(65537, 2048)
    pkcs8 = target.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    signer = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, pkcs8), KeyClass.Rsa, Usage.SIGN_VERIFY)
    assert signer.kind == KeyType.Rsa2kPrivate and len(signer.masked_key) == 732
    # Raw private op: the host pads (PKCS#1 v1.5 here) and checks with the public key.
    digest = hashlib.sha256(b"hello").digest()
    em = _pkcs1_v15(digest, 256)
    sig = c.rsa_mod_exp(signer.key_id, em, RsaOpType.Sign)
    target.public_key().verify(sig, b"hello", padding.PKCS1v15(), hashes.SHA256())
    expect(S.InvalidPermissions, c.rsa_mod_exp, signer.key_id, em, RsaOpType.Decrypt)
    expect(S.InvalidArg, c.rsa_mod_exp, signer.key_id, b"\xff" * 256, RsaOpType.Sign)  # Physical range check
    decryptor = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, pkcs8), KeyClass.RsaCrt, Usage.ENCRYPT_DECRYPT)
    assert decryptor.kind == KeyType.Rsa2kPrivateCrt
    ct = target.public_key().encrypt(b"secret", padding.PKCS1v15())
    assert c.rsa_mod_exp(decryptor.key_id, ct, RsaOpType.Decrypt).endswith(b"\x00secret")
    expect(S.InvalidPermissions, c.rsa_unwrap, decryptor.key_id, b"x" * 300, KeyClass.Aes, Usage.ENCRYPT_DECRYPT)
    crt_kek = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, pkcs8), KeyClass.RsaCrt, Usage.UNWRAP)
    expect(S.RsaUnwrapInvalidKek, c.rsa_unwrap, crt_kek.key_id, b"x" * 300, KeyClass.Aes, Usage.ENCRYPT_DECRYPT)
    aes_key = os.urandom(24)
    imported = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, aes_key, hashes.SHA384()), KeyClass.Aes,
                            Usage.ENCRYPT_DECRYPT, hash_algorithm=HashAlgorithm.Sha384, tag=0x10)
    assert imported.kind == KeyType.Aes192 and c.open_key(0x10).key_id == imported.key_id
    ecc = ec.generate_private_key(ec.SECP521R1())
    ecc_der = ecc.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    e = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, ecc_der), KeyClass.Ecc, Usage.SIGN_VERIFY)
    assert e.kind == KeyType.Ecc521Private and e.pub_key.key_kind == KeyType.Ecc521Public
    bulk = c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, os.urandom(32)), KeyClass.AesXtsBulk,
                        Usage.ENCRYPT_DECRYPT)
    assert bulk.bulk_key_id == bulk.key_id and bulk.kind == KeyType.AesXtsBulk256
    with pytest.raises(EncodeError):  # shorter than the RSA-2048 head the Physical format reverses
        c.rsa_unwrap(kek.key_id, bytes(100), KeyClass.Aes, Usage.ENCRYPT_DECRYPT)
    expect(S.RsaUnwrapOaepDecodeFailed, c.rsa_unwrap, kek.key_id, bytes(300), KeyClass.Aes, Usage.ENCRYPT_DECRYPT)
    bad_kwp = rsa_aes_wrap(kek_public, aes_key)[:256] + os.urandom(40)
    expect(S.RsaUnwrapAesUnwrapFailed, c.rsa_unwrap, kek.key_id, bad_kwp, KeyClass.Aes, Usage.ENCRYPT_DECRYPT)
    expect(S.KeyDecodeFailed, c.rsa_unwrap, kek.key_id, rsa_aes_wrap(kek_public, b"not der" * 3), KeyClass.Rsa,
           Usage.SIGN_VERIFY)
    expect(S.InvalidPermissions, c.rsa_unwrap, kek.key_id, rsa_aes_wrap(kek_public, aes_key), KeyClass.Aes,
           Usage.SIGN_VERIFY)
    expect(S.AesInvalidKeyLength, c.rsa_unwrap, kek.key_id, rsa_aes_wrap(kek_public, bytes(20)), KeyClass.Aes,
           Usage.ENCRYPT_DECRYPT)
    small = rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    expect(S.RsaInvalidKeyLength, c.rsa_unwrap, kek.key_id, rsa_aes_wrap(kek_public, small), KeyClass.Rsa,
           Usage.SIGN_VERIFY)
    expect(S.InvalidKeyType, c.rsa_mod_exp, imported.key_id, bytes(256), RsaOpType.Sign)


def _pkcs1_v15(digest: bytes, size: int) -> bytes:
    prefix = bytes.fromhex("3031300d060960864801650304020105000420")
    t = prefix + digest
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


def test_key_table_limits(hsm: Provisioned) -> None:
    c = hsm.client
    ids = []
    with pytest.raises(DdiError) as info:
        for _ in range(4 * 256 + 1):
            ids.append(c.aes_generate_key(AesKeySize.AesGcmBulk256, session_only=True).key_id)
    assert info.value.status is S.ReachedMaxKeys
    assert len(set(ids)) == len(ids) > 1000
    for key_id in ids[:40]:
        c.delete_key(key_id)
    kek = c.get_unwrapping_key()
    public = serialization.load_der_public_key(kek.pub_key.der)
    big = rsa.generate_private_key(65537, 4096).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    blob = rsa_aes_wrap(public, big)
    with pytest.raises(DdiError) as info:
        for _ in range(40):
            c.rsa_unwrap(kek.key_id, blob, KeyClass.RsaCrt, Usage.SIGN_VERIFY, session_only=True)
    assert info.value.status is S.NotEnoughSpace


def test_no_private_bytes_in_responses(hsm: Provisioned) -> None:
    """Every response of a key's life is scanned for the key's private scalar."""
    c = hsm.client
    transport = c.transport
    key = c.ecc_generate_key_pair(EccCurve.P384, tag=3)
    c.ecc_sign(key.private_key_id, bytes(48))
    c.open_key(3)
    c.attest_key(key.private_key_id, b"r")
    entry = hsm.partition.vault.keys.get(key.private_key_id)
    scalar = serialization.load_der_private_key(entry.material, None).private_numbers().private_value.to_bytes(48, "big")
    responses = [r.payload for r in transport.responses]
    assert len(responses) > 5 and all(scalar not in r and entry.material not in r for r in responses)
    assert all(PIN not in r for r in responses)  # the app id does appear: reports carry it
