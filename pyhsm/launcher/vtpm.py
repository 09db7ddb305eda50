"""A vTPM manufactured and provisioned by the host at VM creation (as a cloud fabric does).

``manufacture`` runs Debian's ``swtpm_setup`` (ECC EK with a certificate from swtpm-localca, platform
certificate), then, with tpm2-tools over the ``swtpm`` TCTI on a private socket, creates a restricted
ECDSA attestation key under the EK and makes it persistent at ``AK_HANDLE`` (docs/vendor-ops.md).
The guest quotes with that handle; the host registers the EK and the AK with the HSM. ``tpm2_tools``
points tpm2-tools at a vTPM from the host (the fabric's own vTPM, which never runs a guest).
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import serialization

EK_HANDLE = 0x81010016        # swtpm_setup's ECC (P-384) EK
EK_CERT_NV = 0x01C00016       # its certificate (TCG EK credential profile index)
AK_HANDLE = 0x81010002        # the attestation key the host provisions (vendor-ops.md)
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VtpmIdentity:
    state: Path               # swtpm state directory (what the VM's swtpm runs on)
    ek_cert_der: bytes
    ek_public: bytes          # TPM2B_PUBLIC of the EK, as tpm2_readpublic -o writes it
    ak_public: bytes          # TPM2B_PUBLIC, as tpm2_createak -u writes it
    ak_name: bytes            # TPM name of the AK (nameAlg || digest of its public area)

    @property
    def ek_spki_der(self) -> bytes:
        """The EK public key (SubjectPublicKeyInfo DER) from its certificate."""
        return x509.load_der_x509_certificate(self.ek_cert_der).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def manufacture(state: Path, scratch: Path) -> VtpmIdentity:
    """Create a fresh vTPM in ``state`` with an EK certificate and a persistent AK; ``scratch`` holds
    the provisioning socket and files. Raises ``RuntimeError`` naming the tool that failed."""
    state.mkdir(parents=True, exist_ok=True)
    _run(["swtpm_setup", "--tpm2", "--create-ek-cert", "--create-platform-cert", "--ecc",
          "--tpmstate", str(state.resolve()), "--overwrite", "--pcr-banks", "sha256"])
    with tpm2_tools(state, scratch) as env:
        files = {name: scratch / name for name in ("ekcert.der", "ek.pub", "ak.ctx", "ak.pub",
                                                   "ak.name")}
        _run(["tpm2_nvread", "-Q", hex(EK_CERT_NV), "-o", str(files["ekcert.der"])], env)
        _run(["tpm2_readpublic", "-Q", "-c", hex(EK_HANDLE), "-o", str(files["ek.pub"])], env)
        _run(["tpm2_createak", "-Q", "-C", hex(EK_HANDLE), "-c", str(files["ak.ctx"]), "-G", "ecc",
              "-g", "sha256", "-s", "ecdsa", "-u", str(files["ak.pub"]),
              "-n", str(files["ak.name"])], env)
        _run(["tpm2_evictcontrol", "-Q", "-C", "o", "-c", str(files["ak.ctx"]), hex(AK_HANDLE)],
             env)
    return VtpmIdentity(state=state, ek_cert_der=files["ekcert.der"].read_bytes(),
                        ek_public=files["ek.pub"].read_bytes(),
                        ak_public=files["ak.pub"].read_bytes(),
                        ak_name=files["ak.name"].read_bytes())


@contextmanager
def tpm2_tools(state: Path, scratch: Path) -> Iterator[dict[str, str]]:
    """swtpm on ``state`` (started up, then shut down cleanly); yields the environment that points
    tpm2-tools at it."""
    scratch.mkdir(parents=True, exist_ok=True)
    socket = scratch.resolve() / "swtpm.sock"
    socket.unlink(missing_ok=True)
    swtpm = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state.resolve()}",
         "--server", f"type=unixio,path={socket}", "--ctrl", f"type=unixio,path={socket}.ctrl",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if swtpm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"swtpm on {state} did not start")
            time.sleep(0.02)
        env = {**os.environ, "TPM2TOOLS_TCTI": f"swtpm:path={socket}"}
        yield env
        _run(["tpm2_shutdown", "-Q"], env)
    finally:
        swtpm.terminate()
        swtpm.wait(10)


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        raise RuntimeError(f"{argv[0]} is not installed (Debian packages swtpm-tools, "
                           "tpm2-tools)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-400:]}")
