"""The host-side parts of the confidential flow, without a guest: the PCR 9 model against an event log
recorded in a real OVMF boot, vTPM manufacture and quote (real swtpm), the LUKS2 data disk (real
cryptsetup), and the job / signed-message encoding the host re-computes."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from pyhsm.launcher import datadisk, measurements, vtpm
from pyhsm.launcher.workloads import attestation
from pyhsm.launcher.workloads.confidential import job_result, result_message

# Recorded with tpm2_eventlog in a guest booted by OVMF (Debian 12) with this command line: the
# EV_EVENT_TAG "LOADED_IMAGE::LoadOptions" digest in PCR 9 (SHA-256 bank).
RECORDED_CMDLINE = (
    "console=ttyS0 quiet loglevel=4 root=/dev/vda rw panic=0 tsc=reliable pyhsm.workload=boot "
    "pyhsm.after-reset=reset_check pyhsm.after=poweroff pyhsm.cmd=bW91bnQgLXQgc2VjdXJpdHlmcyBub25l"
    "IC9zeXMva2VybmVsL3NlY3VyaXR5OyB0cG0yX2V2ZW50bG9nIC9zeXMva2VybmVsL3NlY3VyaXR5L3RwbTAvYmluYXJ5X2Jp"
    "b3NfbWVhc3VyZW1lbnRzID4gL3RtcC9ldi50eHQgMj4mMTsgZ3JlcCAtbiAtQjMgLUEyMiAnUENSSW5kZXg6IDknIC90bXAv"
    "ZXYudHh0IHwgaGVhZCAtMTIwOyB0cG0yX3BjcnJlYWQgc2hhMjU2Ojk=")
RECORDED_LOAD_OPTIONS_SHA256 = "35caf3c992dda53927b5021a047f8e16490f3c09bbac6713c939c943a0891845"


def test_load_options_digest_matches_the_recorded_event() -> None:
    assert measurements.load_options_digest(RECORDED_CMDLINE).hex() == RECORDED_LOAD_OPTIONS_SHA256
    assert measurements.load_options_digest(RECORDED_CMDLINE + " x").hex() != RECORDED_LOAD_OPTIONS_SHA256


def test_pcr9_is_load_options_then_initrd(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"initrd bytes")
    step1 = hashlib.sha256(bytes(32) + measurements.load_options_digest("a b")).digest()
    want = hashlib.sha256(step1 + hashlib.sha256(b"initrd bytes").digest()).digest()
    assert measurements.pcr9("a b", initrd) == want
    initrd.write_bytes(b"initrd bytes plus one file")
    assert measurements.pcr9("a b", initrd) != want


def test_policy_values_are_ascending_with_computed_pcr9(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"x")
    reference = {0: b"\x00" * 32, 4: b"\x04" * 32, 7: b"\x07" * 32}
    values = measurements.policy_values(reference, "cmd", initrd)
    assert values == b"\x00" * 32 + b"\x04" * 32 + b"\x07" * 32 + measurements.pcr9("cmd", initrd)
    assert measurements.pcr_mask() == (1 << 0) | (1 << 4) | (1 << 7) | (1 << 9)


def test_manufactured_vtpm_quotes_with_its_ak(tmp_path: Path) -> None:
    """EK certificate from swtpm-localca, AK persistent at 0x81010002, a quote over the nonce whose
    qualifiedSigner is the AK's qualified name under the EK (what the HSM checks)."""
    from pyhsm.cvm import tpm2
    identity = vtpm.manufacture(tmp_path / "state", tmp_path / "scratch")
    vm_id = attestation.vm_id_for(identity.ek_cert_der)
    assert vm_id == hashlib.sha256(identity.ek_spki_der).digest()[:16]
    nonce = bytes(range(32))
    with vtpm.tpm2_tools(identity.state, tmp_path / "scratch") as env:
        evidence = attestation.quote(vm_id, nonce, env=env)
    quote = tpm2.parse_quote(evidence.attest)
    assert quote.extra_data == nonce
    ek, ak = tpm2.parse_public(identity.ek_public), tpm2.parse_public(identity.ak_public)
    assert ak.name == identity.ak_name
    assert quote.signer_name == tpm2.ak_qualified_name(ek, ak)
    assert tpm2.verify_quote_signature(ak, quote, tpm2.parse_signature(evidence.signature))
    assert len(evidence.pcr_values) == 32 * len(attestation.POLICY_PCRS)


def _opens(image: Path, key: bytes) -> bool:
    return subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", "-", str(image)],
                          input=key, capture_output=True).returncode == 0


def test_data_disk_is_luks2_and_opens_only_with_its_key(tmp_path: Path) -> None:
    key = bytes(range(32))
    image = tmp_path / "data.img"
    datadisk.create(image, {"a.txt": b"alpha beta\n", "d/b.txt": b"gamma\n"}, key)
    dump = subprocess.run(["cryptsetup", "luksDump", str(image)], capture_output=True, text=True)
    assert "Version:       \t2" in dump.stdout
    assert _opens(image, key)
    assert not _opens(image, bytes(32))
    assert b"alpha beta" not in image.read_bytes()


def test_job_result_and_signed_message_are_deterministic(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "a.txt").write_bytes(b"one two\nthree\n")
    (tmp_path / "d" / "b.txt").write_bytes(b"four")
    result = job_result(tmp_path)
    assert result == {"files": {
        "a.txt": {"sha256": hashlib.sha256(b"one two\nthree\n").hexdigest(), "lines": 2, "words": 3},
        "d/b.txt": {"sha256": hashlib.sha256(b"four").hexdigest(), "lines": 0, "words": 1}},
        "total_words": 4}
    assert result_message(result, b"s") == result_message(dict(reversed(result.items())), b"s")
    assert result_message(result, b"s") != result_message(result, b"t")


@pytest.mark.parametrize("name", ["CvmPolicyMismatch", "CvmNonceStale"])
def test_status_name_reads_vendor_statuses(name: str) -> None:
    from pyhsm.client import DdiError
    from pyhsm.ddi.schemas_vendor import VendorStatus
    assert attestation.status_name(DdiError("CvmReleaseKey", VendorStatus[name])) == name
