"""vTPMs on the host: Debian's swtpm (manufactured by swtpm_setup with EK certificates from
swtpm-localca) and tpm2-tools over the swtpm TCTI (docs/vendor-ops.md, docs/confidential.md).

``manufacture`` makes a TPM 2.0 state; ``Swtpm`` runs one, either for a VM (QEMU's tpm-crb on the
control channel) or for tpm2-tools on the host (``run``, ``env``), with the recipes the fabric and
the tests need: a persistent attestation key at ``AK_HANDLE``, the EK's public area and certificate,
PCR extend and read, quotes. ``provision`` is what the fabric does at VM creation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyhsm.host.sockets import wait_listening
from pyhsm.protocol.cvm.tpm2 import AK_HANDLE, EK_CERT_NV, parse_public

EK_HANDLE = 0x81010016        # swtpm_setup's ECC (P-384) EK, persistent
AK_SCHEMES = {"ecc": "ecdsa", "rsa": "rsassa"}
START_TIMEOUT_S = 10.0
TOOLS = ("swtpm", "swtpm_setup", "tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_pcrread")


class SwtpmError(RuntimeError):
    """swtpm, swtpm_setup or a tpm2-tools command failed; the message names it and carries its stderr."""


def missing_tools() -> list[str]:
    """The tools this module needs that are not on PATH (Debian: swtpm swtpm-tools tpm2-tools)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> bytes:
    """Run one tool; its stdout. Raises ``SwtpmError`` naming the tool that is missing or failed."""
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise SwtpmError(f"{argv[0]} is not installed (Debian packages swtpm, swtpm-tools, "
                         "tpm2-tools)") from None
    if done.returncode:
        err = (done.stderr or done.stdout).decode(errors="replace").strip()[-400:]
        raise SwtpmError(f"{argv[0]} failed (exit {done.returncode}): {err}")
    return done.stdout


def manufacture(state: Path) -> None:
    """A fresh TPM 2.0 in ``state`` (overwriting one there): EK certificates (RSA 2048 and ECC
    P-384) signed by swtpm's local CA, a platform certificate, the SHA-256 PCR bank."""
    state.mkdir(parents=True, exist_ok=True)
    run(["swtpm_setup", "--tpm2", "--create-ek-cert", "--create-platform-cert", "--ecc",
         "--tpmstate", str(state.resolve()), "--overwrite", "--pcr-banks", "sha256"])


def is_manufactured(state: Path) -> bool:
    """True once ``state`` holds a TPM's permanent state."""
    return (state / "tpm2-00.permall").exists()


class Swtpm:
    """swtpm on ``state``; use as a context manager (or ``start``/``stop``).

    With ``ctrl_socket``: for a VM. QEMU's tpm-crb connects to the control channel, swtpm exits
    with that connection, its log goes to ``log``. Without: for tpm2-tools on the host. The state
    is manufactured first if it has never been, data and control sockets sit in a private
    directory, TPM2_Startup is done; leaving the context without an error shuts the TPM down in
    order (``tpm2_shutdown``)."""

    def __init__(self, state: Path, *, ctrl_socket: Path | None = None, log: Path | None = None) -> None:
        self.state = state
        self.socket = ctrl_socket
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._work: Path | None = None      # tools mode: sockets and the tools' output files

    def __enter__(self) -> Swtpm:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None and self._work is not None:
                self.run(["tpm2_shutdown", "-Q"])
        finally:
            self.stop()

    def start(self) -> None:
        """Start swtpm and wait until its socket listens; raises ``SwtpmError`` naming what failed."""
        if self.socket is not None:
            self.state.mkdir(parents=True, exist_ok=True)
            self.socket.unlink(missing_ok=True)
            ready = self.socket
            argv = ["--ctrl", f"type=unixio,path={self.socket}", "--terminate"]
            if self.log is not None:
                argv += ["--log", f"file={self.log},level=1"]
        else:
            if not is_manufactured(self.state):
                manufacture(self.state)
            self._work = Path(tempfile.mkdtemp(prefix="swtpm-", dir="/tmp"))   # short socket paths
            ready = self._work / "swtpm.sock"
            argv = ["--server", f"type=unixio,path={ready}", "--ctrl",
                    f"type=unixio,path={ready}.ctrl", "--flags", "not-need-init,startup-clear"]
        try:
            self._proc = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state.resolve()}", *argv],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError:
            self.stop()
            raise SwtpmError("swtpm is not installed (Debian package swtpm)") from None
        if not wait_listening(ready, self._proc, START_TIMEOUT_S):
            self.stop()
            raise SwtpmError(f"swtpm on {self.state} did not start: {self._stderr()}")

    def _stderr(self) -> str:
        if self._proc is None or self._proc.stderr is None or self._proc.poll() is None:
            return "(still running)"
        return self._proc.stderr.read().decode(errors="replace").strip()

    def stop(self) -> None:
        """Terminate swtpm (if running) and remove the private directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    # -- tpm2-tools (host mode) ------------------------------------------------------------------

    @property
    def tcti(self) -> str:
        """``TPM2TOOLS_TCTI`` for this TPM (host mode, started)."""
        assert self._work is not None, "not started for tpm2-tools"
        return f"swtpm:path={self._work / 'swtpm.sock'}"

    @property
    def env(self) -> dict[str, str]:
        """The process environment that points tpm2-tools at this TPM."""
        return {**os.environ, "TPM2TOOLS_TCTI": self.tcti}

    def run(self, argv: list[str]) -> bytes:
        """A tpm2-tools command against this TPM, relative file names in the private directory."""
        return run(argv, self.env, self._work)

    def file(self, name: str) -> bytes:
        """A file a tool wrote in the private directory."""
        assert self._work is not None, "not started for tpm2-tools"
        return (self._work / name).read_bytes()

    def ek_certificate_der(self, kind: str = "rsa") -> bytes:
        """The EK certificate swtpm_setup stored in NV (``kind``: "rsa" or "ecc")."""
        self.run(["tpm2_nvread", "-Q", hex(EK_CERT_NV[kind]), "-o", "ek-cert.der"])
        return self.file("ek-cert.der")

    def ek_public(self, kind: str = "rsa") -> bytes:
        """The EK's TPM2B_PUBLIC (what the HSM registers), checked against its certificate: the
        RSA EK from its template, or the persistent ECC EK at ``EK_HANDLE``."""
        if kind == "rsa":
            self.run(["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"])
            self.run(["tpm2_flushcontext", "-t"])
        else:
            self.run(["tpm2_readpublic", "-Q", "-c", hex(EK_HANDLE), "-o", "ek.pub"])
        public = self.file("ek.pub")
        spki = parse_public(public).key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        certificate = x509.load_der_x509_certificate(self.ek_certificate_der(kind))
        certified = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if spki != certified:
            raise SwtpmError("the EK does not match the EK certificate")
        return public

    def create_ak(self, kind: str = "ecc", ek: str = "rsa") -> bytes:
        """A restricted signing AK under the ``ek`` EK ("rsa": created from its template; "ecc":
        the persistent one), made persistent at ``AK_HANDLE`` (replacing one there); returns its
        TPM2B_PUBLIC (its name in ``file("ak.name")``). ``kind``: "ecc" (P-256, ECDSA/SHA-256) or
        "rsa" (2048, RSASSA/SHA-256)."""
        if f"0x{AK_HANDLE:x}" in self.run(["tpm2_getcap", "handles-persistent"]).decode().lower():
            self.run(["tpm2_evictcontrol", "-C", "o", "-c", hex(AK_HANDLE)])
        parent = hex(EK_HANDLE)
        if ek == "rsa":   # swtpm holds only a few transient objects: flush between the steps
            self.run(["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"])
            self.run(["tpm2_flushcontext", "-t"])
            parent = "ek.ctx"
        self.run(["tpm2_createak", "-C", parent, "-c", "ak.ctx", "-G", kind, "-g", "sha256",
                  "-s", AK_SCHEMES[kind], "-u", "ak.pub", "-n", "ak.name"])
        self.run(["tpm2_flushcontext", "-t"])
        self.run(["tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", hex(AK_HANDLE)])
        self.run(["tpm2_flushcontext", "-t"])
        return self.file("ak.pub")

    def extend(self, pcr: int, digest: bytes, bank: str = "sha256") -> None:
        self.run(["tpm2_pcrextend", f"{pcr}:{bank}={digest.hex()}"])

    def pcr_values(self, pcrs: list[int], bank: str = "sha256") -> bytes:
        """The concatenated values, in ascending PCR order (``tpm2_pcrread -o``)."""
        self.run(["tpm2_pcrread", f"{bank}:{','.join(map(str, sorted(pcrs)))}", "-o", "pcrs.bin"])
        return self.file("pcrs.bin")

    def quote(self, nonce: bytes, pcrs: list[int], bank: str = "sha256") -> tuple[bytes, bytes, bytes]:
        """(TPMS_ATTEST, TPMT_SIGNATURE, PCR values) of a quote by the persistent AK over ``pcrs``."""
        selection = f"{bank}:{','.join(map(str, sorted(pcrs)))}"
        self.run(["tpm2_quote", "-c", hex(AK_HANDLE), "-l", selection, "-q", nonce.hex(), "-m",
                  "attest.bin", "-s", "sig.bin", "-o", "pcrs.bin", "-g", "sha256"])
        return self.file("attest.bin"), self.file("sig.bin"), self.pcr_values(pcrs, bank)


@dataclass(frozen=True)
class VtpmIdentity:
    """What the fabric registers with the HSM for a VM's vTPM."""

    state: Path               # swtpm state directory (what the VM's swtpm runs on)
    ek_cert_der: bytes        # the ECC EK's certificate
    ek_public: bytes          # TPM2B_PUBLIC of the EK
    ak_public: bytes          # TPM2B_PUBLIC of the AK
    ak_name: bytes            # TPM name of the AK (nameAlg || digest of its public area)

    @property
    def ek_spki_der(self) -> bytes:
        """The EK public key (SubjectPublicKeyInfo DER) from its certificate."""
        return x509.load_der_x509_certificate(self.ek_cert_der).public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def provision(state: Path) -> VtpmIdentity:
    """A fresh vTPM in ``state`` as a cloud fabric makes one at VM creation: manufactured, with an
    ECDSA AK under the ECC EK persistent at ``AK_HANDLE`` (the guest quotes with it)."""
    manufacture(state)
    with Swtpm(state) as tpm:
        ak_public = tpm.create_ak("ecc", ek="ecc")
        ak_name = tpm.file("ak.name")
        return VtpmIdentity(state=state, ek_cert_der=tpm.ek_certificate_der("ecc"),
                            ek_public=tpm.ek_public("ecc"), ak_public=ak_public, ak_name=ak_name)
