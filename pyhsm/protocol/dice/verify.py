"""Verification of a device's certificate chain and of a key attestation report (docs/ddi.md, "Attestation report").

Chain rules: the first certificate is self-signed (the Device ID, the trust anchor); each later one is
signed by its predecessor with matching issuer name; every certificate but the last is a CA whose path
length covers the CAs below it; all share one UEID; TcbInfo layers count up from 0. With reference
firmware images the FWID of every layer must equal the image's SHA-384.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.crypto import cbor, cose
from pyhsm.protocol.dice import der
from pyhsm.protocol.dice.firmware import Stage

REPORT_PUBLIC_KEY_FIELD = 525


class VerificationError(Exception):
    """The chain or report does not verify; the message says which check failed."""


@dataclass(frozen=True)
class ChainLink:
    subject: str
    tcb: der.TcbInfo | None


@dataclass(frozen=True)
class VerifiedChain:
    links: list[ChainLink]
    ueid: bytes
    leaf_public_key: object


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in PEM text (any number) or one DER certificate."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise VerificationError(f"not a certificate: {e}") from None


def verify_chain(certs: Sequence[x509.Certificate], firmware: Sequence[Stage] | None = None) -> VerifiedChain:
    if len(certs) < 2:
        raise VerificationError("a device chain has at least a Device ID and one more certificate")
    links = []
    ueids = set()
    for i, cert in enumerate(certs):
        issuer = certs[i - 1] if i else cert
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise VerificationError(f"certificate {i} ({cert.subject.rfc4514_string()}) is not signed by "
                                    f"certificate {max(i - 1, 0)}: {e or 'bad signature'}") from None
        constraints = _extension(cert, x509.BasicConstraints)
        cas_below = len(certs) - 2 - i
        if i < len(certs) - 1:
            if constraints is None or not constraints.ca:
                raise VerificationError(f"certificate {i} issues certificate {i + 1} but is not a CA")
            if constraints.path_length is not None and constraints.path_length < cas_below:
                raise VerificationError(f"certificate {i}: path length {constraints.path_length} "
                                        f"is exceeded by {cas_below} CAs below it")
        ueid_ext = _unrecognized(cert, der.OID_TCG_DICE_UEID)
        if ueid_ext is None:
            raise VerificationError(f"certificate {i} has no TCG UEID extension")
        ueids.add(der.decode_ueid(ueid_ext))
        tcb_ext = _unrecognized(cert, der.OID_TCG_DICE_TCBINFO)
        tcb = der.TcbInfo.decode(tcb_ext) if tcb_ext is not None else None
        links.append(ChainLink(cert.subject.rfc4514_string(), tcb))
    if len(ueids) != 1:
        raise VerificationError("certificates carry different UEIDs")
    _check_layers(links, firmware)
    return VerifiedChain(links=links, ueid=ueids.pop(), leaf_public_key=certs[-1].public_key())


def _check_layers(links: list[ChainLink], firmware: Sequence[Stage] | None) -> None:
    tcbs = [link.tcb for link in links if link.tcb is not None]
    if [t.layer for t in tcbs] != list(range(len(tcbs))) or not tcbs:
        raise VerificationError(f"TcbInfo layers are {[t.layer for t in tcbs]}, expected 0, 1, ... in order")
    if firmware is None:
        return
    if len(firmware) != len(tcbs):
        raise VerificationError(f"chain has {len(tcbs)} measured layers, reference firmware has {len(firmware)}")
    for tcb, stage in zip(tcbs, firmware):
        digests = [d for oid, d in tcb.fwids if oid == der.OID_SHA384]
        if digests != [stage.measurement]:
            raise VerificationError(f"layer {tcb.layer} ({tcb.type.decode(errors='replace')}): FWID does not "
                                    f"match the reference image of stage {stage.name}")
        if (tcb.version, tcb.svn) != (stage.version, stage.svn):
            raise VerificationError(f"layer {tcb.layer}: version/SVN {tcb.version}/{tcb.svn} differ from the "
                                    f"reference {stage.version}/{stage.svn}")


ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[ExtensionT]) -> ExtensionT | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _unrecognized(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        extension = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    except x509.ExtensionNotFound:
        return None
    return extension.value if isinstance(extension, x509.UnrecognizedExtension) else None


@dataclass(frozen=True)
class AttestationReport:
    version: int
    public_key: bytes        # the COSE_Key of the attested key
    flags: int
    app_uuid: bytes
    report_data: bytes
    vm_launch_id: bytes


def verify_report(report: bytes, signer: ec.EllipticCurvePublicKey) -> AttestationReport:
    """Check a tagged COSE_Sign1 (ES384) key attestation report against the chain's leaf key."""
    try:
        fields = cbor.decode(cose.verify1(report, signer))
    except (cose.CoseError, cbor.CborError) as e:
        raise VerificationError(f"report: {e}") from None
    if not isinstance(fields, dict):
        raise VerificationError("report payload is not a map")
    expected = {0: int, 1: bytes, 2: int, 3: int, 4: bytes, 5: bytes, 6: bytes}
    for key, kind in expected.items():
        if not isinstance(fields.get(key), kind) or isinstance(fields.get(key), bool):
            raise VerificationError(f"report payload field {key} is missing or not {kind.__name__}")
    sizes = {1: REPORT_PUBLIC_KEY_FIELD, 4: 16, 5: 128, 6: 16}
    for key, size in sizes.items():
        if len(fields[key]) != size:
            raise VerificationError(f"report payload field {key} is {len(fields[key])} bytes, expected {size}")
    if fields[2] > REPORT_PUBLIC_KEY_FIELD:
        raise VerificationError("report public-key size exceeds its field")
    return AttestationReport(version=fields[0], public_key=fields[1][:fields[2]], flags=fields[3],
                             app_uuid=fields[4], report_data=fields[5], vm_launch_id=fields[6])


def device_chain_files(path: Path) -> list[Path]:
    """The chain files of a device directory, or of the only device in a state directory."""
    dirs = [path] if (path / "chain.pem").is_file() else sorted(p.parent for p in path.glob("devices/*/chain.pem"))
    if len(dirs) != 1:
        raise VerificationError(f"{path}: expected one device with a chain.pem, found {len(dirs)}")
    return [f for f in (dirs[0] / "chain.pem", dirs[0] / "chain-mldsa87.pem") if f.is_file()]
