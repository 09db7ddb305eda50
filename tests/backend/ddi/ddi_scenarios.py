"""One valid call of every DDI and vendor op, on a partition that has what each op needs.

``Baseline.create`` provisions a partition with one persistent key of every family used by an op, a
confidential-VM owner, a registered VM, a release policy and a sealed blob, and keeps its vault
snapshot. ``Baseline.lab`` gives a fresh partition restored from that snapshot with an open session
(nothing a case does reaches the next case). ``SCENARIOS[op](lab, client)`` makes the op's call
through ``client`` (whatever transport it has) and must succeed on an unchanged request.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import HsmClient, Usage, cvm_evidence
from pyhsm.protocol import link
from pyhsm.protocol.cvm import owner
from pyhsm.protocol.cvm.wrap import Recipient
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve, HashAlgorithm, KeyClass, KeyType, RsaOpType
from tests.backend.cvm.cvm_setup import POLICY_PCRS, WORKLOAD, Cvm, set_up
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport, Provisioned, provision, rsa_aes_wrap
from tests.backend.ddi.ddi_identity import TestIdentity

VM_ID = b"vm-a"


@dataclass
class Baseline:
    """The snapshot every case starts from, and what the scenarios need to use its contents."""

    identity: TestIdentity
    snapshot: dict[str, Any]
    hsm: Provisioned
    cvm: Cvm
    keys: dict[str, int]
    masked_key: bytes            # of an untagged key (so that unmasking it does not clash)
    masked_unwrapping_key: bytes
    kek_public: rsa.RSAPublicKey
    sealed: bytes
    recipient: Recipient = field(default_factory=Recipient)

    @classmethod
    def create(cls, directory: Path) -> Baseline:
        identity = TestIdentity("LIMITS-0001")
        partition = Partition(serial=identity.serial, index=0, state_dir=directory, identity=identity)
        hsm = provision(HsmClient(LocalTransport(partition)), partition)
        c = hsm.client
        cvm = set_up(hsm)
        kek = c.get_unwrapping_key()
        kek_public = serialization.load_der_public_key(kek.pub_key.der)
        assert isinstance(kek_public, rsa.RSAPublicKey)
        rsa_key = rsa.generate_private_key(65537, 4096).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ecc = c.ecc_generate_key_pair(EccCurve.P384, tag=0x11)
        ecdh = c.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE)
        secret = c.ecdh_key_exchange(ecdh.private_key_id, _peer_der(), KeyType.Secret384)
        keys = {
            "kek": kek.key_id, "ecc": ecc.private_key_id, "ecdh": ecdh.private_key_id, "secret": secret.key_id,
            "aes": cvm.key_id,
            "hmac": c.hkdf_derive(secret.key_id, HashAlgorithm.Sha384, KeyType.HmacSha384, Usage.SIGN_VERIFY).key_id,
            "rsa": c.rsa_unwrap(kek.key_id, rsa_aes_wrap(kek_public, rsa_key), KeyClass.Rsa, Usage.SIGN_VERIFY).key_id,
            "mldsa": c.mldsa_generate_key(87).key_id,
            "mlkem": c.mlkem_generate_key(1024).key_id,
        }
        sealed = c.cvm_seal(WORKLOAD, b"sealed at baseline")
        return cls(identity, partition.vault.snapshot(), hsm, cvm, keys, ecdh.masked_key, kek.masked_key,
                   kek_public, sealed)

    def lab(self, directory: Path) -> Lab:
        """A fresh partition with this baseline's state and one open session."""
        partition = Partition(serial=self.identity.serial, index=0, state_dir=directory, identity=self.identity)
        partition.vault.restore(copy.deepcopy(self.snapshot))
        client = HsmClient(LocalTransport(partition))
        opened = client.open_session(APP_ID, PIN)
        return Lab(self, partition, client, opened.seed, opened.bmk_session)


@dataclass
class Lab:
    """One case's partition; ``client`` is its set-up client, which owns the open session."""

    base: Baseline
    partition: Partition
    client: HsmClient
    seed: bytes
    bmk_session: bytes

    def evidence(self) -> Any:
        """Fresh evidence of the registered VM (a quote over a nonce issued to it)."""
        vm = self.base.cvm.vm_a
        return cvm_evidence(VM_ID, *vm.quote(self.client.cvm_get_nonce(VM_ID), POLICY_PCRS))


def _peer_der() -> bytes:
    return ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _reestablish(lab: Lab, c: HsmClient) -> None:
    """NSSR, then the recovery's EstablishCredential (same masked BK3, POTA key, BMK, unwrapping key)."""
    base = lab.base
    lab.partition.reset(link.ResetKind.NSSR)
    c.establish_credential(APP_ID, PIN, base.hsm.masked_bk3, base.hsm.pota, bmk=base.hsm.bmk,
                           masked_unwrapping_key=base.masked_unwrapping_key)


def _establish_key(lab: Lab, c: HsmClient) -> None:
    lab.partition.reset(link.ResetKind.NSSR)   # the key exists only while no credential does
    c.get_establish_cred_encryption_key()


def _reopen(lab: Lab, c: HsmClient) -> None:
    """The whole NSSR recovery: re-establish, then reopen the lab's session through ``c``."""
    sess_id = lab.client.session_id
    _reestablish(lab, HsmClient(LocalTransport(lab.partition)))
    c.reopen_session(sess_id, APP_ID, PIN, lab.seed, lab.bmk_session)


def _set_owner(lab: Lab, c: HsmClient) -> None:
    _reopen(lab, lab.client)   # NSSR wipes the owner
    c.cvm_set_owner(owner.public_der(ec.generate_private_key(ec.SECP384R1())))


def _set_sealed_bk3(lab: Lab, c: HsmClient) -> None:
    c.set_sealed_bk3(lab.base.hsm.masked_bk3)


def _get_sealed_bk3(lab: Lab, c: HsmClient) -> None:
    lab.client.set_sealed_bk3(lab.base.hsm.masked_bk3)
    c.get_sealed_bk3()


def _open_session(lab: Lab, c: HsmClient) -> None:
    HsmClient(c.transport).open_session(APP_ID, PIN)   # a second session: ``c`` holds the lab's


def _release(lab: Lab, c: HsmClient) -> None:
    r = lab.base.recipient
    c.cvm_release_key(lab.evidence(), WORKLOAD, r.kem_pub, r.ecdh_pub)


def _unseal(lab: Lab, c: HsmClient) -> None:
    r = lab.base.recipient
    c.cvm_unseal(lab.evidence(), lab.base.sealed, r.kem_pub, r.ecdh_pub)


def _register_vm(lab: Lab, c: HsmClient) -> None:
    cvm = lab.base.cvm
    c.cvm_register_vm(cvm.owner_key, cvm.seq + 1, b"vm-c", cvm.vm_b.ek_public, cvm.vm_b.ak_public)


def _set_policy(lab: Lab, c: HsmClient) -> None:
    cvm = lab.base.cvm
    c.cvm_set_policy(cvm.owner_key, cvm.seq + 1, b"db", 0x000B, 1 << 7, bytes(32), vm_id=VM_ID,
                     key_tag=0x100)


Scenario = Callable[[Lab, HsmClient], object]

SCENARIOS: dict[str, Scenario] = {
    "GetApiRev": lambda lab, c: c.get_api_rev(),
    "GetDeviceInfo": lambda lab, c: c.get_device_info(),
    "DeleteKey": lambda lab, c: c.delete_key(lab.base.keys["ecc"]),
    "OpenKey": lambda lab, c: c.open_key(0x11),
    "AttestKey": lambda lab, c: c.attest_key(lab.base.keys["ecc"], b"report data"),
    "RsaModExp": lambda lab, c: c.rsa_mod_exp(lab.base.keys["rsa"], (12345).to_bytes(512, "big"), RsaOpType.Sign),
    "RsaUnwrap": lambda lab, c: c.rsa_unwrap(lab.base.keys["kek"], rsa_aes_wrap(lab.base.kek_public, os.urandom(32)),
                                             KeyClass.Aes, Usage.ENCRYPT_DECRYPT),
    "GetUnwrappingKey": lambda lab, c: c.get_unwrapping_key(),
    "EccGenerateKeyPair": lambda lab, c: c.ecc_generate_key_pair(EccCurve.P521, label=b"label"),
    "EccSign": lambda lab, c: c.ecc_sign(lab.base.keys["ecc"], bytes(48)),
    "AesGenerateKey": lambda lab, c: c.aes_generate_key(AesKeySize.Aes256, tag=0x12),
    "AesEncryptDecrypt": lambda lab, c: c.aes_encrypt_decrypt(lab.base.keys["aes"], AesOp.Encrypt, bytes(64),
                                                              bytes(16)),
    "EcdhKeyExchange": lambda lab, c: c.ecdh_key_exchange(lab.base.keys["ecdh"], _peer_der(), KeyType.Secret384),
    "HkdfDerive": lambda lab, c: c.hkdf_derive(lab.base.keys["secret"], HashAlgorithm.Sha512, KeyType.Aes256,
                                               Usage.ENCRYPT_DECRYPT, salt=b"salt", info=b"info"),
    "KbkdfCounterHmacDerive": lambda lab, c: c.kbkdf_derive(lab.base.keys["secret"], HashAlgorithm.Sha384,
                                                            KeyType.HmacSha512, Usage.SIGN_VERIFY, label=b"label",
                                                            context=b"context"),
    "Hmac": lambda lab, c: c.hmac(lab.base.keys["hmac"], b"message"),
    "GetEstablishCredEncryptionKey": _establish_key,
    "EstablishCredential": _reestablish,
    "GetSessionEncryptionKey": lambda lab, c: c.get_session_encryption_key(),
    "OpenSession": _open_session,
    "CloseSession": lambda lab, c: c.close_session(),
    "ChangePin": lambda lab, c: c.change_pin(b"new-pin-abcdef01"),
    "UnmaskKey": lambda lab, c: c.unmask_key(lab.base.masked_key),
    "GetCertChainInfo": lambda lab, c: c.get_cert_chain_info(),
    "GetCertificate": lambda lab, c: c.get_certificate(0),
    "ReopenSession": _reopen,
    "InitBk3": lambda lab, c: c.init_bk3(os.urandom(48)),
    "GetSealedBk3": _get_sealed_bk3,
    "SetSealedBk3": _set_sealed_bk3,
    "MlDsaGenerateKey": lambda lab, c: c.mldsa_generate_key(65, seed=os.urandom(32)),
    "MlDsaSign": lambda lab, c: c.mldsa_sign(lab.base.keys["mldsa"], b"message", b"context"),
    "MlDsaGetPublicKey": lambda lab, c: c.mldsa_get_public_key(lab.base.keys["mldsa"]),
    "MlKemGenerateKey": lambda lab, c: c.mlkem_generate_key(768, seed=os.urandom(64)),
    "MlKemDecapsulate": lambda lab, c: c.mlkem_decapsulate(lab.base.keys["mlkem"], os.urandom(1568)),
    "MlKemGetPublicKey": lambda lab, c: c.mlkem_get_public_key(lab.base.keys["mlkem"]),
    "CvmGetNonce": lambda lab, c: c.cvm_get_nonce(VM_ID),
    "CvmVerifyEvidence": lambda lab, c: c.cvm_verify_evidence(lab.evidence()),
    "CvmReleaseKey": _release,
    "CvmSeal": lambda lab, c: c.cvm_seal(WORKLOAD, b"data"),
    "CvmUnseal": _unseal,
    "CvmSetOwner": _set_owner,
    "CvmRegisterVm": _register_vm,
    "CvmSetPolicy": _set_policy,
    "CvmGetOwnerInfo": lambda lab, c: c.cvm_get_owner_info(),
}
