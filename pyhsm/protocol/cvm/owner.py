"""Owner commands (docs/vendor-ops.md): ECDSA P-384/SHA-384 signatures over an op's MBOR body."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pyhsm.protocol.ddi import mbor
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.schemas_vendor import OWNER_BODIES

DOMAIN = b"azihsm-cvm-owner-v1\0"


def signed_message(opcode: int, body: bytes) -> bytes:
    return DOMAIN + struct.pack(">I", opcode) + body


def sign(key: ec.EllipticCurvePrivateKey, opcode: int, body: bytes) -> bytes:
    """The 96-byte r || s signature of an owner command."""
    r, s = decode_dss_signature(key.sign(signed_message(opcode, body), ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def verify(public_der: bytes, opcode: int, body: bytes, signature: bytes) -> bool:
    key = serialization.load_der_public_key(public_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        key.verify(der, signed_message(opcode, body), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


def load_p384_public(der: bytes) -> ec.EllipticCurvePublicKey:
    """A P-384 public key from SPKI DER; ValueError otherwise."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an SPKI public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ValueError("not a P-384 public key")
    return key


def public_der(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


FILE_MAGIC = b"AZCVMOC1"


@dataclass(frozen=True)
class SignedCommand:
    """An owner command ready to send by any party (the fabric, or the guest agent relaying it):
    file form = "AZCVMOC1" || u32be opcode || 96-byte signature || MBOR body."""

    opcode: int
    signature: bytes
    body: bytes

    def to_bytes(self) -> bytes:
        return FILE_MAGIC + struct.pack(">I", self.opcode) + self.signature + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedCommand:
        if len(data) < 8 + 4 + 96 or not data.startswith(FILE_MAGIC):
            raise ValueError("not a signed owner command")
        return cls(struct.unpack_from(">I", data, 8)[0], data[12:108], data[108:])


def signed_command(op: str, key: ec.EllipticCurvePrivateKey, **body: Any) -> SignedCommand:
    """Owner command ``op`` with ``body`` fields (``OWNER_BODIES[op]``), MBOR-encoded and signed,
    for any party to send: the HSM authenticates owner commands by signature, whatever channel
    carries them."""
    schema = OWNER_BODIES[op]
    encoded = mbor.encode(schema, schema(**body))
    code = BY_NAME[op].code
    return SignedCommand(code, sign(key, code, encoded), encoded)
