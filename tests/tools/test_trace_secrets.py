"""Planted secrets never reach a trace or a log.

Every op that takes a secret (app id and PINs, the session seed, BK3, a sealed BK3, masked and wrapped
keys, AES and HMAC messages, RSA mod-exp inputs, ML-DSA and ML-KEM seeds, ML-DSA messages, ML-KEM
ciphertexts, CvmSeal data, sealed blobs) is sent with recognisable planted values, once successfully and
once failing, through the real link server with a trace recorder and every logger at DEBUG; so are a
request of an unknown op and an undecodable request carrying planted bytes. The trace file and the log
text are then scanned for every planted value and every secret the HSM answered (masked keys, BMKs,
RSA and AES results, sealed and wrapped blobs), in 12-byte pieces, and for every secret the HSM holds
(``pyhsm.backend.secrets_export``), whole: raw, hex in both cases, base64 (standard and URL-safe, at every
alignment), Python repr escapes and JSON string escapes. The trace file ends up with mode 0600 although
it existed with 0644.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyhsm.backend import secrets_export as hsm_secrets
from pyhsm.backend.trace_recorder import Recorder
from pyhsm.client import HsmClient, Usage
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import link
from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT, Recipient, Wrapped
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve, HashAlgorithm, KeyClass, KeyType, RsaOpType
from tests.backend.cvm.cvm_setup import WORKLOAD, set_up
from tests.backend.ddi.ddi_backend import make_backend, serving
from tests.backend.ddi.ddi_helpers import Provisioned, expect, rsa_aes_wrap

PIECE = 12
MIN_DISTINCT = 10    # a piece with fewer distinct bytes is structure (zero padding, headers), not secret
SECRET_OPS = {"InitBk3", "EstablishCredential", "OpenSession", "ReopenSession", "ChangePin", "SetSealedBk3",
              "GetSealedBk3", "UnmaskKey", "RsaUnwrap", "RsaModExp", "AesEncryptDecrypt", "Hmac", "MlDsaGenerateKey",
              "MlDsaSign", "MlKemGenerateKey", "MlKemDecapsulate", "CvmSeal", "CvmUnseal", "CvmReleaseKey"}
UNKNOWN_OP = 0x9999


class Planted(dict[str, bytes]):
    """Named secrets: planted into requests, or answered by the HSM."""

    def new(self, label: str, length: int, *, prefix: bytes = b"") -> bytes:
        value = prefix + hashlib.shake_256(b"planted " + label.encode()).digest(length - len(prefix))
        self[label] = value
        return value


def pieces(secret: bytes) -> list[bytes]:
    """``secret`` in pieces of ``PIECE`` bytes (the last one overlapping), so that any leak of 2 * PIECE - 1
    bytes holds a whole piece; pieces of fewer than ``MIN_DISTINCT`` byte values would match by chance."""
    if len(secret) <= PIECE:
        return [secret]
    cut = [secret[i:i + PIECE] for i in range(0, len(secret) - PIECE + 1, PIECE)] + [secret[-PIECE:]]
    return [piece for piece in cut if len(set(piece)) >= MIN_DISTINCT]


def forms(secret: bytes) -> set[bytes]:
    """How ``secret`` would look in a text it leaked into."""
    found = {secret, secret.hex().encode(), secret.hex().upper().encode(), repr(secret)[2:-1].encode(),
             json.dumps(secret.decode("latin-1"))[1:-1].encode()}
    for skip in range(3):
        part = secret[skip:][:(len(secret) - skip) // 3 * 3]
        if part:
            found |= {base64.b64encode(part), base64.urlsafe_b64encode(part)}
    return found


def leaks(texts: dict[str, bytes], secrets: dict[str, bytes], *, whole: bool) -> list[str]:
    """``"<secret> in <text>"`` for every secret (or piece of one) found in any encoding."""
    found = []
    for name, secret in secrets.items():
        for piece in [secret] if whole else pieces(secret):
            for text_name, text in texts.items():
                if any(form in text for form in forms(piece)):
                    found.append(f"{name} in {text_name}")
    return sorted(set(found))


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _run(transport: SocketTransport, partition, p: Planted) -> None:
    """Every secret-taking op, planted, through ``transport``; what the HSM answers joins ``p``."""
    c = HsmClient(transport)
    masked_bk3 = p["masked BK3"] = c.init_bk3(p.new("BK3", 48))
    expect(S.InvalidArg, c.init_bk3, p.new("short BK3", 40))
    pota = ec.generate_private_key(ec.SECP384R1())
    app_id, pin = p.new("app id", 16), p.new("PIN", 16)
    bmk = p["BMK"] = c.establish_credential(app_id, pin, masked_bk3, pota)
    opened = c.open_session(app_id, pin, p.new("session seed", 48))
    p["session BMK"] = opened.bmk_session
    expect(S.InvalidAppCredentials, HsmClient(transport).open_session, app_id, p.new("wrong PIN", 16))
    c.set_sealed_bk3(p.new("sealed BK3", 200))
    expect(S.SealedBk3AlreadySet, c.set_sealed_bk3, p.new("second sealed BK3", 200))
    assert c.get_sealed_bk3() == p["sealed BK3"]

    ecc = c.ecc_generate_key_pair(EccCurve.P384)
    p["masked ECC key"] = ecc.masked_key
    c.unmask_key(ecc.masked_key)
    expect(S.MaskedKeyDecodeFailed, c.unmask_key, ecc.masked_key[:-1] + b"\0")
    aes = c.aes_generate_key(AesKeySize.Aes256)
    p["masked AES key"] = aes.masked_key
    p["AES ciphertext out"] = c.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, p.new("AES plaintext", 64),
                                                    bytes(16)).msg
    p["AES plaintext out"] = c.aes_encrypt_decrypt(aes.key_id, AesOp.Decrypt, p.new("AES ciphertext", 64),
                                                   bytes(16)).msg
    expect(S.InvalidArg, c.aes_encrypt_decrypt, aes.key_id, AesOp.Encrypt, p.new("odd AES plaintext", 33), bytes(16))
    ecdh = c.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE)
    secret = c.ecdh_key_exchange(ecdh.private_key_id, _spki(ec.generate_private_key(ec.SECP384R1())),
                                 KeyType.Secret384)
    p["masked ECDH secret"] = secret.masked_key
    mac = c.hkdf_derive(secret.key_id, HashAlgorithm.Sha384, KeyType.HmacSha384, Usage.SIGN_VERIFY)
    p["masked HMAC key"] = mac.masked_key
    c.hmac(mac.key_id, p.new("HMAC message", 100))
    expect(S.InvalidKeyType, c.hmac, aes.key_id, p.new("HMAC message, wrong key", 100))

    kek = c.get_unwrapping_key()
    p["masked unwrapping key"] = kek.masked_key
    kek_public = serialization.load_der_public_key(kek.pub_key.der)
    target = rsa.generate_private_key(65537, 2048)
    numbers = target.private_numbers()
    p["imported RSA d"], p["imported RSA p"] = _int_bytes(numbers.d), _int_bytes(numbers.p)
    p["wrapped RSA key"] = rsa_aes_wrap(kek_public, _pkcs8(target))
    signer = c.rsa_unwrap(kek.key_id, p["wrapped RSA key"], KeyClass.RsaCrt, Usage.SIGN_VERIFY)
    p["masked RSA key"] = signer.masked_key
    p["RSA result"] = c.rsa_mod_exp(signer.key_id, p.new("RSA input", 256, prefix=b"\x00"), RsaOpType.Sign)
    expect(S.InvalidArg, c.rsa_mod_exp, signer.key_id, p.new("RSA input too big", 256, prefix=b"\xff"),
           RsaOpType.Sign)
    p["wrapped AES key"] = rsa_aes_wrap(kek_public, p.new("imported AES key", 32))
    p["masked imported AES key"] = c.rsa_unwrap(kek.key_id, p["wrapped AES key"], KeyClass.Aes,
                                                Usage.ENCRYPT_DECRYPT).masked_key
    p["wrapped short AES key"] = rsa_aes_wrap(kek_public, p.new("imported AES key, wrong length", 20))
    expect(S.AesInvalidKeyLength, c.rsa_unwrap, kek.key_id, p["wrapped short AES key"], KeyClass.Aes,
           Usage.ENCRYPT_DECRYPT)

    dsa = c.mldsa_generate_key(65, seed=p.new("ML-DSA seed", 32))
    p["masked ML-DSA key"] = dsa.masked_key
    expect(S.InvalidArg, c.mldsa_generate_key, 65, seed=p.new("ML-DSA seed, wrong length", 31))
    c.mldsa_sign(dsa.key_id, p.new("ML-DSA message", 300))
    expect(S.InvalidKeyType, c.mldsa_sign, ecc.private_key_id, p.new("ML-DSA message, wrong key", 300))
    kem = c.mlkem_generate_key(768, seed=p.new("ML-KEM seed", 64))
    p["masked ML-KEM key"] = kem.masked_key
    expect(S.InvalidArg, c.mlkem_generate_key, 768, seed=p.new("ML-KEM seed, wrong length", 63))
    p["masked decapsulated key"] = c.mlkem_decapsulate(kem.key_id, p.new("ML-KEM ciphertext", 1088)).masked_key
    expect(S.InvalidArg, c.mlkem_decapsulate, kem.key_id, p.new("ML-KEM ciphertext, wrong length", 1000))

    cvm = set_up(Provisioned(c, partition, masked_bk3, bmk, pota, opened.seed, opened.bmk_session))
    recipient = Recipient()
    answer = c.cvm_release_key(cvm.evidence(cvm.vm_a, b"vm-a"), WORKLOAD, recipient.kem_pub, recipient.ecdh_pub)
    w = answer.wrapped
    p["released key"] = recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), RELEASE_CONTEXT + WORKLOAD)
    p["release ciphertext"], p["release KEM ciphertext"] = w.ciphertext, w.kem_ct
    sealed = p["sealed blob"] = c.cvm_seal(WORKLOAD, p.new("CvmSeal data", 2048))
    expect(VendorStatus.CvmPolicyNotFound, c.cvm_seal, b"none", p.new("CvmSeal data, no policy", 100))
    w = c.cvm_unseal(cvm.evidence(cvm.vm_a, b"vm-a"), sealed, recipient.kem_pub, recipient.ecdh_pub).wrapped
    p["unseal ciphertext"], p["unseal KEM ciphertext"] = w.ciphertext, w.kem_ct
    p["tampered sealed blob"] = sealed[:-1] + bytes([sealed[-1] ^ 1])
    expect(VendorStatus.CvmSealedBlobInvalid, c.cvm_unseal, cvm.evidence(cvm.vm_a, b"vm-a"), p["tampered sealed blob"],
           recipient.kem_pub, recipient.ecdh_pub)
    c.change_pin(p.new("new PIN", 16))

    sess_id = c.session_id
    transport.reset(link.ResetKind.NSSR)
    HsmClient(transport).establish_credential(app_id, p["new PIN"], masked_bk3, pota, bmk=bmk,
                                              masked_unwrapping_key=kek.masked_key)
    c.reopen_session(sess_id, app_id, p["new PIN"], opened.seed, opened.bmk_session)
    for payload in _undecodable(sess_id, p):
        transport.submit(payload, link.SessionFlags(link.SessionOp.IN_SESSION, True), sess_id)
    c.close_session()


def _undecodable(sess_id: int, p: Planted) -> list[bytes]:
    """A request of an unknown op and an Hmac request of the wrong shape, both carrying planted bytes."""
    rev = envelope.rev(1, 0)
    unknown = envelope.encode_request(UNKNOWN_OP, BY_NAME["Hmac"].request, BY_NAME["Hmac"].request(
        key_id=1, msg=p.new("unknown op payload", 64)), rev=rev, sess_id=sess_id)
    spec = BY_NAME["AesEncryptDecrypt"]
    wrong = envelope.encode_request(BY_NAME["Hmac"].code, spec.request, spec.request(
        key_id=1, op=1, msg=p.new("undecodable payload", 64), iv=bytes(16)), rev=rev, sess_id=sess_id)
    return [unknown, wrong]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("planted")
    trace = tmp / "trace.jsonl"
    trace.write_text("")
    trace.chmod(0o644)
    recorder = Recorder(trace)
    p = Planted()
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with serving(make_backend(tmp / "state", recorder), tmp / "hsm.sock") as backend:
            transport = SocketTransport(tmp / "hsm.sock", serial="PLANT-0001")
            HsmClient(transport).get_api_rev()    # connects: the partition exists from here on
            partition = backend.partitions()[0][2]
            held = {s.label: s.value for s in hsm_secrets.collect(backend.devices(), backend.partitions())}
            _run(transport, partition, p)
            held |= {s.label + " (at the end)": s.value
                     for s in hsm_secrets.collect(backend.devices(), backend.partitions())}
            transport.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        recorder.close()
    return {"trace": trace, "texts": {"trace": trace.read_bytes(), "log": handler.text()}, "planted": p,
            "held": held}


class _Capture(logging.Handler):
    """Every record of every logger, formatted as a log file would have it (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> bytes:
        return "\n".join(self.lines).encode()


def test_every_secret_taking_op_was_traced_and_logged(planted_run: dict) -> None:
    records = [json.loads(line) for line in planted_run["texts"]["trace"].splitlines()]
    ops = {r["op"] for r in records if r["event"] == "command"}
    assert SECRET_OPS <= ops, SECRET_OPS - ops
    assert f"op{UNKNOWN_OP}" in ops and {"reset:NSSR"} <= {r["op"] for r in records}
    log = planted_run["texts"]["log"]
    assert b"InvalidAppCredentials" in log and b"CvmSealedBlobInvalid" in log and b"DEBUG" in log
    assert len(planted_run["planted"]) > 40 and len(planted_run["held"]) > 10


def test_no_planted_or_answered_secret_in_the_trace_or_the_logs(planted_run: dict, reliability) -> None:
    found = leaks(planted_run["texts"], planted_run["planted"], whole=False)
    assert found == [], found
    reliability.record("secrets planted through every secret-bearing op", "trace and DEBUG log scanned "
                       "raw, hex, base64, repr", len(planted_run["planted"]), "none found")


def test_no_secret_the_hsm_holds_in_the_trace_or_the_logs(planted_run: dict) -> None:
    assert leaks(planted_run["texts"], planted_run["held"], whole=True) == []


def test_the_scan_finds_a_leak_in_any_encoding() -> None:
    secret = hashlib.sha256(b"leak").digest()
    for encoded in (secret.hex().upper(), base64.b64encode(b"x" + secret).decode(), repr(secret),
                    json.dumps({"v": secret.decode("latin-1")})):
        assert leaks({"text": f"prefix {encoded} suffix".encode()}, {"s": secret}, whole=False) == ["s in text"]


def test_the_trace_file_is_private(planted_run: dict) -> None:
    assert stat.S_IMODE(planted_run["trace"].stat().st_mode) == 0o600
