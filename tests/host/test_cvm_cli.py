"""The owner tooling (``pyhsm cvm ...``) against the real link server over its UNIX socket, with a real
swtpm: owner key, vTPM provisioning, registration, a policy from predicted PCR values, then a release."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from pyhsm.client import HsmClient, cvm_evidence
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.host.confidential import owner_commands as commands
from pyhsm.host.swtpm import Swtpm, missing_tools
from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT, Recipient, Wrapped
from pyhsm.protocol.ddi.types import AesKeySize
from tests.backend.ddi import ddi_backend
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, provision

SERIAL = "AZIHSM-CVM-CLI-1"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["cvm", *argv])
    return int(args.func(args))


@pytest.fixture
def socket_path(tmp_path: Path):
    path = tmp_path / "hsm.sock"
    proc = ddi_backend.start(path, tmp_path / "state")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield path
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(bool(missing_tools()), reason=f"missing tools: {', '.join(missing_tools())}")
def test_owner_tooling_end_to_end(socket_path: Path, tmp_path: Path, capsys) -> None:
    client = HsmClient(SocketTransport(socket_path, SERIAL))
    provision(client, None)   # type: ignore[arg-type]
    client.aes_generate_key(AesKeySize.Aes256, tag=0x77)
    client.transport.close()   # the backend serves one connection per device partition (as a VM's device)
    creds = ["--socket", str(socket_path), "--serial", SERIAL, "--app-id", APP_ID.hex(), "--pin", PIN.hex()]
    owner_pem = tmp_path / "owner.pem"
    assert cli("owner-key", "--out", str(owner_pem)) == 0
    assert owner_pem.stat().st_mode & 0o077 == 0
    assert cli("set-owner", *creds, "--owner", str(owner_pem)) == 0
    assert cli("set-owner", *creds, "--owner", str(owner_pem)) == 1     # only once
    assert "CvmOwnerAlreadySet" in capsys.readouterr().err
    assert cli("provision-vtpm", "--state", str(tmp_path / "vtpm"), "--out-dir", str(tmp_path / "reg")) == 0
    assert cli("register-vm", *creds, "--owner", str(owner_pem), "--vm-id", "vm-1",
               "--ek", str(tmp_path / "reg" / "ek.pub"), "--ak", str(tmp_path / "reg" / "ak.pub")) == 0

    kernel = tmp_path / "kernel.img"
    kernel.write_bytes(b"kernel image bytes")
    capsys.readouterr()
    assert cli("predict-pcr", "--file", str(kernel)) == 0
    predicted = capsys.readouterr().out.strip()
    with Swtpm(tmp_path / "vtpm") as vtpm:
        zero = vtpm.pcr_values([0]).hex()
        assert cli("set-policy", *creds, "--owner", str(owner_pem), "--workload", "app", "--pcrs", "0,9",
                   "--value", f"0={zero}", "--value", f"9={predicted}", "--key-tag", "0x77") == 0
        vtpm.extend(9, hashlib.sha256(kernel.read_bytes()).digest())   # the boot measures the kernel
        client = HsmClient(SocketTransport(socket_path, SERIAL))
        client.open_session(APP_ID, PIN)
        nonce = client.cvm_get_nonce(b"vm-1")
        evidence = cvm_evidence(b"vm-1", *vtpm.quote(nonce, [0, 9]))
    recipient = Recipient()
    w = client.cvm_release_key(evidence, b"app", recipient.kem_pub, recipient.ecdh_pub).wrapped
    assert len(recipient.unwrap(Wrapped(w.kem_ct, w.ecdh_pub, w.ciphertext), RELEASE_CONTEXT + b"app")) == 32
    client.transport.close()
    signed = tmp_path / "policy.cmd"   # signed offline, relayable by anyone (here: the submit command)
    assert cli("set-policy", "--owner", str(owner_pem), "--workload", "app2", "--pcrs", "0", "--value",
               f"0={zero}", "--emit", str(signed), "--seq", "3") == 0
    assert cli("submit", *creds, "--command", str(signed)) == 0
    capsys.readouterr()
    assert cli("submit", *creds, "--command", str(signed)) == 1
    assert "CvmOwnerSequenceReplayed" in capsys.readouterr().err
    assert cli("info", *creds) == 0
    assert "owner_set=True last_seq=3 vms=1 policies=2" in capsys.readouterr().out
