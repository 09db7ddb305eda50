"""Attestation and key release as the guest agent does them (also used by the host's fabric).

The vTPM side sends TPM 2.0 commands itself (NV_Read, Quote, PCR_Read, PCR_Extend; to the kernel's
resource manager in the guest, or to a host swtpm named by ``TPM2TOOLS_TCTI``), as tpm2-tools would
but without a process per command; ``tpm2`` still runs a tpm2-tools command. The HSM side goes
through ``HsmClient``'s ``cvm_*`` methods (the vendor ops of docs/vendor-ops.md). ``vm_id_for``
derives a VM's id from its EK, so guest and host name the VM the same way without passing it around.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyhsm.protocol.cvm.tpm2 import AK_HANDLE, EK_CERT_NV
from pyhsm.protocol.cvm.wrap import RELEASE_CONTEXT

EK_CERT_INDEX = EK_CERT_NV["ecc"]   # the vTPMs the host manufactures have an ECC P-384 EK
POLICY_BANK = "sha256"
POLICY_PCRS = (0, 4, 7, 9)    # firmware, boot loader/kernel, secure boot state, initrd + cmdline
POLICY_SELECTION = f"{POLICY_BANK}:{','.join(map(str, POLICY_PCRS))}"
GUEST_TCTI = "device:/dev/tpmrm0"
SEPARATOR_PCR = 9             # a policy PCR: once extended, no quote of this boot matches again
SEPARATOR_DIGEST = hashlib.sha256(bytes(4)).digest()   # TCG EV_SEPARATOR's digest (0x00000000)


@dataclass(frozen=True)
class Evidence:
    vm_id: bytes
    nonce: bytes
    attest: bytes             # TPMS_ATTEST
    signature: bytes          # TPMT_SIGNATURE
    pcr_values: bytes         # the selection's digests, ascending (tpm2_quote -o -F values)


def vm_id_for(ek_cert_der: bytes) -> bytes:
    """The VM id: the first 16 bytes of SHA-256 over the EK's SubjectPublicKeyInfo."""
    spki = x509.load_der_x509_certificate(ek_cert_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:16]


def status_name(exc: Exception) -> str:
    """The DDI or vendor status name of a client error, else the exception's text."""
    from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        try:
            return VendorStatus(int(status)).name
        except ValueError:
            pass
    return getattr(exc, "name", None) or f"{type(exc).__name__}: {exc}"


def tpm2(*args: str, env: dict[str, str] | None = None) -> None:
    """Run one tpm2-tools command against ``env``'s TCTI (default: the guest's vTPM); raises
    ``RuntimeError`` with its stderr."""
    env = env or {**os.environ, "TPM2TOOLS_TCTI": GUEST_TCTI}
    proc = subprocess.run(["tpm2_" + args[0], "-Q", *args[1:]], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"tpm2_{args[0]} failed: {proc.stderr.strip()[-300:]}")


# TPM 2.0 commands sent directly to the TPM (Part 3 marshalling): what tpm2_nvread, tpm2_quote -o
# -F values and tpm2_pcrextend send, without a tpm2-tools process per command (each start costs
# 0.2-0.9 s in a TCG guest). TPM2TOOLS_TCTI names the TPM as for tpm2-tools: ``device:PATH`` (the
# guest's resource manager) or ``swtpm:path=SOCKET`` (a host swtpm's server socket).
_ST_NO_SESSIONS, _ST_SESSIONS = 0x8001, 0x8002
_CC_NV_READ, _CC_QUOTE, _CC_PCR_EXTEND, _CC_PCR_READ, _CC_NV_READ_PUBLIC = (
    0x14E, 0x158, 0x182, 0x17E, 0x169)
_PASSWORD_SESSION = struct.pack(">IHBH", 0x40000009, 0, 0, 0)   # TPM_RS_PW, empty auth
_ALG = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
_ALG_ECDSA = 0x0018
_RC_AGAIN = {0x922, 0x908, 0x90A}
_RETRIES = 100
_NV_CHUNK = 1024              # every TPM's TPM_PT_NV_BUFFER_MAX is at least this


def _transmit(command: bytes, env: dict[str, str] | None) -> bytes:
    """Send one command to the TPM ``env`` names; returns the whole response."""
    tcti = (env or {}).get("TPM2TOOLS_TCTI", GUEST_TCTI)
    kind, _, where = tcti.partition(":")
    if kind == "device":
        fd = os.open(where, os.O_RDWR)
        try:
            os.write(fd, command)
            return os.read(fd, 8192)
        finally:
            os.close(fd)
    if kind == "swtpm" and where.startswith("path="):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(where.removeprefix("path="))
            sock.sendall(command)
            response = b""
            while len(response) < 6 or len(response) < struct.unpack_from(">I", response, 2)[0]:
                chunk = sock.recv(8192)
                if not chunk:
                    break
                response += chunk
            return response
    raise RuntimeError(f"unsupported TPM2TOOLS_TCTI {tcti!r}")


def _command(name: str, code: int, handles: tuple[int, ...], params: bytes,
             env: dict[str, str] | None, auth: bool = True) -> bytes:
    """One TPM command (with a password session on its first handle when ``auth``); returns the
    response parameters. Raises ``RuntimeError`` naming the command and the TPM's response code."""
    body = b"".join(struct.pack(">I", h) for h in handles)
    if auth:
        body += struct.pack(">I", len(_PASSWORD_SESSION)) + _PASSWORD_SESSION
    body += params
    tag = _ST_SESSIONS if auth else _ST_NO_SESSIONS
    for _ in range(_RETRIES):    # TPM_RC_RETRY, _YIELDED, _TESTING: send again (as the TSS does)
        response = _transmit(struct.pack(">HII", tag, 10 + len(body), code) + body, env)
        if len(response) < 10:
            raise RuntimeError(f"TPM2_{name}: short response ({len(response)} bytes)")
        size, rc = struct.unpack_from(">II", response, 2)
        if rc not in _RC_AGAIN:
            break
    if rc != 0 or size != len(response):
        raise RuntimeError(f"TPM2_{name} failed: response code {rc:#x}")
    if struct.unpack_from(">H", response)[0] == _ST_SESSIONS:
        (length,) = struct.unpack_from(">I", response, 10)
        return response[14:14 + length]
    return response[10:]


def _tpm2b(data: bytes, offset: int = 0) -> tuple[bytes, int]:
    (size,) = struct.unpack_from(">H", data, offset)
    if offset + 2 + size > len(data):
        raise RuntimeError("TPM response: truncated TPM2B")
    return data[offset + 2:offset + 2 + size], offset + 2 + size


def _selection(selection: str) -> tuple[int, list[int], bytes]:
    """``bank:i,j,...`` -> (hash algorithm id, sorted PCRs, TPML_PCR_SELECTION)."""
    bank, _, pcrs = selection.partition(":")
    indices = sorted({int(i) for i in pcrs.split(",")})
    if bank not in _ALG or not indices or not all(0 <= i < 24 for i in indices):
        raise ValueError(f"unsupported PCR selection {selection!r}")
    bitmap = bytearray(3)
    for i in indices:
        bitmap[i // 8] |= 1 << (i % 8)
    return _ALG[bank], indices, struct.pack(">IHB", 1, _ALG[bank], 3) + bytes(bitmap)


def nv_read(index: int, env: dict[str, str] | None = None) -> bytes:
    """The whole content of NV ``index``, read with the index's own (empty) authorization."""
    public, _ = _tpm2b(_command("NV_ReadPublic", _CC_NV_READ_PUBLIC, (index,), b"", env,
                                auth=False))
    (size,) = struct.unpack_from(">H", public, len(public) - 2)   # TPMS_NV_PUBLIC.dataSize
    data = b""
    while len(data) < size:
        chunk = min(_NV_CHUNK, size - len(data))
        part, _ = _tpm2b(_command("NV_Read", _CC_NV_READ, (index, index),
                                  struct.pack(">HH", chunk, len(data)), env))
        if len(part) != chunk:
            raise RuntimeError(f"TPM2_NV_Read returned {len(part)} bytes, asked {chunk}")
        data += part
    return data


def pcr_read(selection: str, env: dict[str, str] | None = None) -> bytes:
    """The selection's values, concatenated in ascending PCR order (as ``tpm2_pcrread -o``)."""
    alg, indices, tpml = _selection(selection)
    params = _command("PCR_Read", _CC_PCR_READ, (), tpml, env, auth=False)
    if params[4:4 + len(tpml)] != tpml:
        raise RuntimeError(f"TPM2_PCR_Read did not return all of {selection}")
    offset = 4 + len(tpml)
    (count,) = struct.unpack_from(">I", params, offset)
    offset += 4
    values = []
    for _ in range(count):
        value, offset = _tpm2b(params, offset)
        values.append(value)
    if len(values) != len(indices):
        raise RuntimeError(f"TPM2_PCR_Read returned {len(values)} values for {selection}")
    return b"".join(values)


def guest_vm_id() -> bytes:
    """This VM's id, from the EK certificate in its vTPM's NV index."""
    return vm_id_for(nv_read(EK_CERT_INDEX))


def quote(vm_id: bytes, nonce: bytes, selection: str = POLICY_SELECTION,
          env: dict[str, str] | None = None) -> Evidence:
    """Quote ``selection`` with the provisioned AK (ECDSA, SHA-256) over ``nonce``, then read the
    selection's values (in this VM's vTPM, or the one ``env`` points at), as ``tpm2_quote -g sha256
    -m -s -o -F values`` does: TPMS_ATTEST, TPMT_SIGNATURE and the concatenated PCR values."""
    _, _, tpml = _selection(selection)
    params = _command("Quote", _CC_QUOTE, (AK_HANDLE,),
                      struct.pack(">H", len(nonce)) + nonce
                      + struct.pack(">HH", _ALG_ECDSA, _ALG["sha256"]) + tpml, env)
    attest, offset = _tpm2b(params)
    return Evidence(vm_id, nonce, attest, params[offset:], pcr_read(selection, env))


def extend_separator(env: dict[str, str] | None = None) -> None:
    """Extend ``SEPARATOR_PCR`` with ``SEPARATOR_DIGEST``: after it, no quote from this boot can
    carry the PCR 9 a policy expects, so a second release in the same boot is refused."""
    _command("PCR_Extend", _CC_PCR_EXTEND, (SEPARATOR_PCR,),
             struct.pack(">IH", 1, _ALG[POLICY_BANK]) + SEPARATOR_DIGEST, env)


def get_nonce(client: Any, vm_id: bytes) -> bytes:
    return bytes(client.cvm_get_nonce(vm_id))


def release_key(client: Any, evidence: Evidence, workload: str) -> tuple[bytes, Any]:
    """CvmReleaseKey with ``evidence`` for ``workload`` to a fresh hybrid recipient; returns the
    unwrapped key and the response (statement, policy_version). Raises the client's errors."""
    from pyhsm.client import cvm_evidence
    from pyhsm.protocol.cvm.wrap import Recipient, Wrapped
    recipient = Recipient()
    answer = client.cvm_release_key(
        cvm_evidence(evidence.vm_id, evidence.attest, evidence.signature, evidence.pcr_values),
        workload.encode(), recipient.kem_pub, recipient.ecdh_pub)
    wrapped = answer.wrapped
    key = recipient.unwrap(Wrapped(bytes(wrapped.kem_ct), bytes(wrapped.ecdh_pub),
                                   bytes(wrapped.ciphertext)), RELEASE_CONTEXT + workload.encode())
    return key, answer
