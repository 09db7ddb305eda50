"""The host-side pieces of snapshots and migration, without a guest (docs/migration.md): console
commands, the QEMU command line of a waiting / incoming VM, qcow2 overlays made by our QEMU, and
the ``pyhsm run`` options with their help text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyhsm.client import host_commands
from pyhsm.host import disks
from pyhsm.host.images import GuestImages
from pyhsm.host.vm import VmConfig, kernel_cmdline, qemu_argv


def _config(tmp_path: Path, **fields: object) -> VmConfig:
    images = GuestImages(tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "rootfs.ext4", "built")
    return VmConfig(images=images, hsm_socket=tmp_path / "hsm.sock", workdir=tmp_path, **fields)  # type: ignore[arg-type]


def test_console_commands_round_trip_and_ignore_noise() -> None:
    line = host_commands.format_command(host_commands.RUN, workload="sign")
    assert line.startswith("@host ")
    assert host_commands.parse_command(line) == {"cmd": "run", "workload": "sign"}
    assert host_commands.parse_command("echo: " + line) == {"cmd": "run", "workload": "sign"}
    assert host_commands.parse_command("@host not json") is None
    assert host_commands.parse_command('@host {"no": "cmd"}') is None
    assert host_commands.parse_command("plain text") is None


def test_read_command_skips_other_lines_and_times_out(tmp_path: Path) -> None:
    path = tmp_path / "console"
    path.write_text("noise\n" + host_commands.format_command("go", note="x") + "\n")
    with open(path) as stream:
        assert host_commands.read_command(stream, 5, "go")["note"] == "x"
    path.write_text("noise\n")
    with open(path) as stream, pytest.raises(TimeoutError, match="'go'"):
        host_commands.read_command(stream, 0.3, "go")


def test_waiting_incoming_vm_command_line(tmp_path: Path) -> None:
    config = _config(tmp_path, agent_wait=True, incoming=True, disk=tmp_path / "d.qcow2",
                     vmgenid="auto", res_cnt=2)
    assert "pyhsm.wait=1" in kernel_cmdline(config).split()
    argv = qemu_argv(config)
    assert argv[argv.index("-incoming") + 1] == "defer"
    assert f"file={tmp_path / 'd.qcow2'},format=qcow2,if=none,id=root,discard=unmap" in argv
    assert "vmgenid,id=vmgenid0,guid=auto" in argv
    assert any(a.startswith("azihsm,") and "res-cnt=2" in a for a in argv)
    plain = qemu_argv(_config(tmp_path))
    assert "-incoming" not in plain and not any("vmgenid" in a for a in plain)
    assert any("snapshot=on" in a for a in plain)
    assert "pyhsm.wait=1" not in kernel_cmdline(_config(tmp_path)).split()


def test_overlay_made_by_our_qemu_has_the_base_as_backing_file(tmp_path: Path, qemu_binary: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(bytes(1 << 20))
    overlay = disks.create_overlay(base, tmp_path / "o.qcow2", qemu_binary)
    assert disks.image_format(overlay) == "qcow2" and disks.virtual_size(overlay) == 1 << 20
    assert str(base.resolve()).encode() in overlay.read_bytes()[:4096]
    second = disks.create_overlay(overlay, tmp_path / "o2.qcow2", qemu_binary)
    assert disks.virtual_size(second) == 1 << 20 and b"qcow2" in second.read_bytes()[:4096]


def test_run_options_have_help_text() -> None:
    out = subprocess.run([sys.executable, "-m", "pyhsm.cli", "run", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for option in ("--save-snapshot NAME", "--from-snapshot NAME", "--snapshot-dir DIR",
                   "--migrate {same,other-backend}"):
        assert option in out, option
    both = subprocess.run([sys.executable, "-m", "pyhsm.cli", "run", "--save-snapshot", "a",
                           "--from-snapshot", "a"], capture_output=True, text=True)
    assert both.returncode != 0 and "not allowed with" in both.stderr
