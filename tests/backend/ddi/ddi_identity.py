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

from pyhsm.backend.identity import MonotonicCounters
from pyhsm.backend.privfile import write_atomic


class TestIdentity:
    __test__ = False

    def __init__(self, serial: str = "TEST-0001", seed: bytes = b"test-seed", *,
                 nv_file: Path | None = None, chain_length: int = 1) -> None:
        """``chain_length`` certificates: a self-signed root first, each next one issued by the one
        before, the last certifying the attestation key (a Physical device's chain has at least 2)."""
        self.serial = serial
        self.counters = _counters(nv_file)
        self._seed = hashlib.sha256(seed + serial.encode()).digest()
        keys = [self._derived_key(b"attest" if i == chain_length - 1 else b"ca%d" % i) for i in range(chain_length)]
        self._key = keys[-1]
        start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
        names = [x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test {role} {serial}")])
                 for role in [f"ca {i}" for i in range(chain_length - 1)] + ["attestation"]]
        self._chain = []
        for i, key in enumerate(keys):
            issuer = max(i - 1, 0)
            cert = (x509.CertificateBuilder().subject_name(names[i]).issuer_name(names[issuer])
                    .public_key(key.public_key()).serial_number(i + 1)
                    .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(keys[issuer], hashes.SHA384()))
            self._chain.append(cert.public_bytes(serialization.Encoding.DER))

    def _derived_key(self, label: bytes) -> ec.EllipticCurvePrivateKey:
        scalar = int.from_bytes(hashlib.sha384(self._seed + label).digest(), "big") % (2 ** 383)
        return ec.derive_private_key(scalar + 1, ec.SECP384R1())

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
