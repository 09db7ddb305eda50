"""NIST ACVP and Wycheproof vectors through the HSM's operations (seeded key generation, signing,
decapsulation) and through the provider layer the operations use (verification).

What runs where:
- ACVP ML-KEM / ML-DSA keyGen: HSM MlKemGenerateKey / MlDsaGenerateKey with the vector's seed.
- Wycheproof ML-KEM (seed, c, K): HSM generate + MlKemDecapsulate; K is proven by an in-HSM HMAC.
- Wycheproof ML-DSA sign_seed: HSM generate (public key must match) + MlDsaSign; the HSM signs hedged,
  so its signature differs from the deterministic vector and is checked by verification instead.
- Wycheproof ML-DSA verify and ACVP ML-DSA sigVer (internal interface, via mu): provider layer only,
  since the HSM has no verify operation.
ACVP sigGen (internal interface on an expanded key) and encapDecap (expanded keys, fixed m) need
inputs OpenSSL does not accept, so they are not run; their algorithms are covered by the above.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa
from dilithium_py.ml_dsa import ML_DSA_65, ML_DSA_87

from pyhsm.crypto.pqc import MLDSA, default_provider
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.ddi.status import DdiStatus
from tests.backend.ddi.ddi_helpers import Provisioned, expect
from tests.crypto.pqc.pqc_vectors import cases, h
from tests.crypto.pqc.test_pqc_ops import local_fingerprint, secret_fingerprint


@pytest.mark.parametrize("params", [768, 1024])
def test_acvp_mlkem_keygen_through_hsm(hsm: Provisioned, params: int) -> None:
    count = 0
    for _, t in cases(f"mlkem{params}_keygen.json"):
        key = hsm.client.mlkem_generate_key(params, seed=h(t["d"]) + h(t["z"]), session_only=True)
        assert key.pub_key == h(t["ek"]), t["tcId"]
        hsm.client.delete_key(key.key_id)
        count += 1
    assert count == 17


@pytest.mark.parametrize("params", [65, 87])
def test_acvp_mldsa_keygen_through_hsm(hsm: Provisioned, params: int) -> None:
    count = 0
    for _, t in cases(f"mldsa{params}_keygen.json"):
        key = hsm.client.mldsa_generate_key(params, seed=h(t["seed"]), session_only=True)
        assert key.pub_key == h(t["pk"]), t["tcId"]
        hsm.client.delete_key(key.key_id)
        count += 1
    assert count == 17


@pytest.mark.parametrize("params", [768, 1024])
def test_wycheproof_mlkem_decapsulation_through_hsm(hsm: Provisioned, params: int) -> None:
    valid = invalid = 0
    for _, t in cases(f"wycheproof_mlkem{params}.json"):
        seed, ct = h(t["seed"]), h(t["c"])
        if t["result"] == "invalid" and (len(seed) != 64 or len(ct) != (1088 if params == 768 else 1568)):
            status = DdiStatus.InvalidArg
            if len(seed) != 64:
                expect(status, hsm.client.mlkem_generate_key, params, seed=seed, session_only=True)
            else:
                key = hsm.client.mlkem_generate_key(params, seed=seed, session_only=True)
                expect(status, hsm.client.mlkem_decapsulate, key.key_id, ct, session_only=True)
                hsm.client.delete_key(key.key_id)
            invalid += 1
            continue
        key = hsm.client.mlkem_generate_key(params, seed=seed, session_only=True)
        if "ek" in t:
            assert key.pub_key == h(t["ek"]), t["tcId"]
        shared = hsm.client.mlkem_decapsulate(key.key_id, ct, session_only=True)
        matches = secret_fingerprint(hsm, shared.key_id) == local_fingerprint(h(t["K"]))
        assert matches == (t["result"] == "valid"), t["tcId"]
        for key_id in (key.key_id, shared.key_id):
            hsm.client.delete_key(key_id)
        valid += 1
    assert valid > 90 and invalid > 0


@pytest.mark.parametrize("params", [65, 87])
def test_wycheproof_mldsa_sign_seed_through_hsm(hsm: Provisioned, params: int) -> None:
    independent = {65: ML_DSA_65, 87: ML_DSA_87}[params]
    signed = 0
    for group, t in cases(f"wycheproof_mldsa{params}_sign_seed.json"):
        seed = h(group["privateSeed"])
        if "msg" not in t:     # "Internal" cases give only mu; the HSM signs messages
            continue
        if "IncorrectPrivateKeyLength" in t["flags"] or len(seed) != 32:
            expect(DdiStatus.InvalidArg, hsm.client.mldsa_generate_key, params, seed=seed, session_only=True)
            continue
        key = hsm.client.mldsa_generate_key(params, seed=seed, session_only=True)
        assert key.pub_key == h(group["publicKey"])
        msg, ctx = h(t["msg"]), h(t.get("ctx", ""))
        if t["result"] == "invalid":   # InvalidContext: longer than 255 bytes, not encodable
            with pytest.raises(MborError):
                hsm.client.mldsa_sign(key.key_id, msg, ctx)
        else:
            sig = hsm.client.mldsa_sign(key.key_id, msg, ctx)
            assert independent.verify(key.pub_key, msg, sig, ctx=ctx), t["tcId"]
            assert default_provider().mldsa_verify(MLDSA[params], key.pub_key, msg, h(t["sig"]), ctx)
            signed += 1
        hsm.client.delete_key(key.key_id)
    assert signed > 20


@pytest.mark.parametrize("params", [65, 87])
def test_wycheproof_mldsa_verify_through_provider(params: int) -> None:
    provider = default_provider()
    count = 0
    for group, t in cases(f"wycheproof_mldsa{params}_verify.json"):
        ok = provider.mldsa_verify(MLDSA[params], h(group["publicKey"]), h(t["msg"]), h(t["sig"]),
                                   h(t.get("ctx", "")))
        assert ok == (t["result"] == "valid"), t["tcId"]
        count += 1
    assert count > 100


@pytest.mark.parametrize("params", [65, 87])
def test_acvp_mldsa_sigver_internal_via_mu(params: int) -> None:
    """ACVP sigVer tests Verify_internal(pk, M', sig): mu = SHAKE256(SHAKE256(pk, 64) || M', 64)."""
    import hashlib
    public_cls = {65: mldsa.MLDSA65PublicKey, 87: mldsa.MLDSA87PublicKey}[params]
    count = 0
    for group, t in cases(f"mldsa{params}_sigver.json"):
        pk = h(group["pk"])
        tr = hashlib.shake_256(pk).digest(64)
        mu = hashlib.shake_256(tr + h(t["message"])).digest(64)
        try:
            public_cls.from_public_bytes(pk).verify_mu(h(t["signature"]), mu)
            ok = True
        except Exception:
            ok = False
        assert ok == t["testPassed"], t["tcId"]
        count += 1
    assert count == 10
