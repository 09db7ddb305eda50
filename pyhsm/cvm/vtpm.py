"""A vTPM driven from the host: Debian's swtpm (manufactured by swtpm_setup, with EK certificates) and
tpm2-tools over the swtpm TCTI. The fabric uses it at VM creation (EK public key, a persistent AK the
guest quotes with, registration material); tests use it to produce real quotes without a guest."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyhsm.cvm.tpm2 import parse_public

AK_HANDLE = 0x81010002
EK_CERT_NV = {"rsa": 0x01C00002, "ecc": 0x01C0000A}
TOOLS = ("swtpm", "swtpm_setup", "tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_pcrread")


class VtpmError(RuntimeError):
    """swtpm or a tpm2-tools command failed; the message carries its stderr."""


def missing_tools() -> list[str]:
    """The tools this module needs that are not on PATH (Debian: swtpm swtpm-tools tpm2-tools)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65535:
            with socket.socket() as a, socket.socket() as b:
                try:
                    a.bind(("127.0.0.1", port))
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise VtpmError("no free TCP port pair for swtpm")


class Vtpm:
    """One swtpm instance with its state in ``state_dir``; use as a context manager."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Vtpm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def manufacture(self) -> None:
        """swtpm_setup: fresh TPM 2.0 state with EK certificates signed by swtpm's local CA."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._run(["swtpm_setup", "--tpm2", "--tpmstate", str(self.state_dir), "--create-ek-cert",
                   "--create-platform-cert", "--overwrite"], tcti=False)

    def start(self) -> None:
        if not (self.state_dir / "tpm2-00.permall").exists():
            self.manufacture()
        self.port = _free_port_pair()
        self._process = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1", "--tpmstate",
             f"dir={self.state_dir}", "--flags", "startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise VtpmError(f"swtpm exited: {self._process.stderr.read().decode() if self._process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise VtpmError("swtpm did not start listening")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def _run(self, argv: list[str], *, tcti: bool = True) -> bytes:
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tcti) if tcti else None
        done = subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=self.state_dir)
        if done.returncode:
            raise VtpmError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode().strip()}")
        return done.stdout

    def _file(self, name: str) -> Path:
        return self.state_dir / name

    def ek_certificate(self, kind: str = "rsa") -> x509.Certificate:
        """The EK certificate swtpm_setup stored in NV (signed by swtpm's local CA)."""
        self._run(["tpm2_nvread", "-o", "ek-cert.der", f"0x{EK_CERT_NV[kind]:08x}"])
        return x509.load_der_x509_certificate(self._file("ek-cert.der").read_bytes())

    def ek_public(self) -> bytes:
        """The RSA EK's TPM2B_PUBLIC (what the HSM registers), checked against the EK certificate's key."""
        ek_public = self._file("ek.pub").read_bytes()
        spki = parse_public(ek_public).key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        certified = self.ek_certificate("rsa").public_key().public_bytes(Encoding.DER,
                                                                         PublicFormat.SubjectPublicKeyInfo)
        if spki != certified:
            raise VtpmError("the EK does not match the EK certificate")
        return ek_public

    def create_ak(self, kind: str = "ecc") -> bytes:
        """Create the RSA EK and a restricted signing AK under it, persist the AK at ``AK_HANDLE``;
        returns the AK's TPM2B_PUBLIC (``ek_public()`` then gives the EK's).
        ``kind``: "ecc" (P-256, ECDSA/SHA-256) or "rsa" (2048, RSASSA/SHA-256)."""
        scheme = {"ecc": "ecdsa", "rsa": "rsassa"}[kind]
        if self._has_ak():
            self._run(["tpm2_evictcontrol", "-C", "o", "-c", f"0x{AK_HANDLE:08x}"])
        # swtpm holds only a few transient objects: flush them between the tools' steps
        self._run(["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"])
        self._run(["tpm2_flushcontext", "-t"])
        self._run(["tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", kind, "-g", "sha256", "-s", scheme,
                   "-u", "ak.pub", "-n", "ak.name"])
        self._run(["tpm2_flushcontext", "-t"])
        self._run(["tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", f"0x{AK_HANDLE:08x}"])
        self._run(["tpm2_flushcontext", "-t"])
        return self._file("ak.pub").read_bytes()

    def _has_ak(self) -> bool:
        return f"0x{AK_HANDLE:x}".lower() in self._run(["tpm2_getcap", "handles-persistent"]).decode().lower()

    def extend(self, pcr: int, digest: bytes, bank: str = "sha256") -> None:
        self._run(["tpm2_pcrextend", f"{pcr}:{bank}={digest.hex()}"])

    def pcr_values(self, pcrs: list[int], bank: str = "sha256") -> bytes:
        """The concatenated values, in ascending PCR order (``tpm2_pcrread -o``)."""
        self._run(["tpm2_pcrread", f"{bank}:{','.join(map(str, sorted(pcrs)))}", "-o", "pcrs.bin"])
        return self._file("pcrs.bin").read_bytes()

    def quote(self, nonce: bytes, pcrs: list[int], bank: str = "sha256") -> tuple[bytes, bytes, bytes]:
        """(TPMS_ATTEST, TPMT_SIGNATURE, PCR values) of a quote by the persistent AK over ``pcrs``."""
        selection = f"{bank}:{','.join(map(str, sorted(pcrs)))}"
        self._run(["tpm2_quote", "-c", f"0x{AK_HANDLE:08x}", "-l", selection, "-q", nonce.hex(), "-m",
                   "attest.bin", "-s", "sig.bin", "-o", "pcrs.bin", "-g", "sha256"])
        return (self._file("attest.bin").read_bytes(), self._file("sig.bin").read_bytes(),
                self.pcr_values(pcrs, bank))
