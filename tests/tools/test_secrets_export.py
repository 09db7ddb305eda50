"""``pyhsm serve --secrets-out``: the backend's secrets reach a 0600 host file on SIGUSR1 and at exit
(never its log), and the scan finds them in a memory image that holds them."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import secrets_file
from pyhsm.protocol.ddi.types import EccCurve
from pyhsm.tools.inspect import scan
from pyhsm.tools.inspect.memory import PhysicalMemory

PYHSM = Path(sys.executable).parent / "pyhsm"
APP_ID = bytes.fromhex("5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e")
PIN = b"secrets-pin-0001"


def test_secrets_file_on_signal_and_exit(tmp_path: Path) -> None:
    sock, out, log = tmp_path / "hsm.sock", tmp_path / "secrets.jsonl", tmp_path / "serve.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([str(PYHSM), "serve", "--socket", str(sock), "--state",
                                 str(tmp_path / "state"), "--secrets-out", str(out)],
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        client = HsmClient(SocketTransport(sock, serial="SECRETS-0001"))
        client.establish_credential(APP_ID, PIN, client.init_bk3(bytes(range(48))),
                                    ec.generate_private_key(ec.SECP384R1()))
        client.open_session(APP_ID, PIN)
        client.ecc_generate_key_pair(EccCurve.P384)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        secrets = secrets_file.load_secrets(out)
        labels = " | ".join(s.label for s in secrets)
        for expected in ("attestation private key", "at-rest root", "partition masking key",
                         "private value"):
            assert expected in labels
        assert not any(PIN in s.value for s in secrets), "the guest's own PIN is not an HSM secret"
        out.unlink()
    finally:
        proc.terminate()
        proc.wait(20)
    assert out.exists(), "no secrets file written at exit"
    written = [json.loads(line)["hex"] for line in out.read_text().splitlines()]
    log_text = log.read_text()
    assert written and not any(h in log_text or h[:32] in log_text for h in written)
    assert PIN.decode() not in log_text


def test_scan_finds_planted_secrets_in_raw_and_elf_images(tmp_path: Path) -> None:
    secret = os.urandom(32)
    raw = bytearray(8 << 20)
    raw[0x123450:0x123450 + 32] = secret
    image = tmp_path / "ram.raw"
    image.write_bytes(raw)
    with PhysicalMemory(image) as memory:
        hits = scan.scan(memory, [secrets_file.Secret("planted", secret), secrets_file.Secret("absent", os.urandom(32))])
        assert [(h.label, h.phys) for h in hits] == [("planted", 0x123450)]
        assert memory.read(0x123450, 32) == secret
    core = tmp_path / "ram.elf"
    core.write_bytes(_elf_core(bytes(raw), paddr=0x100000))
    with PhysicalMemory(core) as memory:
        assert [h.phys for h in scan.scan(memory, [secrets_file.Secret("planted", secret)])] == [0x223450]


def test_short_or_malformed_secret_lines_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"label": "x", "hex": "0011"}\n')
    try:
        secrets_file.load_secrets(bad)
    except ValueError as exc:
        assert "shorter" in str(exc)
    else:
        raise AssertionError("a 2-byte secret was accepted")
    bad.write_text("not json\n")
    try:
        secrets_file.load_secrets(bad)
    except ValueError as exc:
        assert "s.jsonl:1" in str(exc)
    else:
        raise AssertionError("a malformed line was accepted")


def _elf_core(memory: bytes, paddr: int) -> bytes:
    """A minimal ELF64 core with one PT_LOAD segment (what dump-guest-memory writes, simplified)."""
    import struct
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 4, 62, 1, 0, 64, 0,
                       0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 6, 4096, 0, paddr, len(memory), len(memory), 0)
    return (ehdr + phdr).ljust(4096, b"\0") + memory
