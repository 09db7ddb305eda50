"""End to end through ``pyhsm serve`` (real link server, real PUF/DICE identity): a key created before
a SIGKILL is usable after the restart, and its attestation report verifies against the chain's leaf."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol.ddi.types import EccCurve
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN

PYHSM = Path(sys.executable).parent / "pyhsm"


def serve(socket_path: Path, state: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(PYHSM), "--log-level", "warning", "serve", "--socket", str(socket_path),
                             "--state", str(state)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("ready"), "pyhsm serve did not start"
    return proc


def test_key_survives_kill_and_attests_with_the_device_chain(tmp_path: Path) -> None:
    sock, state = tmp_path / "hsm.sock", tmp_path / "state"
    proc = serve(sock, state)
    try:
        c = HsmClient(SocketTransport(sock, serial="E2E-0001"))
        c.establish_credential(APP_ID, PIN, c.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
        c.open_session(APP_ID, PIN)
        key = c.ecc_generate_key_pair(EccCurve.P384, tag=0x0E2E)
    finally:
        proc.kill()
        proc.wait(10)
    proc = serve(sock, state)
    try:
        c = HsmClient(SocketTransport(sock, serial="E2E-0001"))
        c.open_session(APP_ID, PIN)
        key_id = c.open_key(0x0E2E).key_id
        assert key_id == key.private_key_id
        report = cbor2.loads(c.attest_key(key_id, b"nonce"))
        protected, _, payload, signature = report.value
        count = c.get_cert_chain_info().num_certs
        leaf = x509.load_der_x509_certificate(c.get_certificate(count - 1))
        der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
        leaf.public_key().verify(der, cbor2.dumps(["Signature1", protected, b"", payload]),
                                 ec.ECDSA(hashes.SHA384()))
        assert cbor2.loads(payload)[5].startswith(b"nonce")
    finally:
        proc.kill()
        proc.wait(10)
