"""Shared helpers of the DDI tests: credentials, an in-process transport to a real ``Partition``,
provisioning, and ``expect`` for DDI error statuses."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import DdiError, HsmClient
from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus

APP_ID = bytes.fromhex("0123456789abcdef0123456789abcdef")
PIN = b"pin-0123456789ab"
BK3 = bytes(range(48))


class LocalTransport:
    """Hands each command straight to ``Partition.execute`` (what the link server does)."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.requests: list[link.Request] = []
        self.responses: list[link.Response] = []

    def submit(self, request: bytes, flags: link.SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        req = link.Request(1, 1, opc, flags.to_byte(), session_id, dst_len, request)
        self.requests.append(req)
        resp = self.partition.execute(req)
        self.responses.append(resp)
        return Completion(resp.status, link.SessionFlags.from_byte(resp.session_flags), resp.session_id,
                          resp.short_app_id, resp.payload)

    def close(self) -> None:
        pass


@dataclass
class Provisioned:
    client: HsmClient
    partition: Partition
    masked_bk3: bytes
    bmk: bytes
    pota: ec.EllipticCurvePrivateKey
    seed: bytes
    bmk_session: bytes

    def another_client(self) -> HsmClient:
        return HsmClient(LocalTransport(self.partition))


def provision(client: HsmClient, partition: Partition) -> Provisioned:
    pota = ec.generate_private_key(ec.SECP384R1())
    masked_bk3 = client.init_bk3(BK3)
    bmk = client.establish_credential(APP_ID, PIN, masked_bk3, pota)
    seed = os.urandom(48)
    opened = client.open_session(APP_ID, PIN, seed)
    return Provisioned(client, partition, masked_bk3, bmk, pota, seed, opened.bmk_session)


def rsa_aes_wrap(public: rsa.RSAPublicKey, target: bytes,
                 algorithm: hashes.HashAlgorithm = hashes.SHA256()) -> bytes:
    """``target`` wrapped for RsaUnwrap: RSA-OAEP of a fresh AES key, then AES key wrap with padding."""
    aes_key = os.urandom(32)
    head = public.encrypt(aes_key, padding.OAEP(padding.MGF1(algorithm), algorithm, None))
    return head + aes_key_wrap_with_padding(aes_key, target)


def expect(status: DdiStatus, fn, *args, **kwargs) -> DdiError:
    """Call ``fn`` and require it to fail with DDI status ``status``."""
    with pytest.raises(DdiError) as info:
        fn(*args, **kwargs)
    assert info.value.status is status, info.value
    return info.value
