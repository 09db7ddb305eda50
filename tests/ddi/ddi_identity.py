"""A small device identity for tests: a self-signed P-384 certificate and at-rest keys from a seed.

The same seed gives the same identity, so a backend restarted with it can read its old state. Its
monotonic counters are the real ``MonotonicCounters``, kept in memory (one object lives as long as the
identity) or, with ``nv_file``, in a JSON file (a restarted process finds them there).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyhsm.identity import MonotonicCounters
from pyhsm.privfile import write_atomic


class TestIdentity:
    __test__ = False

    def __init__(self, serial: str = "TEST-0001", seed: bytes = b"test-seed", *,
                 nv_file: Path | None = None) -> None:
        self.serial = serial
        self.counters = _counters(nv_file)
        self._seed = hashlib.sha256(seed + serial.encode()).digest()
        scalar = int.from_bytes(hashlib.sha384(self._seed + b"attest").digest(), "big") % (2 ** 383)
        self._key = ec.derive_private_key(scalar + 1, ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test attestation {serial}")])
        start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(1)
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA384()))
        self._chain = [cert.public_bytes(serialization.Encoding.DER)]

    def at_rest_key(self, label: bytes) -> bytes:
        return hmac.new(self._seed, b"at-rest:" + label, hashlib.sha256).digest()

    def certificate_chain(self) -> Sequence[bytes]:
        return list(self._chain)

    def attestation_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key


def _counters(nv_file: Path | None) -> MonotonicCounters:
    if nv_file is None:
        return MonotonicCounters({}, lambda values: None)
    values = json.loads(nv_file.read_text()) if nv_file.exists() else {}
    return MonotonicCounters(values, lambda new: write_atomic(nv_file, json.dumps(new).encode()))
