"""A software stand-in for a vTPM (test fake): PCR banks and an attestation key that produce byte-exact
TPM2B_PUBLIC, TPMS_ATTEST (quote) and TPMT_SIGNATURE structures. The real swtpm path is tested in
test_cvm_swtpm.py; this fake makes the refusal tests fast and lets them forge what a TPM never would."""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyhsm.protocol.cvm import tpm2

SHA256 = 0x000B
AK_ATTRIBUTES = tpm2.AK_ATTRIBUTES | (1 << 5) | (1 << 6)   # + sensitiveDataOrigin, userWithAuth
EK_ATTRIBUTES = 0x000300B2   # fixedTPM fixedParent sensitiveDataOrigin adminWithPolicy restricted decrypt


def b2(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _ecc_area(public: ec.EllipticCurvePublicKey, attributes: int, scheme: int) -> bytes:
    nums = public.public_numbers()
    scheme_fields = struct.pack(">HH", scheme, SHA256) if scheme != 0x0010 else struct.pack(">H", scheme)
    params = (struct.pack(">H", 0x0010) + scheme_fields + struct.pack(">HH", 0x0003, 0x0010)
              + b2(nums.x.to_bytes(32, "big")) + b2(nums.y.to_bytes(32, "big")))
    return struct.pack(">HHI", tpm2.ALG_ECC, SHA256, attributes) + b2(b"") + params


class SoftVtpm:
    def __init__(self, kind: str = "ecc", attributes: int = AK_ATTRIBUTES) -> None:
        self.pcrs = [bytes(32) for _ in range(24)]
        self.kind = kind
        self.ek = ec.generate_private_key(ec.SECP256R1())
        self.ek_area = _ecc_area(self.ek.public_key(), EK_ATTRIBUTES, 0x0010)
        if kind == "ecc":
            self.ak = ec.generate_private_key(ec.SECP256R1())
            self.area = _ecc_area(self.ak.public_key(), attributes, tpm2.ALG_ECDSA)
        else:
            self.ak = rsa.generate_private_key(65537, 2048)
            n = self.ak.public_key().public_numbers().n.to_bytes(256, "big")
            params = struct.pack(">HHHHI", 0x0010, tpm2.ALG_RSASSA, SHA256, 2048, 0) + b2(n)
            self.area = struct.pack(">HHI", tpm2.ALG_RSA, SHA256, attributes) + b2(b"") + params
        self.clock = 1000

    @property
    def ak_public(self) -> bytes:
        return b2(self.area)

    @property
    def ek_public(self) -> bytes:
        return b2(self.ek_area)

    @property
    def ek_der(self) -> bytes:
        return self.ek.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    @property
    def name(self) -> bytes:
        return struct.pack(">H", SHA256) + hashlib.sha256(self.area).digest()

    @property
    def qualified_name(self) -> bytes:
        return tpm2.ak_qualified_name(tpm2.parse_public(self.ek_public), tpm2.parse_public(self.ak_public))

    def extend(self, index: int, data: bytes) -> None:
        self.pcrs[index] = hashlib.sha256(self.pcrs[index] + hashlib.sha256(data).digest()).digest()

    def values(self, pcrs: list[int]) -> bytes:
        return b"".join(self.pcrs[i] for i in sorted(pcrs))

    def quote(self, nonce: bytes, pcrs: list[int], *,
              signer_name: bytes | None = None) -> tuple[bytes, bytes, bytes]:
        """(TPMS_ATTEST, TPMT_SIGNATURE, PCR values) of a sha256 quote over ``pcrs``."""
        self.clock += 10
        bitmap = sum(1 << i for i in pcrs).to_bytes(3, "little")
        values = self.values(pcrs)
        signer = signer_name or self.qualified_name
        attest = (struct.pack(">IH", tpm2.GENERATED_VALUE, tpm2.ST_ATTEST_QUOTE) + b2(signer) + b2(nonce)
                  + struct.pack(">QIIBQ", self.clock, 1, 0, 1, 0x20191023)
                  + struct.pack(">IHB", 1, SHA256, 3) + bitmap + b2(hashlib.sha256(values).digest()))
        if self.kind == "ecc":
            r, s = decode_dss_signature(self.ak.sign(attest, ec.ECDSA(hashes.SHA256())))
            sig = struct.pack(">HH", tpm2.ALG_ECDSA, SHA256) + b2(r.to_bytes(32, "big")) + b2(s.to_bytes(32, "big"))
        else:
            sig = struct.pack(">HH", tpm2.ALG_RSASSA, SHA256) + b2(self.ak.sign(attest, padding.PKCS1v15(),
                                                                                 hashes.SHA256()))
        return attest, sig, values
