"""What the credential test files (establish_credential.rs, open_session.rs, reopen_session.rs) share:
EstablishCredential with every field under the test's control, and the invalid P-384 client keys."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from pyhsm.client import EncodeError, HsmClient
from pyhsm.protocol.ddi.schemas import PUBLIC_KEY
from pyhsm.protocol.ddi.types import EccCurve, KeyType
from tests.conformance.ecdh_cases import field_prime, point_der
from tests.conformance.vendor import POTA_KEY, Device, S, expect, reused_provisioning

POTA_DER = POTA_KEY.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


def pota_signature(dev: HsmClient) -> bytes:
    """The POTA key's ECDSA-SHA-384 signature (r || s) over the partition-ID key's uncompressed point."""
    point = dev.attestation_public_key().public_bytes(serialization.Encoding.X962,
                                                      serialization.PublicFormat.UncompressedPoint)
    r, s = decode_dss_signature(POTA_KEY.sign(point, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def establish(device: Device, dev: HsmClient, cred: Any, pub: Any, *, masked_bk3: bytes | None = None,
              pota_sig: bytes | None = None, pota_pub: Any = None, blobs: tuple[bytes, bytes] | None = None,
              request: dict | None = None) -> bytes:
    """helper_init_bk3_and_establish_credential with the given pieces (the sealed BK3 and a valid POTA
    signature and key unless given); ``blobs``: the BMK and masked unwrapping key; ``request``: header
    overrides (sess_id, rev). Returns the BMK. Without ``blobs``, once the suite has provisioned a
    partition its BMK and unwrapping key are handed back (the same partition state, without an RSA
    key generation per test)."""
    reused = reused_provisioning()
    bmk, unwrapping = blobs or (reused["bmk"], reused["masked_unwrapping_key"])
    fields = {"encrypted_credential": cred, "pub_key": pub,
              "masked_bk3": device.bk3(dev) if masked_bk3 is None else masked_bk3,
              "bmk": bmk, "masked_unwrapping_key": unwrapping,
              "pota_sig": pota_signature(dev) if pota_sig is None else pota_sig,
              "pota_pub_key": pota_pub or PUBLIC_KEY(der=POTA_DER, key_kind=int(KeyType.Ecc384Public))}
    return dev.request("EstablishCredential", fields, **(request or {})).bmk


def invalid_key(which: str) -> Any:
    """A P-384 client key with X or Y equal to the field prime, off the curve, or at infinity."""
    p = field_prime(EccCurve.P384)
    good = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    x, y = {"x": (p, good.y), "y": (good.x, p), "curve": (good.x, (good.y + 1) % p)}.get(which, (good.x, good.y))
    der = point_der(EccCurve.P384, x, y)
    if which == "infinity":
        der = der[:-97] + b"\x00"
    return PUBLIC_KEY(der=der, key_kind=int(KeyType.Ecc384Public))


def expect_invalid_key(which: str, fn: Any, *args: Any) -> None:
    """The device's verdict on ``invalid_key(which)`` (the point at infinity has no Physical form:
    the client fails to encode it, as the vendor's SDK does)."""
    if which == "infinity":
        with pytest.raises(EncodeError):
            fn(*args)
        return
    expect(S.EccPointValidationFailed if which == "curve" else S.EccPublicKeyValidationFailed, fn, *args)
