"""TPM 2.0 structures the HSM checks (TPM 2.0 Library, Part 2): TPMS_ATTEST of a quote, TPMT_SIGNATURE,
TPM2B_PUBLIC of an attestation key, with the key's TPM name and quote-signature verification.

Parsers are strict: every length is checked and trailing bytes are rejected (``Tpm2Error``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# Handles the host provisions in each vTPM and the guest reads (docs/vendor-ops.md).
AK_HANDLE = 0x81010002        # the attestation key the host provisions (vendor-ops.md)
EK_CERT_NV = {"rsa": 0x01C00002, "ecc": 0x01C00016}   # TCG EK credential profile: RSA 2048, ECC P-384

GENERATED_VALUE = 0xFF544347
ST_ATTEST_QUOTE = 0x8018
ALG_RSA, ALG_ECC = 0x0001, 0x0023
ALG_RSASSA, ALG_RSAPSS, ALG_ECDSA, ALG_NULL = 0x0014, 0x0016, 0x0018, 0x0010
ECC_CURVES = {0x0003: ec.SECP256R1, 0x0004: ec.SECP384R1}
# TPMA_OBJECT bits an attestation key must have.
FIXED_TPM, FIXED_PARENT, RESTRICTED, SIGN_ENCRYPT = 1 << 1, 1 << 4, 1 << 16, 1 << 18
AK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | RESTRICTED | SIGN_ENCRYPT
TPM_RH_ENDORSEMENT = 0x4000000B


@dataclass(frozen=True)
class HashAlg:
    alg_id: int
    name: str
    size: int

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.name, data).digest()

    def crypto(self) -> hashes.HashAlgorithm:
        algorithms: dict[str, Callable[[], hashes.HashAlgorithm]] = {
            "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
        return algorithms[self.name]()


HASHES: dict[int, HashAlg] = {h.alg_id: h for h in (
    HashAlg(0x0004, "sha1", 20), HashAlg(0x000B, "sha256", 32), HashAlg(0x000C, "sha384", 48),
    HashAlg(0x000D, "sha512", 64))}
HASH_BY_NAME: dict[str, HashAlg] = {h.name: h for h in HASHES.values()}


class Tpm2Error(ValueError):
    """Bytes that are not a well-formed structure of the expected kind."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Tpm2Error(f"truncated at offset {self.pos} (need {n} bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def sized(self) -> bytes:
        return self.take(self.u16())

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise Tpm2Error(f"{what}: {len(self.data) - self.pos} trailing bytes")


def _hash(alg_id: int) -> HashAlg:
    if alg_id not in HASHES:
        raise Tpm2Error(f"unsupported hash algorithm 0x{alg_id:04x}")
    return HASHES[alg_id]


@dataclass(frozen=True)
class PcrSelection:
    bank: HashAlg
    pcrs: tuple[int, ...]     # ascending

    @property
    def mask(self) -> int:
        return sum(1 << i for i in self.pcrs)


@dataclass(frozen=True)
class Quote:
    """A parsed TPMS_ATTEST of type ATTEST_QUOTE."""

    raw: bytes
    signer_name: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    selections: tuple[PcrSelection, ...]
    pcr_digest: bytes


def parse_quote(data: bytes) -> Quote:
    r = _Reader(data)
    if r.u32() != GENERATED_VALUE:
        raise Tpm2Error("not TPM-generated (magic)")
    if r.u16() != ST_ATTEST_QUOTE:
        raise Tpm2Error("not a quote (type)")
    signer, extra = r.sized(), r.sized()
    clock, resets, restarts = r.u64(), r.u32(), r.u32()
    r.u8()    # safe
    r.u64()   # firmwareVersion
    selections = []
    for _ in range(r.u32()):
        bank = _hash(r.u16())
        bitmap = r.take(r.u8())
        pcrs = tuple(8 * i + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1)
        selections.append(PcrSelection(bank, pcrs))
    digest = r.sized()
    r.end("TPMS_ATTEST")
    return Quote(data, signer, extra, clock, resets, restarts, tuple(selections), digest)


@dataclass(frozen=True)
class Signature:
    scheme: int
    hash: HashAlg
    rsa_signature: bytes = b""
    ecc_r: int = 0
    ecc_s: int = 0


def parse_signature(data: bytes) -> Signature:
    r = _Reader(data)
    scheme = r.u16()
    if scheme not in (ALG_RSASSA, ALG_RSAPSS, ALG_ECDSA):
        raise Tpm2Error(f"unsupported signature scheme 0x{scheme:04x}")
    alg = _hash(r.u16())
    if scheme == ALG_ECDSA:
        sig = Signature(scheme, alg, ecc_r=int.from_bytes(r.sized(), "big"), ecc_s=int.from_bytes(r.sized(), "big"))
    else:
        sig = Signature(scheme, alg, rsa_signature=r.sized())
    r.end("TPMT_SIGNATURE")
    return sig


@dataclass(frozen=True)
class PublicKey:
    """A parsed TPM2B_PUBLIC: its TPMT_PUBLIC bytes, attributes, name and the key itself."""

    public_area: bytes
    name_alg: HashAlg
    attributes: int
    key: Any          # rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    @property
    def name(self) -> bytes:
        """TPM name: nameAlg (u16) || H_nameAlg(TPMT_PUBLIC)."""
        return struct.pack(">H", self.name_alg.alg_id) + self.name_alg.digest(self.public_area)

    def qualified_name(self, parent_qualified_name: bytes) -> bytes:
        """Qualified name: nameAlg || H_nameAlg(parent's qualified name || own name)."""
        return struct.pack(">H", self.name_alg.alg_id) + self.name_alg.digest(parent_qualified_name + self.name)


def ak_qualified_name(ek: PublicKey, ak: PublicKey) -> bytes:
    """The qualifiedSigner a quote by ``ak`` carries when ``ak`` is a child of the primary ``ek`` in
    the endorsement hierarchy (whose qualified name is its handle)."""
    return ak.qualified_name(ek.qualified_name(struct.pack(">I", TPM_RH_ENDORSEMENT)))


def _skip_symmetric(r: _Reader) -> None:
    if r.u16() != ALG_NULL:
        r.u16()   # keyBits
        r.u16()   # mode


def _skip_scheme(r: _Reader) -> None:
    if r.u16() != ALG_NULL:
        r.u16()   # hashAlg of the scheme


def parse_public(data: bytes) -> PublicKey:
    """A TPM2B_PUBLIC (as written by ``tpm2_createak -u``) of an RSA or ECC P-256/P-384 key."""
    outer = _Reader(data)
    area = outer.sized()
    outer.end("TPM2B_PUBLIC")
    r = _Reader(area)
    kind, name_alg, attributes = r.u16(), _hash(r.u16()), r.u32()
    r.sized()  # authPolicy
    key: Any
    try:
        if kind == ALG_RSA:
            _skip_symmetric(r)
            _skip_scheme(r)
            bits, exponent = r.u16(), r.u32() or 65537
            modulus = r.sized()
            if len(modulus) * 8 != bits or bits not in (2048, 3072):
                raise Tpm2Error(f"RSA modulus of {len(modulus) * 8} bits (need 2048 or 3072)")
            key = rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "big")).public_key()
        elif kind == ALG_ECC:
            _skip_symmetric(r)
            _skip_scheme(r)
            curve_id = r.u16()
            _skip_scheme(r)   # kdf
            x, y = r.sized(), r.sized()
            if curve_id not in ECC_CURVES:
                raise Tpm2Error(f"unsupported curve 0x{curve_id:04x}")
            key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                                ECC_CURVES[curve_id]()).public_key()
        else:
            raise Tpm2Error(f"unsupported key type 0x{kind:04x}")
    except ValueError as exc:
        if isinstance(exc, Tpm2Error):
            raise
        raise Tpm2Error(f"invalid public key: {exc}") from None
    r.end("TPMT_PUBLIC")
    return PublicKey(area, name_alg, attributes, key)


def verify_quote_signature(ak: PublicKey, quote: Quote, signature: Signature) -> bool:
    """Whether ``signature`` over the TPMS_ATTEST bytes verifies under the AK."""
    algorithm = signature.hash.crypto()
    try:
        if isinstance(ak.key, ec.EllipticCurvePublicKey):
            if signature.scheme != ALG_ECDSA:
                return False
            ak.key.verify(encode_dss_signature(signature.ecc_r, signature.ecc_s), quote.raw, ec.ECDSA(algorithm))
        else:
            if signature.scheme == ALG_ECDSA:
                return False
            pad = (padding.PKCS1v15() if signature.scheme == ALG_RSASSA
                   else padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO))
            ak.key.verify(signature.rsa_signature, quote.raw, pad, algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


def split_pcr_values(selections: tuple[PcrSelection, ...], values: bytes) -> dict[tuple[int, int], bytes]:
    """Map (bank alg id, PCR index) -> value from the concatenation in selection order."""
    out: dict[tuple[int, int], bytes] = {}
    pos = 0
    for sel in selections:
        for pcr in sel.pcrs:
            out[(sel.bank.alg_id, pcr)] = values[pos:pos + sel.bank.size]
            pos += sel.bank.size
    if pos != len(values) or any(len(v) != HASHES[alg].size for (alg, _), v in out.items()):
        raise Tpm2Error(f"{len(values)} bytes of PCR values, the selection needs {pos}")
    return out
