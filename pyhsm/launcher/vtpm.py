"""A VM's vTPM, manufactured and provisioned by the host at VM creation (as a cloud fabric does).

``manufacture`` runs Debian's ``swtpm_setup`` (EK and platform certificates from swtpm-localca),
then starts swtpm on a private socket and, with tpm2-tools over the ``swtpm`` TCTI, creates an
attestation key under the ECC EK and makes it persistent at ``AK_HANDLE``. The guest quotes with
that handle; the host registers the EK (public key and certificate) and the AK with the HSM.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

EK_HANDLE = 0x81010016        # swtpm_setup's ECC (P-384) EK
EK_CERT_NV = 0x01C00016       # its certificate (TCG EK credential profile index)
AK_HANDLE = 0x81010003        # the attestation key the host provisions (ECDSA P-256, SHA-256)
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VtpmIdentity:
    state: Path               # swtpm state directory (what QEMU's swtpm runs on)
    ek_public_pem: bytes
    ek_cert_der: bytes
    ak_public_pem: bytes
    ak_name: bytes            # TPM name of the AK (nameAlg || digest of its public area)
    ak_handle: int = AK_HANDLE


def manufacture(state: Path, scratch: Path) -> VtpmIdentity:
    """Create a fresh vTPM in ``state`` with EK certificate and a persistent AK; ``scratch`` holds
    the provisioning socket and files. Raises ``RuntimeError`` naming the tool that failed."""
    state.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    _run(["swtpm_setup", "--tpm2", "--create-ek-cert", "--create-platform-cert", "--ecc",
          "--tpmstate", str(state.resolve()), "--overwrite", "--pcr-banks", "sha256"])
    socket = scratch.resolve() / "provision.sock"
    socket.unlink(missing_ok=True)
    swtpm = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state.resolve()}",
         "--server", f"type=unixio,path={socket}", "--ctrl", f"type=unixio,path={socket}.ctrl",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if swtpm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("swtpm (provisioning) did not start")
            time.sleep(0.02)
        env = {**os.environ, "TPM2TOOLS_TCTI": f"swtpm:path={socket}"}
        files = {name: scratch / name for name in ("ek.pem", "ekcert.der", "ak.ctx", "ak.pem",
                                                   "ak.name")}
        _run(["tpm2_readpublic", "-Q", "-c", hex(EK_HANDLE), "-f", "pem",
              "-o", str(files["ek.pem"])], env)
        _run(["tpm2_nvread", "-Q", hex(EK_CERT_NV), "-o", str(files["ekcert.der"])], env)
        _run(["tpm2_createak", "-Q", "-C", hex(EK_HANDLE), "-c", str(files["ak.ctx"]), "-G", "ecc",
              "-g", "sha256", "-s", "ecdsa", "-f", "pem", "-u", str(files["ak.pem"]),
              "-n", str(files["ak.name"])], env)
        _run(["tpm2_evictcontrol", "-Q", "-C", "o", "-c", str(files["ak.ctx"]), hex(AK_HANDLE)], env)
        _run(["tpm2_shutdown", "-Q"], env)
    finally:
        swtpm.terminate()
        swtpm.wait(10)
    return VtpmIdentity(state=state, ek_public_pem=files["ek.pem"].read_bytes(),
                        ek_cert_der=files["ekcert.der"].read_bytes(),
                        ak_public_pem=files["ak.pem"].read_bytes(),
                        ak_name=files["ak.name"].read_bytes())


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        raise RuntimeError(f"{argv[0]} is not installed (Debian packages swtpm-tools, "
                           "tpm2-tools)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-400:]}")
