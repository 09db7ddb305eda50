"""The guest's partition credential (docs/ddi.md, "Credential encryption"): fixed test values, not secrets."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

APP_ID = bytes.fromhex("5a1e0f3c7b2d4e6f8a9b0c1d2e3f4a5b")
APP_PIN = bytes.fromhex("70696e2d6f662d7468652d6775657374")
BK3 = bytes(range(48))


OPEN_ATTEMPTS = 20


def open_session(client: Any) -> Any:
    """OpenSession with the credential, retried on NonceMismatch: concurrent openers race for the
    partition's one session-encryption nonce (docs/ddi.md, "Sessions, access and the nonce"), and the loser asks again."""
    from pyhsm.client import DdiError
    for _ in range(OPEN_ATTEMPTS - 1):
        try:
            return client.open_session(APP_ID, APP_PIN)
        except DdiError as exc:
            if exc.name != "NonceMismatch":
                raise
    return client.open_session(APP_ID, APP_PIN)


def ensure_established(client: Any) -> dict[str, Any]:
    """Provision the partition with the credential unless it already is (kept backend state)."""
    from pyhsm.client import DdiError
    try:
        client.get_session_encryption_key()
        return {"credential": "already established"}
    except DdiError as exc:
        if exc.name != "CredentialsNotEstablished":
            raise
    pota = ec.generate_private_key(ec.SECP384R1())
    bmk = client.establish_credential(APP_ID, APP_PIN, client.init_bk3(BK3), pota)
    return {"credential": "established", "bmk_bytes": len(bmk)}
