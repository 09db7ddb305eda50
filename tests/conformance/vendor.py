"""The vendor suite's test set-up, re-expressed against our backend (Azure/azihsm-sdk,
ddi/lib/tests/integration/common.rs): a device per test (one in-process partition of the chosen
profile), "file handles" (clients holding at most one session each), the common set-up (credential
established, one session open with a fixed seed) and the helpers the vendor tests share.

The fixed values here are our own (an app id, PIN, seed, BK3 and POTA key of the same shapes as the
vendor's); only their roles follow the vendor suite.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import DdiError, HsmClient, Usage, key_properties
from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.credential_seal import seal
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.schemas import EMPTY, ENCRYPTED_PIN, ESTABLISH_CREDENTIAL, PUBLIC_KEY, SESSION_CREDENTIAL
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesOp, DeviceKind, EccCurve, HashAlgorithm, KeyClass, KeyType
from tests.backend.ddi.ddi_helpers import LocalTransport, expect, rsa_aes_wrap
from tests.backend.ddi.ddi_identity import TestIdentity

CRED_ID = bytes.fromhex("5a3c1e0f9b8d47a6b2c4d6e8f0a1b3c5")
CRED_PIN = bytes.fromhex("c0ffee00112233445566778899aabbcc")
CRED_PIN_ALT = bytes.fromhex("5eed5eed00112233445566778899aabb")
SESSION_SEED = hashlib.sha384(b"conformance session seed").digest()
BK3 = hashlib.sha384(b"conformance bk3").digest()
MAX_SESSIONS = 8
POTA_KEY = ec.derive_private_key(int.from_bytes(hashlib.sha384(b"conformance pota").digest(), "big"),
                                 ec.SECP384R1())
CHAIN_LENGTH = 3   # root, alias, partition-ID certificate
_PREHASH = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}

AES_MAX_TRANSFER = link.MAX_AES_TRANSFER   # the device's largest AES transfer per direction (1 MiB, docs/device.md)

_PROVISIONED: dict[str, bytes] = {}


@dataclass
class Device:
    """One emulated device (one partition) as the vendor tests see it through ``/dev/azihsm*``."""

    partition: Partition
    kind: DeviceKind
    masked_bk3: bytes = b""

    @property
    def physical(self) -> bool:
        return self.kind is DeviceKind.Physical

    def open(self) -> HsmClient:
        """A new file handle (no session), its device kind learnt as the vendor's SDK does."""
        handle = HsmClient(LocalTransport(self.partition))
        handle.kind = DeviceKind(handle.get_device_info().kind)
        return handle

    def nssr(self) -> None:
        """The reset ioctl the vendor tests call before and after each test (live-migration reset)."""
        self.partition.reset(link.ResetKind.NSSR)

    def flush(self, handle: HsmClient) -> None:
        """Closing a file handle: the driver flushes its session (queue opc 1)."""
        if handle.session_id is not None:
            flags = link.SessionFlags(link.SessionOp.CLOSE, True)
            handle.transport.submit(b"", flags, handle.session_id, opc=1)
            handle.session_id = None

    # -- the common set-up -------------------------------------------------------------------

    def bk3(self, handle: HsmClient) -> bytes:
        """The masked BK3: sealed on the device once, re-read afterwards (helper_get_or_init_bk3)."""
        if not self.masked_bk3:
            self.masked_bk3 = handle.init_bk3(BK3)
            handle.set_sealed_bk3(self.masked_bk3)
        return self.masked_bk3

    def establish(self, handle: HsmClient, cred_id: bytes = CRED_ID, pin: bytes = CRED_PIN) -> bytes:
        """helper_common_establish_credential; returns the BMK. The first call of the run creates the
        partition's BMK and unwrapping key; later ones restore those (the same BK3, POTA key and
        identity make them valid on every test device), which spares an RSA key generation per test."""
        if not _PROVISIONED:
            bmk = handle.establish_credential(cred_id, pin, self.bk3(handle), POTA_KEY)
            _PROVISIONED["bmk"] = bmk
            _PROVISIONED["unwrapping"] = self.partition.vault.provisioning.masked_unwrapping_key
            return bmk
        return handle.establish_credential(cred_id, pin, self.bk3(handle), POTA_KEY, bmk=_PROVISIONED["bmk"],
                                           masked_unwrapping_key=_PROVISIONED["unwrapping"])

    def open_session(self, handle: HsmClient, cred_id: bytes = CRED_ID, pin: bytes = CRED_PIN,
                     seed: bytes = SESSION_SEED) -> int:
        return handle.open_session(cred_id, pin, seed).sess_id


def reused_provisioning() -> dict[str, bytes]:
    """The BMK and masked unwrapping key of the suite's first provisioning (empty before it), for
    EstablishCredential requests a test builds itself."""
    return {"bmk": _PROVISIONED.get("bmk", b""), "masked_unwrapping_key": _PROVISIONED.get("unwrapping", b"")}


@dataclass
class Setup:
    """What ``common_setup`` hands a vendor test: the device, its handle and the open session."""

    device: Device
    dev: HsmClient
    session_id: int

    @property
    def physical(self) -> bool:
        return self.device.physical


def make_device(tmp_path: Path, kind: DeviceKind) -> Device:
    identity = TestIdentity(chain_length=CHAIN_LENGTH)
    partition = Partition(serial=identity.serial, index=0, state_dir=tmp_path / "partition-0", identity=identity,
                          kind=kind)
    return Device(partition, kind)


def common_setup(device: Device) -> Setup:
    """Credential established (by another handle), a session opened on the test's handle."""
    device.establish(device.open())
    dev = device.open()
    return Setup(device, dev, device.open_session(dev))


def physical_only(setup: Setup | Device) -> None:
    """The vendor test returns early unless the device reports Physical."""
    if not setup.physical:
        pytest.skip("Physical-only: the vendor test returns early on a Virtual device")


def open_retrying(dev: HsmClient, attempts: int) -> Any:
    """A stress thread's login: concurrent opens race for the nonce, so NonceMismatch is retried."""
    for _ in range(attempts):
        try:
            return dev.open_session(CRED_ID, CRED_PIN, SESSION_SEED)
        except DdiError as err:
            assert err.status is S.NonceMismatch
    raise AssertionError("no session opened")


# -- the AES fast path (exec_op_fp_gcm / exec_op_fp_xts) ------------------------------------------

_XTS_DUL = {512: 1, 4096: 2, 8192: 3}   # SQE attr DUL codes of the SDK's data unit lengths


@dataclass
class FastPath:
    """What exec_op_fp_gcm / exec_op_fp_xts hand the vendor test: the CQE status and err (0 on
    success; 0x720 with a DDI status in err when the HSM refused), the output, GCM tag and IV, FIPS flag."""

    status: int
    err: int = 0
    data: bytes = b""
    tag: bytes | None = None
    iv: bytes | None = None
    fips_approved: bool = False

    @property
    def ok(self) -> bool:
        return self.status == link.Status.SUCCESS

    @property
    def ddi_status(self) -> S | None:
        """The DDI status of a refusal by the HSM (CQE status 0x720), else None."""
        return S(0x08700000 | self.err) if self.status == link.Status.AES_REFUSED else None


def fast_path(device: Device, op: AesOp, data: bytes, *, session_id: int, short_app_id: int, key_id: int,
              key_id2: int | None = None, iv: bytes = bytes(12), aad: bytes | None = None,
              tag: bytes | None = None, tweak: bytes = bytes(16), data_unit_len: int | None = None) -> FastPath:
    """One fast-path command, GCM (no ``key_id2``) or XTS (``key_id2`` the tweak key), carried as the
    vendor's SDK, the guest driver and our device carry it (docs/device.md, "AES queues and the AES
    path"). GCM: the source is the AAD aligned by the SDK's rule followed by the data, the driver's
    workaround puts its last ``len % 16`` bytes in the tail buffer, the destination is as long; the
    SDK returns the output after the aligned AAD, the tag and the IV. XTS: source and destination are
    the data, the data unit is ``data_unit_len`` (default the whole buffer). A transfer over 1 MiB is
    answered 0x002 by the device itself; otherwise the AES_REQUEST crosses the link codec to
    ``Partition.execute_aes`` and the AES_RESPONSE back, and the output is placed as the device does."""
    assert data, "the SDK refuses an empty buffer (InvalidParameter)"
    if key_id2 is None:
        assert op is AesOp.Encrypt or tag is not None, "the SDK refuses a GCM decrypt without a tag"
        aad = aad or b""
        aligned = aad if not len(aad) % 32 else (bytes(16) if len(aad) % 32 <= 16 else b"") + aad
        aligned += bytes(-len(aligned) % 32)
        source, skip = aligned + data, len(aligned)
        fields = dict(cipher=link.AesCipher.GCM, dul=0, key_id2=0, aad_len=len(aad), aligned_aad_len=skip,
                      tag_or_tweak=tag or bytes(16), iv=iv, src_tail_len=len(source) % 16)
    else:
        unit = len(data) if data_unit_len is None else data_unit_len
        assert unit == len(data) or unit in _XTS_DUL, f"the SDK refuses data unit length {unit}"
        source, skip = data, 0
        fields = dict(cipher=link.AesCipher.XTS, dul=0 if unit == len(data) else _XTS_DUL[unit], key_id2=key_id2,
                      aad_len=0, aligned_aad_len=0, tag_or_tweak=tweak, iv=bytes(12), src_tail_len=0)
    if len(source) - fields["src_tail_len"] > AES_MAX_TRANSFER:
        return FastPath(link.Status.INVALID_FIELD, link.Status.INVALID_FIELD)
    request = link.AesRequest(version=link.AES_BODY_VERSION, decrypt=int(op is AesOp.Decrypt), qid=256, cid=1,
                              session_id=session_id, short_app_id=short_app_id, key_id1=key_id,
                              dst_len=len(source), data=source, **fields)
    request = link.decode_frame(link.encode_frame(1, request))[1]
    answer = link.decode_frame(link.encode_frame(1, device.partition.execute_aes(request)))[1]
    assert isinstance(answer, link.AesResponse)
    if answer.status:
        return FastPath(answer.status, answer.err)
    if answer.dst_offset + len(answer.data) > len(source):
        return FastPath(link.Status.BACKEND_PROTOCOL_ERROR, link.Status.BACKEND_PROTOCOL_ERROR)
    if key_id2 is not None:
        return FastPath(answer.status, answer.err, answer.data, fips_approved=bool(answer.fips_approved))
    dest = bytearray(len(source))
    dest[answer.dst_offset:answer.dst_offset + len(answer.data)] = answer.data
    return FastPath(answer.status, answer.err, bytes(dest[skip:]), answer.tag, answer.iv, bool(answer.fips_approved))


# -- helpers the vendor tests share ---------------------------------------------------------------

def ecc_key_pair(dev: HsmClient, curve: EccCurve, usage: Usage = Usage.DERIVE, **kw: Any) -> Any:
    return dev.ecc_generate_key_pair(curve, usage, **kw)


def ecdh_secret(dev: HsmClient, curve: EccCurve = EccCurve.P256, **kw: Any) -> Any:
    """create_ecdh_secrets: two key pairs on ``curve``, ECDH of the first with the second's public key."""
    secret_kind = {EccCurve.P256: KeyType.Secret256, EccCurve.P384: KeyType.Secret384,
                   EccCurve.P521: KeyType.Secret521}[curve]
    first, second = ecc_key_pair(dev, curve), ecc_key_pair(dev, curve)
    return dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, secret_kind, **kw)


def ecdh_secret_pair(dev: HsmClient, kind: KeyType = KeyType.Secret256) -> tuple[int, int]:
    """create_ecdh_secrets: two key pairs on the secret's curve (P-256 for a non-secret ``kind``) and
    the two ECDH secrets, one from each side (equal values); their key ids."""
    curve = {KeyType.Secret384: EccCurve.P384, KeyType.Secret521: EccCurve.P521}.get(kind, EccCurve.P256)
    kind = kind if kind in (KeyType.Secret256, KeyType.Secret384, KeyType.Secret521) else KeyType.Secret256
    first, second = ecc_key_pair(dev, curve), ecc_key_pair(dev, curve)
    return (dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, kind).key_id,
            dev.ecdh_key_exchange(second.private_key_id, first.pub_key.der, kind).key_id)


@functools.cache
def rsa_test_key(bits: int) -> rsa.RSAPrivateKey:
    """The suite's RSA key of ``bits`` (the vendor uses fixed 2k/3k/4k test keys)."""
    return rsa.generate_private_key(65537, bits)


def rsa_wrapped(dev: HsmClient, bits: int) -> bytes:
    """The suite's RSA key of ``bits`` (PKCS#8) wrapped for the partition's unwrapping key."""
    kek = serialization.load_der_public_key(dev.get_unwrapping_key().pub_key.der)
    pkcs8 = rsa_test_key(bits).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
    return rsa_aes_wrap(kek, pkcs8)


def rsa_import(dev: HsmClient, bits: int, key_class: KeyClass = KeyClass.Rsa,
               usage: Usage = Usage.ENCRYPT_DECRYPT, **kw: Any) -> Any:
    """rsa_secure_import_key: the test key wrapped for the unwrapping key, then RsaUnwrap."""
    return dev.rsa_unwrap(dev.get_unwrapping_key().key_id, rsa_wrapped(dev, bits), key_class, usage, **kw)


def ecc_verify(signature: bytes, public_der: bytes, digest: bytes) -> None:
    """ecc_verify_local_openssl: r || s (big-endian) over ``digest`` as given, with the public key."""
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    half = len(signature) // 2
    der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
    public.verify(der, digest, ec.ECDSA(Prehashed(_PREHASH[len(digest)])))


def key_signature_ok(dev: HsmClient, pub_der: bytes, signature: bytes) -> bool:
    """helper_key_signature_verification: ``signature`` (r || s) is ECDSA-SHA-384 by the partition-ID
    certificate's key over the little-endian X || Y (48 bytes each) of the P-384 key ``pub_der``."""
    nums = serialization.load_der_public_key(pub_der).public_numbers()
    raw = nums.x.to_bytes(48, "little") + nums.y.to_bytes(48, "little")
    count = dev.get_cert_chain_info().num_certs
    signer = x509.load_der_x509_certificate(dev.get_certificate(count - 1)).public_key()
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        signer.verify(der, raw, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


def derive(dev: HsmClient, secret_id: int, kind: KeyType, key_length: int | None = None) -> Any:
    """HKDF-SHA-256 (no salt, no info) of a secret to a session-only sign/verify key of ``kind``."""
    return dev.call("HkdfDerive", key_id=secret_id, hash_algorithm=int(HashAlgorithm.Sha256), salt=None,
                    info=None, key_type=int(kind), key_tag=None,
                    key_properties=key_properties(Usage.SIGN_VERIFY, session_only=True), key_length=key_length)


def wrap(dev: HsmClient, material: bytes) -> bytes:
    """wrap_data: ``material`` (a PKCS#8 key or raw AES key) wrapped for the partition's unwrapping key."""
    return rsa_aes_wrap(serialization.load_der_public_key(dev.get_unwrapping_key().pub_key.der), material)


def pkcs8(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def unmask_again(dev: HsmClient, key_id: int, masked_key: bytes, try_first: bool = True) -> Any:
    """helper_get_new_key_id_from_unmask: unmasking a key that still exists fails (``try_first``);
    after DeleteKey the blob unmasks to a new key, whose UnmaskKey response is returned."""
    if try_first:
        with pytest.raises(DdiError):
            dev.unmask_key(masked_key)
    dev.delete_key(key_id)
    return dev.unmask_key(masked_key)


@dataclass
class LmSetup:
    """common_setup_for_lm: what a guest keeps to recover from a live migration."""

    handle: HsmClient
    session_id: int
    masked_bk3: bytes
    partition_bmk: bytes
    session_bmk: bytes
    seed: bytes


def setup_for_lm(device: Device, handle: HsmClient | None = None) -> LmSetup:
    """Credential established by another handle, a session opened on ``handle`` (a new one if None)
    with a random seed."""
    other = device.open()
    bmk = device.establish(other)
    handle = handle or device.open()
    seed = os.urandom(48)
    opened = handle.open_session(CRED_ID, CRED_PIN, seed)
    return LmSetup(handle, opened.sess_id, device.masked_bk3, bmk, opened.bmk_session, seed)


def recover(lm: LmSetup, handle: HsmClient | None = None, masked_unwrapping_key: bytes = b"") -> Any:
    """After a migration: the credential re-established with the saved BK3 and partition BMK (by
    another handle), then ReopenSession of the saved session on ``handle`` (default ``lm.handle``)."""
    handle = handle or lm.handle
    other = HsmClient(handle.transport, handle.kind)
    other.establish_credential(CRED_ID, CRED_PIN, lm.masked_bk3, POTA_KEY, bmk=lm.partition_bmk,
                               masked_unwrapping_key=masked_unwrapping_key)
    return handle.reopen_session(lm.session_id, CRED_ID, CRED_PIN, lm.seed, lm.session_bmk)


# -- credentials as the vendor helpers build them, for tests that tamper with the pieces ----------

def _sealed(dev: HsmClient, key_op: str, pieces: list[bytes]) -> tuple[Any, Any, Any]:
    """(sealed pieces, nonce, client public key) for the device key of ``key_op``."""
    device = dev.call(key_op)
    sealed = seal(device.pub_key.der, device.nonce, pieces)
    return sealed, device.nonce, PUBLIC_KEY(der=sealed.client_public_der, key_kind=int(KeyType.Ecc384Public))


def encrypt_pin(dev: HsmClient, pin: bytes) -> tuple[Any, Any]:
    """encrypt_pin_for_change_pin: (DdiEncryptedPin, client public key) under the session key."""
    sealed, nonce, pub = _sealed(dev, "GetSessionEncryptionKey", [pin])
    return ENCRYPTED_PIN(encrypted_pin=sealed.pieces[0], iv=sealed.iv, nonce=nonce, tag=sealed.tag), pub


def session_credential(dev: HsmClient, cred_id: bytes = CRED_ID, pin: bytes = CRED_PIN,
                       seed: bytes = SESSION_SEED) -> tuple[Any, Any]:
    """encrypt_userid_pin_for_open_session: (DdiEncryptedSessionCredential, client public key)."""
    sealed, nonce, pub = _sealed(dev, "GetSessionEncryptionKey", [cred_id, pin, seed])
    return SESSION_CREDENTIAL(encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1],
                              encrypted_seed=sealed.pieces[2], iv=sealed.iv, nonce=nonce, tag=sealed.tag), pub


def establish_credential(dev: HsmClient, cred_id: bytes = CRED_ID, pin: bytes = CRED_PIN) -> tuple[Any, Any]:
    """encrypt_establish_credential: (DdiEncryptedEstablishCredential, client public key)."""
    sealed, nonce, pub = _sealed(dev, "GetEstablishCredEncryptionKey", [cred_id, pin])
    return ESTABLISH_CREDENTIAL(encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1], iv=sealed.iv,
                                nonce=nonce, tag=sealed.tag), pub


def flip(value: bytes, index: int) -> bytes:
    """``value`` with byte ``index`` incremented (wrapping), as the vendor's tamper tests do."""
    return value[:index] + bytes([(value[index] + 1) % 256]) + value[index + 1:]


def malformed(setup: Setup, op: str) -> list[int]:
    """helper_get_api_rev_op and helper_rsa_mod_exp_op with ``op``'s code: the DDI statuses of ``op``
    sent in the session with a GetApiRev body and with an RsaModExp body (bypassing the client)."""
    statuses = []
    for body_op, fields in (("GetApiRev", {}), ("RsaModExp", {"key_id": 1, "y": bytes([1]) * 32, "op_type": 2})):
        body = BY_NAME[body_op].request
        payload = envelope.encode_request(BY_NAME[op].code, body, body(**fields), rev=envelope.rev(1, 0),
                                          sess_id=setup.session_id)
        completion = setup.dev.transport.submit(payload, link.SessionFlags(link.SessionOp.IN_SESSION, True),
                                                setup.session_id)
        statuses.append(envelope.decode_response(completion.payload, EMPTY)[0].status)
    return statuses


def generate(dev: HsmClient, op: str, usage: Usage, *, tag: int | None = None, session_only: bool = False,
             **fields: Any) -> Any:
    """AesGenerateKey or EccGenerateKeyPair with any usage (the client's own methods fix the usage)."""
    return dev.call(op, key_tag=tag, key_properties=key_properties(usage, session_only=session_only), **fields)


def hmac_key(dev: HsmClient, kind: KeyType, key_length: int | None = None) -> Any:
    """create_hmac_key_ex: an ECDH secret, then ``derive``."""
    return derive(dev, ecdh_secret(dev).key_id, kind, key_length)


__all__ = ["AES_MAX_TRANSFER", "BK3", "CRED_ID", "CRED_PIN", "CRED_PIN_ALT", "Device", "FastPath",
           "LmSetup", "MAX_SESSIONS", "POTA_KEY", "S", "SESSION_SEED", "Setup", "common_setup", "derive",
           "ecc_key_pair", "ecc_verify", "ecdh_secret", "ecdh_secret_pair", "encrypt_pin", "establish_credential",
           "expect", "fast_path", "flip", "generate", "hmac_key", "key_signature_ok", "make_device", "malformed",
           "open_retrying", "physical_only", "pkcs8", "recover", "reused_provisioning", "rsa_import", "rsa_test_key",
           "rsa_wrapped", "session_credential", "setup_for_lm", "unmask_again", "wrap"]
