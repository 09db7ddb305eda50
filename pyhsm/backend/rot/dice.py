"""DICE layering: CDIs, per-layer alias keys (ECC P-384 and ML-DSA-87) and their X.509 certificates.

  CDI_0     = HMAC-SHA-384(UDS,      "AZIHSM-DICE-CDI-V1" 0x00 || layer || SVN || SHA-384(ROM image))
  CDI_n     = HMAC-SHA-384(CDI_n-1,  same label         || layer || SVN || SHA-384(stage n image))
  layer key = from HMAC-SHA-384(CDI_n, key label || counter): a P-384 scalar (96 bytes reduced mod n-1,
              plus one) and a 32-byte ML-DSA-87 seed; the attestation key comes from CDI of the last layer.

Layer 0 (the immutable ROM) owns the Device ID keys; every later layer owns an alias key pair. The P-384
chain is Device ID (self-signed) -> boot loader alias -> runtime alias -> attestation key, each signed
deterministically (RFC 6979) so a device presents the same chain at every power-on. The ML-DSA-87 keys form
a parallel X.509 chain (Device ID -> aliases) signed with ML-DSA-87. Every certificate carries the
TCG UEID; CA certificates carry the TcbInfo of their layer's stage (version, SVN, layer, SHA-384 FWID).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.x509.oid import NameOID

from pyhsm.protocol.dice import der
from pyhsm.protocol.dice.firmware import Stage

VENDOR = "Virtual Azure Integrated HSM"
MODEL = "azihsm-emu"
_CDI_LABEL = b"AZIHSM-DICE-CDI-V1\0"
_P384_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
_NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)   # RFC 5280: no expiry
ROLES = {0: "Device ID", 1: "Boot Loader Alias", 2: "Runtime Alias"}
ATTESTATION_ROLE = "Attestation Key"

PrivateKey = ec.EllipticCurvePrivateKey | mldsa.MLDSA87PrivateKey
"""A key that signs certificates: a layer's P-384 or ML-DSA-87 key."""
PublicKey = ec.EllipticCurvePublicKey | mldsa.MLDSA87PublicKey


def next_cdi(parent: bytes | bytearray, stage: Stage) -> bytearray:
    """CDI of ``stage``'s layer from the parent secret (UDS or previous CDI) and the stage's measurement."""
    context = _CDI_LABEL + bytes([stage.layer]) + stage.svn.to_bytes(8, "big") + stage.measurement
    return bytearray(hmac.new(parent, context, hashlib.sha384).digest())


def derive(cdi: bytes | bytearray, label: bytes, length: int) -> bytes:
    """``length`` bytes from a CDI (HMAC-SHA-384 in counter mode; distinct labels give independent outputs)."""
    blocks = (length + 47) // 48
    out = b"".join(hmac.new(cdi, label + b"\0" + i.to_bytes(4, "big"), hashlib.sha384).digest()
                   for i in range(1, blocks + 1))
    return out[:length]


def p384_key(cdi: bytes | bytearray, label: bytes) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(derive(cdi, b"ECC-P384/" + label, 96), "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


def mldsa87_key(cdi: bytes | bytearray, label: bytes) -> mldsa.MLDSA87PrivateKey:
    return mldsa.MLDSA87PrivateKey.from_seed_bytes(derive(cdi, b"ML-DSA-87/" + label, 32))


@dataclass(frozen=True)
class LayerKeys:
    stage: Stage
    ecc: ec.EllipticCurvePrivateKey
    mldsa: mldsa.MLDSA87PrivateKey

    @property
    def role(self) -> str:
        return ROLES[self.stage.layer]


def layer_keys(cdi: bytes | bytearray, stage: Stage) -> LayerKeys:
    label = stage.name.encode()
    return LayerKeys(stage=stage, ecc=p384_key(cdi, label), mldsa=mldsa87_key(cdi, label))


def tcb_info(stage: Stage) -> der.TcbInfo:
    return der.TcbInfo(vendor=VENDOR, model=MODEL, version=stage.version, svn=stage.svn, layer=stage.layer,
                       fwids=[(der.OID_SHA384, stage.measurement)], type=stage.name.encode())


def subject(role: str, serial: str, public_key: PublicKey) -> x509.Name:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, VENDOR),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{role} {hashlib.sha256(spki).hexdigest()[:16]}"),
    ])


@dataclass(frozen=True)
class Issuer:
    name: x509.Name
    key: PrivateKey
    public_key: PublicKey


def issue(public_key: PublicKey, name: x509.Name, issuer: Issuer | None, signing_key: PrivateKey, *,
          path_length: int | None, ueid: bytes, tcb: der.TcbInfo | None) -> x509.Certificate:
    """One certificate; ``issuer`` None means self-signed. ``path_length`` None means an end-entity."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    serial = int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1 or 1
    ca = path_length is not None
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(issuer.name if issuer else name)
               .public_key(public_key).serial_number(serial)
               .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=ca, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer.public_key if issuer else public_key), critical=False)
               .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(der.OID_TCG_DICE_UEID),
                                                         der.encode_ueid(ueid)), critical=False))
    if tcb is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(der.OID_TCG_DICE_TCBINFO), tcb.encode()),
            critical=False)
    if isinstance(signing_key, ec.EllipticCurvePrivateKey):
        return builder.sign(signing_key, hashes.SHA384(), ecdsa_deterministic=True)
    return builder.sign(signing_key, None)


@dataclass(frozen=True)
class Chains:
    p384: list[x509.Certificate]      # Device ID, aliases..., attestation key
    mldsa87: list[x509.Certificate]   # Device ID, aliases...


def build_chains(layers: list[LayerKeys], attestation: ec.EllipticCurvePrivateKey, *, serial: str,
                 ueid: bytes) -> Chains:
    """Certify every layer's keys by the layer below (the Device ID layer signs itself)."""
    p384: list[x509.Certificate] = []
    pq: list[x509.Certificate] = []
    ecc_issuer: Issuer | None = None
    pq_issuer: Issuer | None = None
    depth = len(layers)
    for layer in layers:
        path_length = depth - 1 - layer.stage.layer
        tcb = tcb_info(layer.stage)
        for chain, key, prev in ((p384, layer.ecc, ecc_issuer), (pq, layer.mldsa, pq_issuer)):
            name = subject(layer.role, serial, key.public_key())
            chain.append(issue(key.public_key(), name, prev, prev.key if prev else key,
                               path_length=path_length, ueid=ueid, tcb=tcb))
        ecc_issuer = Issuer(p384[-1].subject, layer.ecc, layer.ecc.public_key())
        pq_issuer = Issuer(pq[-1].subject, layer.mldsa, layer.mldsa.public_key())
    assert ecc_issuer is not None, "a chain needs at least the Device ID layer"
    leaf_name = subject(ATTESTATION_ROLE, serial, attestation.public_key())
    p384.append(issue(attestation.public_key(), leaf_name, ecc_issuer, ecc_issuer.key,
                      path_length=None, ueid=ueid, tcb=None))
    return Chains(p384=p384, mldsa87=pq)
