"""The leak scan on the confidential workload (OVMF, vTPM, LUKS2 data disk, attested key release,
ML-DSA-signed result; TCG, 1 vCPU, one boot): with guest RAM in a file and the backend exporting its
secrets, no HSM secret is anywhere in guest memory after the workload, and a planted canary is."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pyhsm import paths
from pyhsm.host import images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import launch as confidential
from pyhsm.host.confidential.fabric import DISK_KEY_TAG, Fabric
from pyhsm.host.confidential.session import run_vm
from pyhsm.host.summary import Summary
from pyhsm.protocol import console, secrets_file
from pyhsm.tools.inspect.commands import MEMORY_FILE
from pyhsm.tools.inspect.run_debug import SECRETS, DebugRun
from tests.tools.test_debug_guest import assert_only_the_canary_found, export_secrets

pytestmark = [pytest.mark.guest, pytest.mark.qemu, pytest.mark.timeout(900)]

SERIAL = "AZIHSM-CVM-0001"
CANARY_FILE = "/tmp/hsm-canary"


def _canary_command(canary: bytes) -> str:
    """Run after the workload: writes ``canary`` (built in the guest from its hex text) to a file,
    whose page stays in guest RAM until power-off."""
    return (f"python3 -c \"open('{CANARY_FILE}', 'wb').write(bytes.fromhex('{canary.hex()}'))\"")


def _released_key_id(backend: BackendProcess, owner: Path) -> int:
    """The vault id of the disk key, the key the HSM releases to the attested guest."""
    fabric = Fabric(backend.socket, SERIAL, owner)
    try:
        return int(fabric.client.open_key(DISK_KEY_TAG).key_id)
    finally:
        fabric.close()


def test_confidential_leak_scan_finds_the_canary_and_no_hsm_secret() -> None:
    if not paths.qemu().exists():
        pytest.fail(f"{paths.qemu()} is missing: run `make qemu`")
    built = images.build(lambda line: None)
    if built.driver_status != "built":
        pytest.fail(f"the guest images carry no azihsm.ko ({built.driver_status})")
    run = Path(tempfile.mkdtemp(prefix="dbgc-", dir="/tmp"))
    vm_dir = run / "vm"
    vm_dir.mkdir()
    debug = DebugRun(vm_dir, memory_mb=1024)
    canary = os.urandom(32)
    backend = BackendProcess(run / "hsm.sock", run / "state", run / "backend.log",
                             extra_args=debug.backend_args())
    backend.start()
    try:
        config = confidential.vm_config(built, backend, vm_dir, "tcg", "confidential", SERIAL,
                                        cpus=1, memory_mb=debug.memory_mb,
                                        guest_cmd=_canary_command(canary),
                                        cmdline_extra=debug.kernel_cmdline,
                                        qemu_extra=debug.qemu_args())
        summary = Summary(print)
        outcome = run_vm(config, backend, run / "owner.pem", summary, print)
        bad = [f"{s.name}: {s.result} {s.note}" for s in summary.steps if s.result != console.OK]
        assert not bad and outcome.done.get("ok"), (bad, outcome.done)
        assert "unlock data disk" in outcome.steps and len(outcome.chain_of_trust) == 4
        assert "nokaslr" in (vm_dir / "qemu.cmdline").read_text()

        released = f": key 0x{_released_key_id(backend, run / 'owner.pem'):x} material"
        exported = secrets_file.load_secrets(export_secrets(backend, vm_dir / SECRETS))
        # The disk key is released to the attested guest, which unlocks its LUKS2 disk with it: it
        # may legitimately be in guest memory, so it alone is left out of the scan. Every other
        # exported secret (the ML-DSA result key's too) is scanned for.
        dropped = [s for s in exported if s.label.startswith(SERIAL) and s.label.endswith(released)]
        secrets = [s for s in exported if s not in dropped]
        assert len(dropped) == 1, [s.label for s in exported]
        labels = " | ".join(s.label for s in secrets)
        for kind in ("at-rest root", "attestation private key", "partition masking key",
                     "partition backup key", "BK boot"):
            assert kind in labels, f"the export has no {kind}: {labels}"

        memory = vm_dir / MEMORY_FILE                # QEMU has quit: the file keeps the guest's RAM
        assert memory.stat().st_size == debug.memory_mb << 20
        assert_only_the_canary_found(memory, secrets, canary)
    finally:
        backend.stop()
        shutil.rmtree(run, ignore_errors=True)
