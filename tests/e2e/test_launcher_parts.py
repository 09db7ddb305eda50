"""Host-side parts of the launcher and the image builder, without booting anything."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import sys
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyhsm import paths
from pyhsm.guest import agent as guest
from pyhsm.guest.workloads import NotAvailable, Step, Workload
from pyhsm.host import commands, verify
from pyhsm.host.images import GuestImages
from pyhsm.host.summary import Summary
from pyhsm.host.vm import Vm, VmConfig, kernel_cmdline, qemu_argv
from pyhsm.protocol import console


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, paths.root() / "images" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_report_lines_round_trip_and_log_text_is_not_a_report() -> None:
    line = console.format_event("step", name="GetApiRev", result=console.OK, detail={"a": 1})
    assert console.parse_line("[   3.1] " + line) == {"event": "step", "name": "GetApiRev",
                                                       "result": "ok", "detail": {"a": 1}}
    assert console.parse_line("plain console text") is None
    assert console.parse_line(console.PREFIX + "{not json") is None
    assert console.parse_line(console.PREFIX + '{"no_event": 1}') is None


def test_kernel_parameters_and_guest_command_survive_the_command_line(tmp_path: Path) -> None:
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built")
    command = "lspci -nn | grep '1414:c003' && echo \"done\""
    config = VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path, guest_cmd=command)
    params = guest.kernel_params(kernel_cmdline(config))
    assert params["workload"] == "default" and params["after"] == "poweroff"
    assert base64.b64decode(params["cmd"]).decode() == command


def test_a_verity_vm_boots_its_root_read_only_under_the_built_root_hash(tmp_path: Path) -> None:
    tree = "ab" * 32 + "," + "cd" * 32 + ",4096"
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built", tree)
    writable = kernel_cmdline(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path))
    assert " rw " in writable and "pyhsm.verity" not in writable
    verified = kernel_cmdline(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path,
                                       verity=True)).split()
    assert "ro" in verified and "rw" not in verified
    assert guest.kernel_params(" ".join(verified))["verity"] == tree
    untreed = VmConfig(images=GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built"),
                       hsm_socket=tmp_path / "s", workdir=tmp_path, verity=True)
    with pytest.raises(ValueError, match="no dm-verity"):
        kernel_cmdline(untreed)


def test_qemu_command_line_puts_the_hsm_on_a_hotpluggable_port(tmp_path: Path) -> None:
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built")
    argv = qemu_argv(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path,
                              serial="AZIHSM-X"))
    assert "pcie-root-port,id=hsmport,chassis=1,slot=1" in argv
    [device] = [a for a in argv if a.startswith("azihsm,")]
    assert "bus=hsmport" in device and "serial=AZIHSM-X" in device and "chardev=hsmlink" in device
    assert f"file={tmp_path / 'r'},format=raw,if=none,id=root,snapshot=on" in argv
    assert "pflash" not in " ".join(argv)


def test_ovmf_boot_uses_a_private_copy_of_the_variable_store(tmp_path: Path) -> None:
    if not paths.OVMF_VARS.exists():
        pytest.fail(f"{paths.OVMF_VARS} missing: Debian package ovmf (scripts/deps.sh) not installed")
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built")
    argv = " ".join(qemu_argv(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path,
                                       firmware="ovmf")))
    assert f"readonly=on,file={paths.OVMF_CODE}" in argv
    assert f"unit=1,file={tmp_path / 'OVMF_VARS_4M.fd'}" in argv
    assert (tmp_path / "OVMF_VARS_4M.fd").read_bytes() == paths.OVMF_VARS.read_bytes()


def test_workload_reports_each_step_and_stops_after_the_first_failure() -> None:
    events: list[dict] = []
    cleaned: list[bool] = []

    def fail(context: dict) -> None:
        raise ValueError("boom")

    def missing(context: dict) -> None:
        raise NotAvailable("HsmClient.x is not implemented yet")

    workload = Workload((Step("one", lambda c: {"v": 1}), Step("two", fail), Step("three", missing)),
                        cleanup=lambda c: cleaned.append(True))
    assert workload.run(lambda event, **f: events.append({"event": event, **f})) is False
    assert [(e["name"], e["result"]) for e in events] == [
        ("one", console.OK), ("two", console.FAILED), ("three", console.NOT_RUN)]
    assert events[0]["detail"] == {"v": 1} and events[1]["error"] == "ValueError: boom"
    assert cleaned == [True]

    events.clear()
    assert Workload((Step("three", missing),)).run(
        lambda event, **f: events.append(f)) is False
    assert events[0]["result"] == console.UNAVAILABLE and "not implemented" in events[0]["error"]


def test_host_verifies_a_p384_signature_and_rejects_a_tampered_one() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    digest = bytes(range(48))
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA384()))))
    detail = {"digest": digest.hex(), "signature": (r.to_bytes(48, "big") + s.to_bytes(48, "big")).hex(),
              "public_key_der": key.public_key().public_bytes(
                  Encoding.DER, PublicFormat.SubjectPublicKeyInfo).hex()}
    assert "verified" in verify.verify_p384_signature(detail)
    with pytest.raises(InvalidSignature):
        verify.verify_p384_signature({**detail, "digest": bytes(48).hex()})
    with pytest.raises(ValueError):
        verify.verify_p384_signature({**detail, "signature": "00" * 95})


def test_summary_fails_when_any_step_fails() -> None:
    lines: list[str] = []
    summary = Summary(lines.append)
    with summary.timed("fine") as notes:
        notes.append("note")
    assert summary.ok
    with pytest.raises(RuntimeError), summary.timed("broken"):
        raise RuntimeError("first line\nsecond")
    assert not summary.ok
    assert summary.steps[-1].result == console.FAILED and summary.steps[-1].note == "first line"
    assert summary.table().splitlines()[-1].startswith("result: FAILED")


def test_run_subcommand_offers_every_option_with_help() -> None:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    run = parser._subparsers._group_actions[0].choices["run"]
    options = {o for a in run._actions for o in a.option_strings if a.help}
    assert {"--cpus", "--memory", "--state", "--guest-cmd", "--interactive", "-v", "--firmware",
            "--accel"} <= options
    args = parser.parse_args(["run", "--accel", "tcg", "--firmware", "ovmf", "--cpus", "1"])
    assert (args.accel, args.firmware, args.cpus) == ("tcg", "ovmf", 1)


def test_module_load_order_puts_dependencies_first(tmp_path: Path) -> None:
    modules = _load("modules")
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n"
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio.ko:\n")
    order = modules.load_order(["virtio-blk", "ext4"], modules.read_deps(tmp_path))
    assert order.index("kernel/drivers/virtio/virtio.ko") < order.index("kernel/drivers/block/virtio_blk.ko")
    assert order[-1] == "kernel/fs/ext4/ext4.ko" and len(order) == 6
    with pytest.raises(SystemExit, match="not in the module tree: nosuch"):
        modules.load_order(["nosuch"], modules.read_deps(tmp_path))


def test_image_step_hash_covers_inputs_and_predecessors(tmp_path: Path, monkeypatch) -> None:
    build = _load("build")
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setattr(build, "IMAGES", tmp_path / "images")
    monkeypatch.setattr(build, "STAMPS", tmp_path / "stamps")
    (tmp_path / "images" / "steps").mkdir(parents=True)
    (tmp_path / "images" / "steps" / "s.sh").write_text("true\n")
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    step = build.Step("s", ("src",), ("out",), after=("before",))
    first = build.input_hash(step)
    (tmp_path / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"ignored")
    assert build.input_hash(step) == first
    (tmp_path / "src" / "a.py").write_text("a = 2\n")
    second = build.input_hash(step)
    assert second != first
    (tmp_path / "stamps").mkdir()
    (tmp_path / "stamps" / "before").write_text("changed\n")
    assert build.input_hash(step) != second


def test_a_guest_that_powers_off_without_reporting_done_is_an_error(tmp_path: Path) -> None:
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built")
    vm = Vm(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path))
    seen: list[dict] = []
    for event in ({"event": "step", "name": "driver bound"}, {"event": "poweroff"}):
        vm.events.put(event)
    with pytest.raises(RuntimeError, match="powered off before reporting 'done'"):
        vm.wait_for("done", 5, seen.append)
    assert seen == [{"event": "step", "name": "driver bound"}]
    vm.events.put({"event": "panic", "line": "Kernel panic - not syncing: VFS"})
    with pytest.raises(RuntimeError, match="guest kernel panic"):
        vm.wait_for("done", 5)
    with pytest.raises(TimeoutError, match="no report from the guest"):
        vm.wait_for("done", 0.1)


def test_a_lost_timer_before_the_first_report_resets_the_machine_at_most_as_often_as_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bookkeeping of ``Vm.wait_for``'s resets (docs/running.md, "A vCPU that loses its timer at
    boot"); the QMP reset itself is exercised with a real guest in tests/e2e/test_guest.py."""
    images = GuestImages(tmp_path / "k", tmp_path / "i", tmp_path / "r", "built")
    vm = Vm(VmConfig(images=images, hsm_socket=tmp_path / "s", workdir=tmp_path))
    resets: list[float] = []
    monkeypatch.setattr(vm, "reset", lambda: resets.append(time.monotonic()))
    lost = {"event": "lost-timer", "line": "rcu: rcu_preempt kthread timer wakeup didn't happen for 5249 jiffies!"}
    seen: list[dict] = []
    for event in (lost, {"event": "step", "name": "x"}, lost, {"event": "boot", "boot": 1}):
        vm.events.put(dict(event))
    boot = vm.wait_for("boot", 5, seen.append, resets=1)
    assert (len(resets), boot["resets"]) == (1, 1)
    assert seen == [{"event": "step", "name": "x"}]          # lost-timer reports are not passed on
    vm.events.put(dict(lost))
    vm.events.put({"event": "done", "ok": True})
    assert vm.wait_for("done", 5)["resets"] == 0 and len(resets) == 1   # no resets unless asked
    vm.events.put(dict(lost))
    with pytest.raises(TimeoutError, match="no report from the guest"):
        vm.wait_boot(0.2)            # a reset restarts the wait, which then times out as before
    assert len(resets) == 2
