"""The host side of a confidential VM (docs/confidential.md): provisioning and verification.

``provision`` does what a cloud fabric does before a confidential VM starts: owner key, HSM-held
keys (the releasable AES-256 data-disk key, the ML-DSA-65 result key), a vTPM per VM with EK
certificate and AK (registered with the HSM), the policy (PCRs 0/7 from a cached reference boot,
PCR 4 computed from the kernel, PCR 9 from the exact command line, with the verified root's hash,
and initrd), and the LUKS2 data disk, formatted with the disk key that the HSM releases to the
fabric's own attested vTPM under a policy bound to it.
``policy_update_line`` is a signed mid-run policy update for the guest to relay; ``verify_result``
checks the signed result and the countersigned evidence against the device's DICE chain.
``pyhsm.host.confidential.session`` runs the VM and calls these.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pyhsm import paths
from pyhsm.client import attestation
from pyhsm.host import swtpm
from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import datadisk, fabric, measurements
from pyhsm.host.images import GuestImages
from pyhsm.host.vm import Vm, VmConfig, kernel_cmdline
from pyhsm.protocol.cvm import owner
from pyhsm.protocol.cvm.workload import (
    OTHER_WORKLOAD,
    POLICY_WORKLOAD,
    RELAY_PREFIX,
    RESULT_CONTEXT,
    job_result,
    result_message,
)

DATA_FILES = {   # what the job reads from the encrypted disk (deterministic, so the host knows)
    "ledger.csv": "".join(f"{i},account-{i % 17},{(i * 7919) % 10007}\n"
                          for i in range(2000)).encode(),
    "notes/readme.txt": b"Confidential data: readable only inside an attested VM.\n" * 40,
}
REFERENCE_TIMEOUT_S = 300.0
# Kernel options of every confidential VM (measured into PCR 9 with the rest of the command line).
# cryptomgr.notests: no known-answer self-tests when an algorithm registers; under TCG they cost
# ~2.4 s when dm-crypt's AES-NI module loads and more across the boot (docs/benchmarks.md). Not a
# trust input: a wrong cipher would fail the LUKS2 digest or the dm-verity root hash, never pass it.
GUEST_KERNEL_OPTIONS = "cryptomgr.notests"


@dataclass
class Provisioned:
    config: VmConfig                # what to boot: the given one, told the other VM's id
    vm_id: bytes
    other_vm_id: bytes              # the fabric's own registered vTPM
    vtpm_state: Path
    data_disk: Path
    data_files: Path                # the same files, in clear, for the host's expected result
    result_public_key: bytes        # ML-DSA-65
    chain: list[bytes]              # the device's DICE chain (DER, Device ID first)
    policy_values: bytes
    ek_spki_der: bytes
    ak_name: bytes
    notes: list[str] = field(default_factory=list)


def vm_config(images: GuestImages, backend: BackendProcess, workdir: Path, accel: str,
              workload: str, serial: str, **fields: Any) -> VmConfig:
    """The confidential VM's configuration (OVMF, vTPM, data disk, root through dm-verity), before
    provisioning fills in the sockets and disk."""
    fields["cmdline_extra"] = " ".join(filter(None, (GUEST_KERNEL_OPTIONS,
                                                     fields.get("cmdline_extra", ""))))
    return VmConfig(images=images, hsm_socket=backend.socket, workdir=workdir, accel=accel,
                    firmware="ovmf", serial=serial, workload=workload,
                    tpm_socket=workdir / "swtpm.sock", data_disk=workdir / "data.img",
                    console_input=True, **{"verity": True, **fields})


def boot_inputs(config: VmConfig) -> measurements.BootInputs:
    """What ``config``'s boot measures into PCRs 4 and 9."""
    return measurements.BootInputs(config.images.kernel, kernel_cmdline(config),
                                   config.images.initramfs, config.memory_mb)


def reference_pcrs(config: VmConfig, out: Callable[[str], None]) -> dict[int, bytes]:
    """PCRs 0/7 for this firmware and kernel, from the cache or a reference boot."""
    def boot() -> tuple[measurements.BootInputs, dict[int, bytes]]:
        workdir = config.workdir.parent / f"{config.workdir.name}-reference"
        ref = replace(config, workdir=workdir, workload="measure", data_disk=None,
                      tpm_socket=workdir / "swtpm.sock", cmdline_extra=GUEST_KERNEL_OPTIONS, guest_cmd=None,
                      qemu_extra=())
        out("reference boot (measure) for the policy's firmware PCRs 0 and 7 ...")
        tpm = swtpm.Swtpm(workdir / "tpm", ctrl_socket=ref.tpm_socket, log=workdir / "swtpm.log")
        tpm.start()
        try:
            with Vm(ref) as vm:
                vm.wait_boot(REFERENCE_TIMEOUT_S)
                step = vm.wait_for("step", REFERENCE_TIMEOUT_S)
                if step["result"] != "ok":
                    raise RuntimeError(f"reference boot: {step.get('error')}")
                vm.wait_for("done", 60)
        finally:
            tpm.stop()
        pcrs = {int(k): bytes.fromhex(v) for k, v in step["detail"]["pcrs"].items()}
        return boot_inputs(ref), pcrs
    shape = f"cpus={config.cpus} memory={config.memory_mb} accel={config.accel}"
    return measurements.reference(config.images.kernel, config.qemu, shape, boot)


def provision(config: VmConfig, backend: BackendProcess, owner_key: Path,
              out: Callable[[str], None] = print, policy_config: VmConfig | None = None) -> Provisioned:
    """Everything before the VM starts. ``policy_config`` is the configuration the policy expects
    (default ``config``); a test boots a tampered ``config`` against the policy of a good one. Both
    get ``pyhsm.other-vm=`` (the fabric vTPM's VM id) on their command line."""
    workdir = config.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    notes = []
    hsm = fabric.Fabric(backend.socket, config.serial, owner_key)
    try:
        notes.append(hsm.ensure_owner())
        notes.append(hsm.ensure_disk_key())
        result_public = hsm.result_public_key()
        chain = hsm.certificate_chain()
        fabric_tpm = swtpm.provision(workdir / "fabric-tpm")
        fabric_vm = hsm.register_vm(fabric_tpm)
        guest_tpm = swtpm.provision(workdir / "vm-tpm")
        vm_id = hsm.register_vm(guest_tpm)
        mask = measurements.pcr_mask()
        with swtpm.Swtpm(fabric_tpm.state) as tpm:
            fabric_pcrs = attestation.quote(fabric_vm, bytes(32), env=tpm.env).pcr_values
        hsm.set_policy(OTHER_WORKLOAD, fabric_vm, mask, fabric_pcrs)
        with swtpm.Swtpm(fabric_tpm.state) as tpm:
            evidence = attestation.quote(fabric_vm, attestation.get_nonce(hsm.client, fabric_vm),
                                         env=tpm.env)
        disk_key, _ = attestation.release_key(hsm.client, evidence, OTHER_WORKLOAD)
        assert config.data_disk is not None
        datadisk.create(config.data_disk, DATA_FILES, disk_key)
        del disk_key
        other = f"pyhsm.other-vm={fabric_vm.hex()}"
        config = replace(config, cmdline_extra=" ".join(filter(None, (config.cmdline_extra, other))))
        expected = policy_config or config
        if policy_config is not None:
            expected = replace(policy_config, cmdline_extra=" ".join(
                filter(None, (policy_config.cmdline_extra, other))))
        values = measurements.policy_values(reference_pcrs(expected, out), boot_inputs(expected))
        version = hsm.set_policy(POLICY_WORKLOAD, vm_id, mask, values)
        notes.append(f"policy {POLICY_WORKLOAD!r} v{version} over PCRs "
                     f"{','.join(map(str, attestation.POLICY_PCRS))}")
    finally:
        hsm.close()
    return Provisioned(config=config, vm_id=vm_id, other_vm_id=fabric_vm, vtpm_state=guest_tpm.state,
                       data_disk=config.data_disk, data_files=config.data_disk.with_suffix(".files"),
                       result_public_key=result_public, chain=chain, policy_values=values,
                       ek_spki_der=guest_tpm.ek_spki_der, ak_name=guest_tpm.ak_name, notes=notes)


def policy_update_line(provisioned: Provisioned, owner_key: Path, seq: int) -> str:
    """The console line that has the guest relay a signed CvmSetPolicy re-registering the same
    policy (its version goes up, outstanding nonces go stale). Mid-run the VM holds the partition's
    one link (docs/link-protocol.md), and owner commands are authenticated by signature, not by
    channel, so the guest can carry it."""
    command = owner.signed_command(
        "CvmSetPolicy", fabric.load_owner_key(owner_key),
        **fabric.policy_body(seq, POLICY_WORKLOAD, provisioned.vm_id, measurements.pcr_mask(),
                             provisioned.policy_values))
    return RELAY_PREFIX + json.dumps({"op": "CvmSetPolicy", "body": command.body.hex(),
                                      "owner_sig": command.signature.hex()})


def start_vtpm(config: VmConfig, provisioned: Provisioned) -> swtpm.Swtpm:
    """The VM's vTPM, running on its control socket."""
    assert config.tpm_socket is not None
    tpm = swtpm.Swtpm(provisioned.vtpm_state, ctrl_socket=config.tpm_socket,
                      log=config.workdir / "swtpm.log")
    tpm.start()
    return tpm


def verify_result(detail: dict[str, Any], provisioned: Provisioned) -> list[str]:
    """Check the guest's signed result; returns the chain of trust checked, one line per link.
    Raises ``ValueError`` (or a verification error) naming the first check that failed."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import mldsa

    from pyhsm.protocol.cvm import statement
    from pyhsm.protocol.cvm.statement import Claim
    from pyhsm.protocol.dice import firmware
    from pyhsm.protocol.dice.verify import verify_chain
    certs = [x509.load_der_x509_certificate(c) for c in provisioned.chain]
    stages = [firmware.load_stage(paths.hsm_firmware(), name) for name in firmware.STAGES]
    chain = verify_chain(certs, stages)
    lines = [f"DICE chain: {' -> '.join(link.subject for link in chain.links)} "
             f"(UEID {chain.ueid.hex()[:16]}..), every layer's FWID, version and SVN equal to the "
             f"reference HSM firmware images ({', '.join(firmware.STAGES)})"]
    signed = bytes.fromhex(detail["statement"])
    claims = statement.verify(signed, chain.leaf_public_key)
    expected = {Claim.PURPOSE: "release", Claim.VM_ID: provisioned.vm_id,
                Claim.EK_SHA256: hashlib.sha256(provisioned.ek_spki_der).digest(), Claim.AK_NAME: provisioned.ak_name,
                Claim.PCR_DIGEST: hashlib.sha256(provisioned.policy_values).digest(), Claim.WORKLOAD: POLICY_WORKLOAD}
    for key, want in expected.items():
        if claims.get(key) != want:
            raise ValueError(f"statement claim {key.name} is {claims.get(key)!r}, expected {want!r}")
    lines.append(f"release statement (COSE_Sign1 ES384) by the chain's leaf: VM "
                 f"{provisioned.vm_id.hex()}, EK sha256 {claims[Claim.EK_SHA256].hex()[:16]}.., AK name "
                 f"{claims[Claim.AK_NAME].hex()[:16]}.., nonce {claims[Claim.NONCE].hex()[:16]}.., pcrDigest "
                 f"{claims[Claim.PCR_DIGEST].hex()[:16]}.. (= the build's reference values), "
                 f"policy v{claims.get(Claim.POLICY_VERSION)}")
    result = detail["result"]
    want_result = job_result(provisioned.data_files)
    if result != want_result:
        raise ValueError(f"the job's result differs from the data the host put on the disk: "
                         f"{json.dumps(result)[:200]}")
    lines.append(f"job result matches the disk's content ({len(result['files'])} files, "
                 f"{result['total_words']} words)")
    public = mldsa.MLDSA65PublicKey.from_public_bytes(provisioned.result_public_key)
    public.verify(bytes.fromhex(detail["mldsa_signature"]), result_message(result, signed),
                  RESULT_CONTEXT)
    lines.append(f"ML-DSA-65 signature over result + statement verifies under the HSM result key "
                 f"(public key sha256 {hashlib.sha256(provisioned.result_public_key).hexdigest()[:16]}..)")
    return lines
