"""Confidential VMs end to end under OVMF + TCG with a vTPM (docs/confidential.md).

One boot runs ``confidential_refusals``: release, replayed evidence, evidence as another VM,
another VM's policy, evidence from before a policy update, a backend restart survived by a retry,
a second release after the separator, then unlock, job, ML-DSA-signed result, verified by the host
against the DICE chain. Three more boots each change one measured input against the good policy
(command line, initrd, kernel) and must get no key. Three change the verified root filesystem: one
changed byte of the agent (dm-verity stops the guest when it reads it), a rootfs from another build
with this build's root hash (stopped at the first read), and that rootfs with its own root hash
swapped onto the command line (the policy refuses). Every run's logs are then searched for the
released key in clear.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import struct
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.exceptions import InvalidSignature

from pyhsm.client import attestation
from pyhsm.host import swtpm
from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import launch as confidential
from pyhsm.host.confidential.fabric import Fabric
from pyhsm.host.confidential.session import VERIFY_STEP, Outcome, run_vm
from pyhsm.host.images import GuestImages
from pyhsm.host.summary import Summary
from pyhsm.host.vm import VmConfig
from pyhsm.protocol import console
from pyhsm.protocol.cvm.workload import OTHER_WORKLOAD
from tests.e2e.verity_images import verifies, with_changed_byte, with_rebuilt_tree

pytestmark = pytest.mark.guest

SERIAL = "AZIHSM-CVM-0001"
RELEASE = "attest and release key"


@pytest.fixture
def confidential_vm(guest_images: GuestImages, hsm_qemu: Path, backend: BackendProcess,
                    workdir: Path) -> Iterator[tuple[VmConfig, BackendProcess, Path]]:
    config = confidential.vm_config(guest_images, backend, workdir / "vm", "tcg", "confidential",
                                    SERIAL, qemu=hsm_qemu, cpus=1)   # 1 vCPU boots faster under TCG
    yield config, backend, workdir / "owner.pem"


def _run(config: VmConfig, backend: BackendProcess, owner: Path,
         policy_config: VmConfig | None = None) -> tuple[Outcome, Summary]:
    summary = Summary(print)
    outcome = run_vm(config, backend, owner, summary, print, policy_config)
    return outcome, summary


def _released_key(config: VmConfig, backend: BackendProcess, owner: Path) -> bytes:
    """The disk key, released again to the fabric's vTPM after the VM is gone (for the log scan)."""
    fabric = Fabric(backend.socket, config.serial, owner)
    try:
        with swtpm.Swtpm(config.workdir / "fabric-tpm") as tpm:
            vm_id = attestation.vm_id_for(tpm.ek_certificate_der("ecc"))
            evidence = attestation.quote(vm_id, attestation.get_nonce(fabric.client, vm_id),
                                         env=tpm.env)
        key, _ = attestation.release_key(fabric.client, evidence, OTHER_WORKLOAD)
        return key
    finally:
        fabric.close()


def _assert_key_not_logged(key: bytes, *roots: Path) -> None:
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]
    scanned = 0
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file() and p.suffix in (".log", ".stderr")):
            data = path.read_bytes()
            scanned += 1
            assert not any(form in data for form in forms), f"the released key appears in {path}"
    assert scanned >= 3, f"expected console, QEMU and backend logs under {roots}"


def test_release_refusals_and_restart_in_one_boot(confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    config, backend, owner = confidential_vm
    config = dataclasses.replace(config, workload="confidential_refusals")
    outcome, summary = _run(config, backend, owner)
    bad = [f"{s.name}: {s.result} {s.note}" for s in summary.steps if s.result != console.OK]
    assert not bad, bad
    steps = outcome.steps
    assert steps["replayed evidence refused"]["detail"]["status"] == "CvmNonceUnknown"
    assert steps["evidence as another VM refused"]["detail"]["status"] == "CvmQuoteSignatureInvalid"
    assert steps["another VM's policy refused"]["detail"]["status"] == "CvmPolicyVmMismatch"
    stale = steps["evidence from before the policy update refused"]["detail"]
    assert stale == {"policy_version": 2, "status": "CvmNonceStale"}
    retried = steps["release retried across the backend restart"]["detail"]
    assert retried["retried_after"] and retried["policy_version"] == 2
    assert retried["separator_pcr"] == 9
    assert steps["release under the updated policy"]["detail"]["separator_pcr"] is None
    assert steps["release after the separator refused"]["detail"]["status"] == "CvmPolicyMismatch"
    assert len(outcome.chain_of_trust) == 4 and outcome.chain_of_trust[0].startswith("DICE chain")
    _assert_host_rejects_tampered_results(outcome)
    log = backend.log.read_text()
    for reason in ("CvmNonceUnknown (VM", "CvmQuoteSignatureInvalid (VM",
                   "CvmPolicyVmMismatch (workload b'confidential-fabric' is bound to another VM",
                   "CvmNonceStale (VM", "CvmPolicyMismatch (VM"):
        assert reason in log, f"backend log lacks the refusal {reason!r}"
    _assert_key_not_logged(_released_key(config, backend, owner), config.workdir,
                           backend.log.parent)


def _assert_host_rejects_tampered_results(outcome: Outcome) -> None:
    """The host's verification fails on a changed signature, result or statement."""
    assert outcome.provisioned is not None
    detail = outcome.steps["sign result (ML-DSA-65)"]["detail"]
    assert len(confidential.verify_result(detail, outcome.provisioned)) == 4

    def flipped(hex_text: str, at: int) -> str:
        raw = bytearray(bytes.fromhex(hex_text))
        raw[at] ^= 1
        return raw.hex()
    result = {**detail["result"], "total_words": detail["result"]["total_words"] + 1}
    for tampered in ({**detail, "mldsa_signature": flipped(detail["mldsa_signature"], 100)},
                     {**detail, "result": result},
                     {**detail, "statement": flipped(detail["statement"], -5)}):
        with pytest.raises((ValueError, InvalidSignature)):
            confidential.verify_result(tampered, outcome.provisioned)


def _refused_for_measurement(config: VmConfig, backend: BackendProcess, owner: Path,
                             tampered: VmConfig) -> None:
    outcome, summary = _run(tampered, backend, owner, policy_config=config)
    release = outcome.steps[RELEASE]
    assert release["result"] == console.FAILED
    assert release["error"] == "RuntimeError: key release refused: CvmPolicyMismatch", release
    assert outcome.steps["unlock data disk"]["result"] == console.NOT_RUN
    assert "CvmReleaseKey: CvmPolicyMismatch" in backend.log.read_text()
    assert not outcome.chain_of_trust
    verdict = {s.name: s for s in summary.steps}[VERIFY_STEP]
    assert not summary.ok and verdict.result == console.FAILED, verdict
    _assert_key_not_logged(_released_key(tampered, backend, owner), tampered.workdir,
                           backend.log.parent)


def test_changed_command_line_gets_no_key(confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    config, backend, owner = confidential_vm
    _refused_for_measurement(config, backend, owner,
                             dataclasses.replace(config, cmdline_extra="pyhsm.changed=1"))


def _initrd_plus_one_file(initramfs: Path, out: Path) -> Path:
    """``initramfs`` with one more file: a second gzip'd newc cpio member appended (the kernel
    unpacks concatenated archives)."""
    name, data = b"etc/extra\0", b"one extra file\n"
    def newc(name: bytes, data: bytes, mode: int) -> bytes:
        fields = [1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields) + name
        header += b"\0" * (-len(header) % 4)
        return header + data + b"\0" * (-len(data) % 4)
    archive = newc(name, data, 0o100644) + newc(b"TRAILER!!!\0", b"", 0)
    out.write_bytes(initramfs.read_bytes() + gzip.compress(archive))
    return out


def test_changed_initrd_gets_no_key(confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    config, backend, owner = confidential_vm
    initrd = _initrd_plus_one_file(config.images.initramfs, config.workdir.parent / "initrd-b.gz")
    images = dataclasses.replace(config.images, initramfs=initrd)
    _refused_for_measurement(config, backend, owner, dataclasses.replace(config, images=images))


def _kernel_with_other_timestamp(kernel: Path, out: Path) -> Path:
    """The same kernel with another PE/COFF TimeDateStamp: different bytes (so a different
    Authenticode hash in PCR 4), identical code."""
    image = bytearray(kernel.read_bytes())
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    assert image[pe:pe + 4] == b"PE\0\0", "the guest kernel is not an EFI stub PE image"
    stamp = struct.unpack_from("<I", image, pe + 8)[0]
    struct.pack_into("<I", image, pe + 8, stamp ^ 0x5A5A5A5A)
    out.write_bytes(bytes(image))
    return out


def test_changed_kernel_gets_no_key(confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    config, backend, owner = confidential_vm
    kernel = _kernel_with_other_timestamp(config.images.kernel, config.workdir.parent / "vmlinuz-b")
    images = dataclasses.replace(config.images, kernel=kernel)
    _refused_for_measurement(config, backend, owner, dataclasses.replace(config, images=images))


def test_initrd_helper_adds_exactly_one_file(tmp_path: Path, guest_images: GuestImages) -> None:
    """The changed initrd differs only by the appended member, which cpio lists."""
    out = _initrd_plus_one_file(guest_images.initramfs, tmp_path / "b.gz")
    tail = out.read_bytes()[len(guest_images.initramfs.read_bytes()):]
    listing = subprocess.run(["cpio", "-t"], input=gzip.decompress(tail), capture_output=True)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.decode().split() == ["etc/extra"]


def _stopped_by_verity(config: VmConfig, backend: BackendProcess, owner: Path,
                       tampered: VmConfig) -> str:
    """Boot ``tampered`` against the good policy: dm-verity must stop the guest (kernel panic)
    before any release, and the run must not pass. Returns the console log."""
    summary = Summary(print)
    with pytest.raises(RuntimeError, match="dm-verity device corrupted"):
        run_vm(tampered, backend, owner, summary, print, policy_config=config)
    assert not summary.ok and summary.steps[-1].result == console.FAILED
    log = tampered.console_log.read_text(errors="replace")
    assert "device-mapper: verity" in log and "is corrupted" in log, log[-2000:]
    assert RELEASE not in log, "the guest reached the release step"
    _assert_key_not_logged(_released_key(tampered, backend, owner), tampered.workdir,
                           backend.log.parent)
    return log


def test_one_changed_byte_of_the_agent_stops_the_guest(
        confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    """The hash tree and command line as built, one byte of the agent's code changed: the agent
    starts, and the guest stops when it reads the changed block."""
    config, backend, owner = confidential_vm
    images = with_changed_byte(config.images, config.workdir.parent / "rootfs-b.ext4")
    assert not verifies(images)
    console = _stopped_by_verity(config, backend, owner, dataclasses.replace(config, images=images))
    assert '"event":"boot"' in console, "expected the stop after the agent started, at the import"


def test_rootfs_from_another_build_is_refused_either_way(
        confidential_vm: tuple[VmConfig, BackendProcess, Path]) -> None:
    """Another build of the rootfs (the agent changed, its hash tree consistent): with this build's
    root hash on the command line the guest stops at the first read; with its own root hash swapped
    in, it boots and runs its agent, but PCR 9 differs and the policy refuses the key."""
    config, backend, owner = confidential_vm
    other = with_rebuilt_tree(with_changed_byte(config.images,
                                                config.workdir.parent / "rootfs-c.ext4"))
    assert verifies(other) and other.verity != config.images.verity
    this_hash = dataclasses.replace(other, verity=config.images.verity)
    console = _stopped_by_verity(config, backend, owner, _elsewhere(config, "vm-c1", this_hash))
    assert '"event":"boot"' not in console, "expected the stop before the agent (at the mount)"
    _refused_for_measurement(config, backend, owner, _elsewhere(config, "vm-c2", other))


def _elsewhere(config: VmConfig, name: str, images: GuestImages) -> VmConfig:
    """``config`` booting ``images``, with its own directory, vTPM socket and data disk."""
    workdir = config.workdir.parent / name
    return dataclasses.replace(config, images=images, workdir=workdir,
                               tpm_socket=workdir / "swtpm.sock", data_disk=workdir / "data.img")
