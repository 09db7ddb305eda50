"""Secrets never reach the logs: a full flow with errors, logged at DEBUG, is scanned for them."""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives import serialization

from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, expect, provision


def test_no_secrets_in_logs(client: HsmClient, partition, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    hsm = provision(client, partition)
    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P384, tag=1)
    aes = c.aes_generate_key(AesKeySize.Aes256)
    c.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, b"plaintext-secret" * 2, bytes(16))
    expect(S.InvalidArg, c.aes_encrypt_decrypt, aes.key_id, AesOp.Encrypt, b"odd", bytes(16))
    expect(S.MaskedKeyDecodeFailed, c.unmask_key, key.masked_key[:-1] + b"\0")
    other = hsm.another_client()
    expect(S.InvalidAppCredentials, other.open_session, APP_ID, b"wrong-pin-000000")
    text = caplog.text.encode()
    assert b"EccSign" in text or b"InvalidArg" in text  # the log is not empty
    entries = [e for _, e in partition.vault.keys]
    secrets = [PIN, BK3, APP_ID, b"plaintext-secret", b"wrong-pin"] + [e.material for e in entries if e.material]
    prov = partition.vault.provisioning
    secrets += [prov.masking_key, prov.bk_partition]
    scalar = serialization.load_der_private_key(partition.vault.keys.get(key.private_key_id).material, None)
    secrets.append(scalar.private_numbers().private_value.to_bytes(48, "big"))
    for secret in secrets:
        for form in (secret, secret.hex().encode(), repr(secret).encode()):
            assert form not in text
