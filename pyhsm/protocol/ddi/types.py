"""DDI enumerations (docs/ddi.md, "Keys: properties, tags, ids and tables"), key kinds with their sizes and families, and key flag bits."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


class KeyType(enum.IntEnum):
    Rsa2kPrivate = 1
    Rsa3kPrivate = 2
    Rsa4kPrivate = 3
    Rsa2kPrivateCrt = 4
    Rsa3kPrivateCrt = 5
    Rsa4kPrivateCrt = 6
    Ecc256Private = 7
    Ecc384Private = 8
    Ecc521Private = 9
    Aes128 = 10
    Aes192 = 11
    Aes256 = 12
    AesXtsBulk256 = 13
    AesGcmBulk256 = 14
    AesGcmBulk256Unapproved = 15
    Secret256 = 16
    Secret384 = 17
    Secret521 = 18
    Rsa2kPublic = 19
    Rsa3kPublic = 20
    Rsa4kPublic = 21
    Ecc256Public = 22
    Ecc384Public = 23
    Ecc521Public = 24
    HmacSha256 = 25
    HmacSha384 = 26
    HmacSha512 = 27
    AesCbc256Hmac384 = 28
    VarHmac256 = 30
    VarHmac384 = 31
    VarHmac512 = 32
    # vendor kinds (docs/vendor-ops.md): material is the FIPS 203/204 seed
    MlDsa65Private = 32769
    MlDsa87Private = 32770
    MlKem768Private = 32771
    MlKem1024Private = 32772


class KeyClass(enum.IntEnum):
    Rsa = 1
    RsaCrt = 2
    Aes = 3
    AesXtsBulk = 4
    AesGcmBulk = 5
    AesGcmBulkUnapproved = 6
    Ecc = 7


class HashAlgorithm(enum.IntEnum):
    Sha1 = 1
    Sha256 = 2
    Sha384 = 3
    Sha512 = 4


class EccCurve(enum.IntEnum):
    P256 = 1
    P384 = 2
    P521 = 3


class AesKeySize(enum.IntEnum):
    Aes128 = 1
    Aes192 = 2
    Aes256 = 3
    AesXtsBulk256 = 4
    AesGcmBulk256 = 5
    AesGcmBulk256Unapproved = 6


class AesOp(enum.IntEnum):
    Encrypt = 1
    Decrypt = 2


class RsaOpType(enum.IntEnum):
    Decrypt = 1
    Sign = 2


class DeviceKind(enum.IntEnum):
    Virtual = 1
    Physical = 2


HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.Sha1: hashes.SHA1, HashAlgorithm.Sha256: hashes.SHA256,
    HashAlgorithm.Sha384: hashes.SHA384, HashAlgorithm.Sha512: hashes.SHA512,
}


class Family(enum.Enum):
    RSA = "rsa"
    ECC = "ecc"
    AES = "aes"
    BULK = "bulk"
    SECRET = "secret"
    HMAC = "hmac"
    MASKING = "masking"
    MLDSA = "ml-dsa"
    MLKEM = "ml-kem"


class Usage(enum.Enum):
    """The four usage classes a key may be given (exactly one)."""

    ENCRYPT_DECRYPT = "encrypt/decrypt"
    SIGN_VERIFY = "sign/verify"
    UNWRAP = "unwrap"
    DERIVE = "derive"


@dataclass(frozen=True)
class KindInfo:
    family: Family
    size: int            # bytes charged against a key table's budget (docs/ddi.md, "Keys: properties, tags, ids and tables")
    bits: int            # key or modulus size in bits
    usages: frozenset[Usage]


_ASYM = frozenset({Usage.SIGN_VERIFY, Usage.DERIVE})
_RSA = frozenset({Usage.SIGN_VERIFY, Usage.ENCRYPT_DECRYPT, Usage.UNWRAP})
_ENC = frozenset({Usage.ENCRYPT_DECRYPT})
_NONE: frozenset[Usage] = frozenset()

KINDS: dict[KeyType, KindInfo] = {
    KeyType.Rsa2kPrivate: KindInfo(Family.RSA, 516, 2048, _RSA),
    KeyType.Rsa3kPrivate: KindInfo(Family.RSA, 772, 3072, _RSA),
    KeyType.Rsa4kPrivate: KindInfo(Family.RSA, 1028, 4096, _RSA),
    KeyType.Rsa2kPrivateCrt: KindInfo(Family.RSA, 1284, 2048, _RSA),
    KeyType.Rsa3kPrivateCrt: KindInfo(Family.RSA, 1924, 3072, _RSA),
    KeyType.Rsa4kPrivateCrt: KindInfo(Family.RSA, 2564, 4096, _RSA),
    KeyType.Ecc256Private: KindInfo(Family.ECC, 32, 256, _ASYM),
    KeyType.Ecc384Private: KindInfo(Family.ECC, 48, 384, _ASYM),
    KeyType.Ecc521Private: KindInfo(Family.ECC, 68, 521, _ASYM),
    KeyType.Aes128: KindInfo(Family.AES, 16, 128, _ENC),
    KeyType.Aes192: KindInfo(Family.AES, 24, 192, _ENC),
    KeyType.Aes256: KindInfo(Family.AES, 32, 256, _ENC),
    KeyType.AesXtsBulk256: KindInfo(Family.BULK, 2, 256, _ENC),
    KeyType.AesGcmBulk256: KindInfo(Family.BULK, 2, 256, _ENC),
    KeyType.AesGcmBulk256Unapproved: KindInfo(Family.BULK, 2, 256, _ENC),
    KeyType.Secret256: KindInfo(Family.SECRET, 32, 256, frozenset({Usage.DERIVE})),
    KeyType.Secret384: KindInfo(Family.SECRET, 48, 384, frozenset({Usage.DERIVE})),
    KeyType.Secret521: KindInfo(Family.SECRET, 66, 521, frozenset({Usage.DERIVE})),
    KeyType.HmacSha256: KindInfo(Family.HMAC, 32, 256, frozenset({Usage.SIGN_VERIFY})),
    KeyType.HmacSha384: KindInfo(Family.HMAC, 48, 384, frozenset({Usage.SIGN_VERIFY})),
    KeyType.HmacSha512: KindInfo(Family.HMAC, 64, 512, frozenset({Usage.SIGN_VERIFY})),
    KeyType.AesCbc256Hmac384: KindInfo(Family.MASKING, 80, 640, _NONE),
    # VarHmac: size = the longest allowed key (VAR_HMAC_LENGTHS); bits = the hash's output size
    KeyType.VarHmac256: KindInfo(Family.HMAC, 64, 256, frozenset({Usage.SIGN_VERIFY})),
    KeyType.VarHmac384: KindInfo(Family.HMAC, 128, 384, frozenset({Usage.SIGN_VERIFY})),
    KeyType.VarHmac512: KindInfo(Family.HMAC, 128, 512, frozenset({Usage.SIGN_VERIFY})),
    KeyType.MlDsa65Private: KindInfo(Family.MLDSA, 4032, 256, frozenset({Usage.SIGN_VERIFY})),
    KeyType.MlDsa87Private: KindInfo(Family.MLDSA, 4896, 256, frozenset({Usage.SIGN_VERIFY})),
    KeyType.MlKem768Private: KindInfo(Family.MLKEM, 2400, 512, frozenset({Usage.DERIVE})),
    KeyType.MlKem1024Private: KindInfo(Family.MLKEM, 3168, 512, frozenset({Usage.DERIVE})),
}

CURVES: dict[int, tuple[ec.EllipticCurve, KeyType, KeyType]] = {
    EccCurve.P256: (ec.SECP256R1(), KeyType.Ecc256Private, KeyType.Ecc256Public),
    EccCurve.P384: (ec.SECP384R1(), KeyType.Ecc384Private, KeyType.Ecc384Public),
    EccCurve.P521: (ec.SECP521R1(), KeyType.Ecc521Private, KeyType.Ecc521Public),
}
ECC_BY_NAME: dict[str, tuple[KeyType, KeyType, KeyType]] = {
    "secp256r1": (KeyType.Ecc256Private, KeyType.Ecc256Public, KeyType.Secret256),
    "secp384r1": (KeyType.Ecc384Private, KeyType.Ecc384Public, KeyType.Secret384),
    "secp521r1": (KeyType.Ecc521Private, KeyType.Ecc521Public, KeyType.Secret521),
}
RSA_PRIVATE: dict[tuple[int, bool], KeyType] = {
    (2048, False): KeyType.Rsa2kPrivate, (3072, False): KeyType.Rsa3kPrivate,
    (4096, False): KeyType.Rsa4kPrivate, (2048, True): KeyType.Rsa2kPrivateCrt,
    (3072, True): KeyType.Rsa3kPrivateCrt, (4096, True): KeyType.Rsa4kPrivateCrt,
}
RSA_PUBLIC: dict[int, KeyType] = {2048: KeyType.Rsa2kPublic, 3072: KeyType.Rsa3kPublic,
                                  4096: KeyType.Rsa4kPublic}
AES_SIZES: dict[int, KeyType] = {
    AesKeySize.Aes128: KeyType.Aes128, AesKeySize.Aes192: KeyType.Aes192, AesKeySize.Aes256: KeyType.Aes256,
    AesKeySize.AesXtsBulk256: KeyType.AesXtsBulk256, AesKeySize.AesGcmBulk256: KeyType.AesGcmBulk256,
    AesKeySize.AesGcmBulk256Unapproved: KeyType.AesGcmBulk256Unapproved,
}
DERIVED_LENGTHS: dict[KeyType, int] = {
    KeyType.Aes128: 16, KeyType.Aes192: 24, KeyType.Aes256: 32,
    KeyType.AesXtsBulk256: 32, KeyType.AesGcmBulk256: 32, KeyType.AesGcmBulk256Unapproved: 32,
    KeyType.HmacSha256: 32, KeyType.HmacSha384: 48, KeyType.HmacSha512: 64,
}
HMAC_HASHES: dict[KeyType, type[hashes.HashAlgorithm]] = {
    KeyType.HmacSha256: hashes.SHA256, KeyType.HmacSha384: hashes.SHA384, KeyType.HmacSha512: hashes.SHA512,
    KeyType.VarHmac256: hashes.SHA256, KeyType.VarHmac384: hashes.SHA384, KeyType.VarHmac512: hashes.SHA512,
}
# Variable-length HMAC keys: the key lengths in bytes (inclusive) a derive may ask for (key_length).
VAR_HMAC_LENGTHS: dict[KeyType, tuple[int, int]] = {
    KeyType.VarHmac256: (32, 64), KeyType.VarHmac384: (48, 128), KeyType.VarHmac512: (64, 128),
}


class Flag(enum.IntFlag):
    """Stored key-entry flags; the bit positions of the masked-key attribute blob (docs/ddi.md, "Masked key blobs")."""

    SESSION = 1 << 1
    LOCAL = 1 << 5
    ENCRYPT = 1 << 10
    DECRYPT = 1 << 11
    SIGN = 1 << 12
    VERIFY = 1 << 13
    WRAP = 1 << 14
    UNWRAP = 1 << 15
    DERIVE = 1 << 16


USAGE_FLAGS: dict[Usage, Flag] = {
    Usage.ENCRYPT_DECRYPT: Flag.ENCRYPT | Flag.DECRYPT,
    Usage.SIGN_VERIFY: Flag.SIGN | Flag.VERIFY,
    Usage.UNWRAP: Flag.UNWRAP,
    Usage.DERIVE: Flag.DERIVE,
}
