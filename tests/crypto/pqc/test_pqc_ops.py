"""ML-DSA and ML-KEM keys held in the HSM: generation, signing, decapsulation, public keys, masking,
refusals; cross-checked against cryptography and the independent pure-Python dilithium-py/kyber-py."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mldsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from dilithium_py.ml_dsa import ML_DSA_65, ML_DSA_87
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

from pyhsm.client import key_properties
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyType, Usage
from tests.backend.ddi.ddi_helpers import Provisioned, expect

DILITHIUM = {65: ML_DSA_65, 87: ML_DSA_87}
KYBER = {768: ML_KEM_768, 1024: ML_KEM_1024}
CRYPTO_DSA = {65: mldsa.MLDSA65PublicKey, 87: mldsa.MLDSA87PublicKey}


def secret_fingerprint(hsm: Provisioned, secret_key_id: int, msg: bytes = b"fingerprint") -> bytes:
    """HMAC-SHA-256(HKDF-SHA-256(secret), msg) computed inside the HSM: proves a secret without exporting it."""
    derived = hsm.client.hkdf_derive(secret_key_id, HashAlgorithm.Sha256, KeyType.HmacSha256, Usage.SIGN_VERIFY,
                                     info=b"fp", session_only=True)
    tag = hsm.client.hmac(derived.key_id, msg)
    hsm.client.delete_key(derived.key_id)
    return tag


def local_fingerprint(secret: bytes, msg: bytes = b"fingerprint") -> bytes:
    key = HKDF(hashes.SHA256(), 32, None, b"fp").derive(secret)
    return hmac.new(key, msg, hashlib.sha256).digest()


@pytest.mark.parametrize("params", [65, 87])
def test_mldsa_sign_cross_checked(hsm: Provisioned, params: int) -> None:
    key = hsm.client.mldsa_generate_key(params)
    assert hsm.client.mldsa_get_public_key(key.key_id) == key.pub_key
    for message, context in ((b"hello", None), (b"x" * 4000, b"ctx-" * 60)):
        sig = hsm.client.mldsa_sign(key.key_id, message, context)
        CRYPTO_DSA[params].from_public_bytes(key.pub_key).verify(sig, message, context or b"")
        assert DILITHIUM[params].verify(key.pub_key, message, sig, ctx=context or b"")
        assert not DILITHIUM[params].verify(key.pub_key, message + b"!", sig, ctx=context or b"")


@pytest.mark.parametrize("params", [768, 1024])
def test_mlkem_decapsulate_cross_checked(hsm: Provisioned, params: int) -> None:
    key = hsm.client.mlkem_generate_key(params)
    assert hsm.client.mlkem_get_public_key(key.key_id) == key.pub_key
    secret, ciphertext = KYBER[params].encaps(key.pub_key)     # independent implementation encapsulates
    shared = hsm.client.mlkem_decapsulate(key.key_id, ciphertext, session_only=True)
    assert secret_fingerprint(hsm, shared.key_id) == local_fingerprint(secret)
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]    # implicit rejection: another secret, no error
    other = hsm.client.mlkem_decapsulate(key.key_id, tampered, session_only=True)
    assert secret_fingerprint(hsm, other.key_id) != local_fingerprint(secret)


def test_seeded_generation_matches_the_independent_implementations(hsm: Provisioned) -> None:
    seed = bytes(range(32))
    assert hsm.client.mldsa_generate_key(65, seed=seed).pub_key == ML_DSA_65.key_derive(seed)[0]
    kem_seed = bytes(range(64))
    assert hsm.client.mlkem_generate_key(768, seed=kem_seed).pub_key == ML_KEM_768.key_derive(kem_seed)[0]


def test_masked_pqc_keys_come_back_with_unmask(hsm: Provisioned) -> None:
    dsa = hsm.client.mldsa_generate_key(87, tag=0x51)
    kem = hsm.client.mlkem_generate_key(1024)
    for key in (dsa, kem):
        hsm.client.delete_key(key.key_id)
    back_dsa = hsm.client.unmask_key(dsa.masked_key)
    back_kem = hsm.client.unmask_key(kem.masked_key)
    assert back_dsa.kind == KeyType.MlDsa87Private and back_kem.kind == KeyType.MlKem1024Private
    assert hsm.client.open_key(0x51).key_id == back_dsa.key_id
    sig = hsm.client.mldsa_sign(back_dsa.key_id, b"after unmask")
    assert ML_DSA_87.verify(dsa.pub_key, b"after unmask", sig)
    secret, ct = ML_KEM_1024.encaps(kem.pub_key)
    shared = hsm.client.mlkem_decapsulate(back_kem.key_id, ct, session_only=True)
    assert secret_fingerprint(hsm, shared.key_id) == local_fingerprint(secret)


def test_pqc_keys_survive_a_backend_restart(hsm: Provisioned) -> None:
    from pyhsm.backend.ddi.partition import Partition
    from pyhsm.client import HsmClient
    from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport
    key = hsm.client.mldsa_generate_key(65, tag=7)
    old = hsm.partition
    restarted = Partition(serial=old.serial, index=0, state_dir=old._store.path.parent, identity=old._identity)
    client = HsmClient(LocalTransport(restarted))
    client.open_session(APP_ID, PIN)
    key_id = client.open_key(7).key_id
    assert client.mldsa_get_public_key(key_id) == key.pub_key


def test_pqc_refusals(hsm: Provisioned) -> None:
    c = hsm.client
    expect(DdiStatus.InvalidArg, c.mldsa_generate_key, 44)
    expect(DdiStatus.InvalidArg, c.mlkem_generate_key, 512)
    expect(DdiStatus.InvalidArg, c.mldsa_generate_key, 65, seed=bytes(31))
    expect(DdiStatus.InvalidArg, c.mlkem_generate_key, 768, seed=bytes(32))
    expect(DdiStatus.InvalidPermissions, c.call, "MlDsaGenerateKey", params=65,
           key_properties=key_properties(Usage.DERIVE))
    expect(DdiStatus.InvalidPermissions, c.call, "MlKemGenerateKey", params=768,
           key_properties=key_properties(Usage.SIGN_VERIFY))
    dsa = c.mldsa_generate_key(65)
    kem = c.mlkem_generate_key(768)
    expect(DdiStatus.InvalidKeyType, c.mldsa_sign, kem.key_id, b"m")
    expect(DdiStatus.InvalidKeyType, c.mlkem_decapsulate, dsa.key_id, bytes(1088))
    expect(DdiStatus.InvalidArg, c.mlkem_decapsulate, kem.key_id, bytes(1087))
    with pytest.raises(MborError):   # FIPS 204 allows at most 255 context bytes; the schema too
        c.mldsa_sign(dsa.key_id, b"m", b"c" * 256)
    expect(DdiStatus.KeyNotFound, c.mldsa_sign, 0x0300, b"m")
