"""The host-side parts of the confidential flow, without a guest: the PCR 4 and PCR 9 models against
an event log recorded in a real OVMF boot and the kernel's own signature, the verified root's hash
tree and the initramfs that opens it, vTPM manufacture, quote and separator (real swtpm), the LUKS2
data disk (real cryptsetup), and the job / signed-message encoding the host re-computes."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import subprocess
from pathlib import Path

import pytest

from pyhsm.client import attestation
from pyhsm.host import swtpm
from pyhsm.host.confidential import datadisk, measurements
from pyhsm.host.images import GuestImages
from pyhsm.protocol.cvm.workload import job_result, result_message
from tests.e2e.verity_images import verifies, with_changed_byte

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


def test_policy_values_are_ascending_with_pcr4_and_pcr9_from_the_build(
        tmp_path: Path, guest_images: GuestImages) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"x")
    boot = measurements.BootInputs(guest_images.kernel, "cmd", initrd, 1024)
    reference = {0: b"\x00" * 32, 7: b"\x07" * 32}
    values = measurements.policy_values(reference, boot)
    assert values == (b"\x00" * 32 + measurements.pcr4(boot) + b"\x07" * 32
                      + measurements.pcr9("cmd", initrd))
    assert measurements.pcr_mask() == (1 << 0) | (1 << 4) | (1 << 7) | (1 << 9)


def test_authenticode_digest_is_the_one_the_kernel_is_signed_with(guest_images: GuestImages) -> None:
    """Debian signs the kernel: its certificate table holds the Authenticode SHA-256 of the image.
    The digest skips the PE checksum field and covers the code."""
    image = guest_images.kernel.read_bytes()
    digest = measurements.authenticode_sha256(image)
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    cert_offset, cert_size = struct.unpack_from("<II", image, pe + 24 + 112 + 8 * 4)
    assert cert_size and digest in image[cert_offset:cert_offset + cert_size]
    checksum = bytearray(image)
    checksum[pe + 24 + 64] ^= 0xFF
    assert measurements.authenticode_sha256(bytes(checksum)) == digest
    code = bytearray(image)
    code[cert_offset - 4096] ^= 0xFF
    assert measurements.authenticode_sha256(bytes(code)) != digest


# Recorded with tpm2_eventlog in a guest booted by OVMF (Debian 12, edk2 2022.11) from this kernel
# (linux-image-6.1.0-56-amd64 6.1.192-2) by QEMU 10.0 (q35, 1024 MiB, an initrd of 3915373 bytes):
# PCR 4's EV_EFI_BOOT_SERVICES_APPLICATION digest and PCR 4's final value (SHA-256 bank).
RECORDED_KERNEL_SHA256 = "26f2e57c99338feaf71c46fa4babdc7e1a6c115943002d109fdb746667104f5f"
RECORDED_INITRD_SIZE, RECORDED_MEMORY_MB = 3915373, 1024
RECORDED_APPLICATION_DIGEST = "ba87110bc08f92f31d20846dbafdecc2e4679257c8cd26ae3371216fdea69d1a"
RECORDED_PCR4 = "1172d20cd600c9ee124f23ee28cc765d243928efd2318705019631bde9f9c299"


def test_pcr4_model_matches_the_recorded_boot(tmp_path: Path, guest_images: GuestImages) -> None:
    """OVMF measures the kernel with the setup header QEMU patched (initrd address and size among
    others), not the file: the model gives the recorded digest, the file's own digest differs."""
    image = guest_images.kernel.read_bytes()
    assert hashlib.sha256(image).hexdigest() == RECORDED_KERNEL_SHA256, \
        "the kernel pin moved: record PCR 4 again"
    loaded = measurements.fw_cfg_kernel(image, "console=ttyS0", RECORDED_INITRD_SIZE,
                                        RECORDED_MEMORY_MB)
    assert measurements.authenticode_sha256(loaded).hex() == RECORDED_APPLICATION_DIGEST
    assert measurements.authenticode_sha256(image).hex() != RECORDED_APPLICATION_DIGEST
    initrd = tmp_path / "initrd"
    initrd.write_bytes(bytes(RECORDED_INITRD_SIZE))
    boot = measurements.BootInputs(guest_images.kernel, "console=ttyS0", initrd, RECORDED_MEMORY_MB)
    assert measurements.pcr4(boot).hex() == RECORDED_PCR4
    bigger = dataclasses.replace(boot, memory_mb=2048)
    assert measurements.pcr4(bigger).hex() != RECORDED_PCR4
    with pytest.raises(ValueError, match="vga="):
        measurements.pcr4(dataclasses.replace(boot, cmdline="vga=normal"))


def test_built_rootfs_verifies_against_its_root_hash_and_a_changed_byte_does_not(
        tmp_path: Path, guest_images: GuestImages) -> None:
    assert verifies(guest_images)
    assert not verifies(with_changed_byte(guest_images, tmp_path / "rootfs.ext4"))


def test_initramfs_carries_what_opens_the_verified_root(guest_images: GuestImages) -> None:
    archive = subprocess.run(["zstd", "-dc"], input=guest_images.initramfs.read_bytes(),
                             capture_output=True, check=True).stdout   # zstd (initramfs.sh)
    listing = subprocess.run(["cpio", "-t"], input=archive, capture_output=True,
                             check=True).stdout.decode().split()
    for needed in ("sbin/dmsetup", "lib/x86_64-linux-gnu/libdevmapper.so.1.02.1",
                   "lib64/ld-linux-x86-64.so.2"):
        assert needed in listing, f"the initramfs lacks {needed}"
    modules = [Path(p).name for p in listing if p.endswith(".ko")]
    assert {"dm-mod.ko", "dm-bufio.ko", "dm-verity.ko"} <= set(modules), modules


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> swtpm.VtpmIdentity:
    """A vTPM provisioned as the fabric does."""
    return swtpm.provision(tmp_path_factory.mktemp("vtpm") / "state")


def test_manufactured_vtpm_quotes_with_its_ak(identity: swtpm.VtpmIdentity) -> None:
    """EK certificate from swtpm-localca, AK persistent at 0x81010002, a quote over the nonce whose
    qualifiedSigner is the AK's qualified name under the EK (what the HSM checks)."""
    from pyhsm.protocol.cvm import tpm2
    vm_id = attestation.vm_id_for(identity.ek_cert_der)
    assert vm_id == hashlib.sha256(identity.ek_spki_der).digest()[:16]
    nonce = bytes(range(32))
    with swtpm.Swtpm(identity.state) as tpm:
        evidence = attestation.quote(vm_id, nonce, env=tpm.env)
    quote = tpm2.parse_quote(evidence.attest)
    assert quote.extra_data == nonce
    ek, ak = tpm2.parse_public(identity.ek_public), tpm2.parse_public(identity.ak_public)
    assert ak.name == identity.ak_name
    assert quote.signer_name == tpm2.ak_qualified_name(ek, ak)
    assert tpm2.verify_quote_signature(ak, quote, tpm2.parse_signature(evidence.signature))
    assert len(evidence.pcr_values) == 32 * len(attestation.POLICY_PCRS)


def test_separator_moves_pcr9_by_the_tcg_separator_digest(
        identity: swtpm.VtpmIdentity) -> None:
    """After ``extend_separator`` a quote of the same TPM carries PCR 9 extended by the separator,
    so it no longer equals what a policy computed for the boot expects; the other PCRs stay."""
    vm_id = attestation.vm_id_for(identity.ek_cert_der)
    with swtpm.Swtpm(identity.state) as tpm:
        before = attestation.quote(vm_id, bytes(32), env=tpm.env).pcr_values
        attestation.extend_separator(env=tpm.env)
        after = attestation.quote(vm_id, bytes(32), env=tpm.env).pcr_values
    at = attestation.POLICY_PCRS.index(attestation.SEPARATOR_PCR) * 32
    assert after[at:at + 32] == measurements.extend(before[at:at + 32], attestation.SEPARATOR_DIGEST)
    assert after[:at] + after[at + 32:] == before[:at] + before[at + 32:]
    assert attestation.SEPARATOR_DIGEST.hex() == (
        "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119")


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
    from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
    assert attestation.status_name(DdiError("CvmReleaseKey", VendorStatus[name])) == name
