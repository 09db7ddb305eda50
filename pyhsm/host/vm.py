"""One emulated V7 server: QEMU (q35) with the azihsm device behind a PCIe root port, driven by QMP.

The guest console is QEMU's stdout (or a UNIX socket when interactive); every console line goes to
the console log and, parsed by ``console.parse_line``, report events go to a queue the caller waits on.
"""

from __future__ import annotations

import base64
import logging
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qemu.qmp.legacy import QEMUMonitorProtocol

from pyhsm import paths
from pyhsm.host.images import GuestImages
from pyhsm.host.qemu_devices import device_argv, hsm_device, mailbox_device, socket_chardev_argv
from pyhsm.host.sockets import wait_listening
from pyhsm.protocol import console

log = logging.getLogger("pyhsm.host.vm")
HSM_VENDOR, HSM_DEVICE = 0x1414, 0xC003
HSM_ID = "hsm0"          # QOM id of the azihsm device (QMP path /machine/peripheral/hsm0)
HSM_PORT = "hsmport"     # the pcie-root-port it sits on (hot-pluggable)
MAILBOX_ID = "mbx0"      # QOM id of the HSM's serial mailbox (azihsm-i2c on the ICH9 SMBus)
KERNEL_PANIC = "Kernel panic - not syncing"
# The guest kernel's report that a timer it armed on a vCPU never fired. Under TCG, a 2-vCPU guest on a
# loaded 2-core host has been seen, rarely, to lose a vCPU's timer this way early in boot and never
# recover (docs/running.md, "A vCPU that loses its timer at boot").
LOST_TIMER = "kthread timer wakeup didn't happen"
BOOT_RESETS = 1          # how many times a boot that lost a timer is reset before it counts as failed
BOOT_TIMEOUT_S = {"kvm": 60.0, "tcg": 300.0}   # QEMU start to the guest agent's first report
WORKLOAD_TIMEOUT_S = 600.0                     # the guest agent's workload, to its "done"


@dataclass(frozen=True)
class VmConfig:
    images: GuestImages
    hsm_socket: Path
    workdir: Path                       # QMP socket, console log, OVMF variable store
    accel: str = "tcg"                  # "tcg" or "kvm"
    cpus: int = 2
    memory_mb: int = 1024
    firmware: str = "direct"            # "direct" (-kernel) or "ovmf" (through Debian's OVMF)
    serial: str = "AZIHSM-VM0-0001"
    workload: str = "default"
    after_reset_workload: str = "reset_check"
    guest_cmd: str | None = None
    interactive: bool = False           # console on workdir/console.sock; a shell after the workload
    tpm_socket: Path | None = None      # swtpm control socket: adds a tpm-crb TPM 2.0
    data_disk: Path | None = None       # a raw image attached as the second virtio disk (/dev/vdb)
    cmdline_extra: str = ""             # appended to the kernel command line
    qemu_extra: tuple[str, ...] = ()    # appended to the QEMU command line (pyhsm run --debug/--gdb)
    console_input: bool = False         # the host may write lines to the guest console (send_console)
    verity: bool = False                # root read-only through dm-verity (images.verity on the cmdline)
    disk: Path | None = None            # a qcow2 overlay of the rootfs, written in place (snapshots,
                                        # migration: the disk state travels with the memory state)
    incoming: bool = False              # -incoming defer: wait for migrate-incoming (pyhsm.host.migration)
    agent_wait: bool = False            # pyhsm.wait=1: the agent reports ready and waits for `run`
    res_cnt: int | None = None          # the HSM's res-cnt property (None: the device's default)
    vmgenid: str | None = None          # a vmgenid device with this GUID ("auto": new per QEMU process,
                                        # so a restored guest reseeds its RNG; docs/migration.md)
    qemu: Path = field(default_factory=paths.qemu)

    @property
    def qmp_socket(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def console_socket(self) -> Path:
        return self.workdir / "console.sock"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"


def kernel_cmdline(config: VmConfig) -> str:
    """Short and quiet: the console, the root disk (writable, or read-only through dm-verity with
    the tree's root hash, salt and size: ``pyhsm.verity=``), and the guest agent's pyhsm.*
    parameters. Raises ``ValueError`` for a verity VM whose images carry no hash tree."""
    if config.verity and not config.images.verity:
        raise ValueError(f"{config.images.rootfs} has no dm-verity description (rootfs.verity)")
    root = ["ro", f"pyhsm.verity={config.images.verity}"] if config.verity else ["rw"]
    words = ["console=ttyS0", "quiet", "loglevel=4", "root=/dev/vda", *root, "panic=0",
             "tsc=reliable", f"pyhsm.workload={config.workload}",
             f"pyhsm.after-reset={config.after_reset_workload}",
             f"pyhsm.after={'shell' if config.interactive else 'poweroff'}"]
    if config.agent_wait:
        words.append("pyhsm.wait=1")
    if config.cmdline_extra:
        words.append(config.cmdline_extra)
    if config.guest_cmd:
        words.append("pyhsm.cmd=" + base64.b64encode(config.guest_cmd.encode()).decode())
    return " ".join(words)


def hsm_device_props(config: VmConfig) -> dict[str, str]:
    """The ``device_add`` properties of the HSM (also used to hot-plug it back)."""
    return hsm_device(HSM_ID, "hsmlink", bus=HSM_PORT, serial=config.serial, res_cnt=config.res_cnt)


def qemu_argv(config: VmConfig) -> list[str]:
    """The QEMU command line for ``config``."""
    console = (f"socket,id=con,path={config.console_socket},server=on,wait=off"
               if config.interactive else "stdio,id=con,signal=off")
    argv = [str(config.qemu), "-nodefaults", "-no-user-config", "-display", "none",
            "-L", str(paths.qemu_firmware()),
            "-machine", "q35", "-accel", config.accel,
            "-cpu", "host" if config.accel == "kvm" else "max",
            "-smp", str(config.cpus), "-m", f"{config.memory_mb}M",
            "-no-shutdown",   # a guest power-off stops the VM; the launcher resets or quits it
            "-kernel", str(config.images.kernel), "-initrd", str(config.images.initramfs),
            "-append", kernel_cmdline(config),
            "-drive", (f"file={config.disk},format=qcow2,if=none,id=root,discard=unmap"
                       if config.disk else
                       f"file={config.images.rootfs},format=raw,if=none,id=root,snapshot=on"),
            "-device", "virtio-blk-pci,drive=root",
            "-chardev", console, "-serial", "chardev:con",
            "-qmp", f"unix:{config.qmp_socket},server=on,wait=off",
            *socket_chardev_argv("hsmlink", config.hsm_socket, 500),
            "-device", f"pcie-root-port,id={HSM_PORT},chassis=1,slot=1",
            *device_argv(hsm_device_props(config)),
            *socket_chardev_argv("mbxlink", config.hsm_socket, 500),
            *device_argv(mailbox_device(MAILBOX_ID, "mbxlink", serial=config.serial))]
    if config.data_disk:
        argv += ["-drive", f"file={config.data_disk},format=raw,if=none,id=data",
                 "-device", "virtio-blk-pci,drive=data"]
    if config.tpm_socket:
        argv += ["-chardev", f"socket,id=tpmctrl,path={config.tpm_socket}",
                 "-tpmdev", "emulator,id=tpm0,chardev=tpmctrl", "-device", "tpm-crb,tpmdev=tpm0"]
    if config.firmware == "ovmf":
        variables = config.workdir / "OVMF_VARS_4M.fd"
        shutil.copyfile(paths.OVMF_VARS, variables)
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={paths.OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
    if config.vmgenid:
        argv += ["-device", f"vmgenid,id=vmgenid0,guid={config.vmgenid}"]
    if config.incoming:
        argv += ["-incoming", "defer"]
    argv += config.qemu_extra
    return argv


@dataclass
class Vm:
    """A running QEMU for ``config``. Use as a context manager; exiting kills what is left."""

    config: VmConfig
    echo: Callable[[str], None] | None = None     # called with every console line (for -v)
    events: "queue.Queue[dict[str, Any]]" = field(default_factory=queue.Queue)
    started_at: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _qmp: QEMUMonitorProtocol | None = None

    def start(self) -> None:
        """Start QEMU and connect QMP; raises ``RuntimeError`` with QEMU's stderr if it dies."""
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (self.config.qmp_socket, self.config.console_socket):
            stale.unlink(missing_ok=True)
        argv = qemu_argv(self.config)
        (self.config.workdir / "qemu.cmdline").write_text(" ".join(argv) + "\n")
        self.started_at = time.monotonic()
        with open(self.config.workdir / "qemu.stderr", "wb") as stderr:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if self.config.console_input else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=stderr)
        threading.Thread(target=self._read_console, daemon=True).start()
        if not wait_listening(self.config.qmp_socket, self._proc, 30):
            raise RuntimeError(f"QEMU did not start: {self.stderr_text()}")
        self._qmp = QEMUMonitorProtocol(str(self.config.qmp_socket))
        self._qmp.connect()

    def send_console(self, line: str) -> None:
        """Type one line on the guest's serial console (``console_input`` VMs only)."""
        assert self._proc and self._proc.stdin, "VM started without console_input"
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def stderr_text(self) -> str:
        return (self.config.workdir / "qemu.stderr").read_text(errors="replace").strip()

    def _read_console(self) -> None:
        assert self._proc and self._proc.stdout
        with open(self.config.console_log, "ab") as log:
            for raw in self._proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\r\n")
                if self.echo:
                    self.echo(line)
                event = console.parse_line(line)
                if event is None and KERNEL_PANIC in line:
                    event = {"event": "panic", "line": line}
                if event is None and LOST_TIMER in line:
                    event = {"event": "lost-timer", "line": line}
                if event is not None:
                    event["at_s"] = time.monotonic() - self.started_at
                    self.events.put(event)
        self.events.put({"event": "exit", "at_s": time.monotonic() - self.started_at})

    def next_event(self, timeout: float) -> dict[str, Any]:
        """The next report event; raises ``TimeoutError`` or ``RuntimeError`` (panic, QEMU exit)."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no report from the guest within {timeout:.0f} s; "
                               f"console: {self.console_tail()}") from None
        if event["event"] == "panic":
            raise RuntimeError(f"guest kernel panic: {event['line']}; console: {self.console_tail()}")
        if event["event"] == "exit":
            raise RuntimeError(f"QEMU exited (status {self._proc.wait() if self._proc else '?'}): "
                               f"{self.stderr_text()}; console: {self.console_tail()}")
        return event

    def wait_for(self, kind: str, timeout: float,
                 seen: Callable[[dict[str, Any]], None] | None = None, resets: int = 0) -> dict[str, Any]:
        """Wait for the next event of ``kind``, passing the events before it to ``seen``; raises
        ``RuntimeError`` if the guest powers off first. Only while waiting for the guest's first
        report: ``resets`` is how many times a guest kernel that reports a lost vCPU timer
        (``LOST_TIMER``) is reset through QMP, each time with a fresh ``timeout`` and a warning
        logged; the returned event's ``resets`` says how many were needed."""
        deadline = time.monotonic() + timeout
        done = 0
        while True:
            event = self.next_event(max(0.0, deadline - time.monotonic()))
            if event["event"] == kind:
                event["resets"] = done
                return event
            if event["event"] == "poweroff":
                raise RuntimeError(f"the guest powered off before reporting {kind!r}; "
                                   f"console: {self.console_tail()}")
            if event["event"] == "lost-timer":
                if done < resets:
                    done += 1
                    log.warning("%s: the guest kernel lost a vCPU timer before reporting %r (%s); "
                                "resetting the machine (%d of %d)", self.config.workdir.name, kind,
                                event["line"].strip(), done, resets)
                    self.reset()
                    deadline = time.monotonic() + timeout
            elif seen:
                seen(event)

    def wait_boot(self, timeout: float) -> dict[str, Any]:
        """Wait for the guest agent's ``boot`` event (``boot`` count, ``uptime_s``, ``at_s``,
        ``resets``), resetting a boot that lost a vCPU timer up to ``BOOT_RESETS`` times."""
        return self.wait_for("boot", timeout, resets=BOOT_RESETS)

    def console_tail(self, lines: int = 12) -> str:
        try:
            text = self.config.console_log.read_text(errors="replace")
        except OSError:
            return "(no console output)"
        return " | ".join(text.splitlines()[-lines:]) or "(no console output)"

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command; raises ``qemu.qmp.QMPError`` subclasses on failure."""
        assert self._qmp, "VM not started"
        return self._qmp.cmd(command, **arguments)

    def hsm_functions(self) -> list[dict[str, Any]]:
        """The HSM functions on the guest's PCI buses (query-pci, behind bridges too)."""
        found = []

        def walk(devices: list[dict[str, Any]]) -> None:
            for device in devices:
                ident = device.get("id", {})
                if (ident.get("vendor"), ident.get("device")) == (HSM_VENDOR, HSM_DEVICE):
                    found.append(device)
                walk(device.get("pci_bridge", {}).get("devices", []))
        for bus in self.qmp("query-pci"):
            walk(bus["devices"])
        return found

    def wait_powered_off(self, timeout: float = 60.0) -> None:
        """Wait for the guest agent's ``poweroff`` report, then until the machine has stopped (QEMU
        runs with -no-shutdown, so it stays); each wait up to ``timeout``."""
        self.wait_for("poweroff", timeout)
        deadline = time.monotonic() + timeout
        while self.qmp("query-status")["status"] != "shutdown":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest did not power off within {timeout:.0f} s")
            time.sleep(0.2)

    def reset(self) -> None:
        """Reset the machine (QMP system_reset) and let it run again."""
        self.qmp("system_reset")
        if self.qmp("query-status")["status"] != "running":
            self.qmp("cont")

    def quit(self, timeout: float = 20.0) -> int:
        """QMP quit; returns QEMU's exit status."""
        assert self._proc
        try:
            self.qmp("quit")
        except Exception:  # QEMU may already be gone; the exit status below tells
            pass
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._qmp:
            try:
                self._qmp.close()
            except (EOFError, OSError):  # QEMU already gone (after quit): nothing left to close
                pass
            self._qmp = None
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "Vm":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
