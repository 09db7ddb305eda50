"""The debugging tools against one booted guest (TCG, ~40-60 s for the boot and default workload,
shared by every test here): ``pyhsm run --debug``'s wiring (memory file, nokaslr, traces, secrets),
process list and kernel log out of guest memory, ring decode against the backend's trace, the
device's QEMU trace, the leak scan (finds a planted canary, no HSM secret), libvmi's FILE driver,
and an offline dump."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pyhsm import paths
from pyhsm.host import images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.vm import BOOT_TIMEOUT_S, Vm, VmConfig
from pyhsm.protocol import secrets_file
from pyhsm.tools import qmp
from pyhsm.tools.inspect import profile, rings, scan
from pyhsm.tools.inspect.commands import MEMORY_FILE
from pyhsm.tools.inspect.kernel import Kernel
from pyhsm.tools.inspect.memory import PhysicalMemory
from pyhsm.tools.inspect.run_debug import BACKEND_TRACE, DEVICE_TRACE, SECRETS, DebugRun
from pyhsm.tools.trace.commands import read_lines, records

pytestmark = [pytest.mark.guest, pytest.mark.qemu, pytest.mark.timeout(480)]

CANARY_PROCESS = "hsm-canary"
READY = "CANARY-READY"


CANARY_PROGRAM = """
import ctypes, time
from pyhsm.client import HsmClient
from pyhsm.client.ioctl_transport import IoctlTransport
ctypes.CDLL(None).prctl(15, b"NAME", 0, 0, 0)
held = bytes.fromhex("HEX") * 2
client = HsmClient(IoctlTransport("/dev/azihsm0"))
print("READY", flush=True)
for _ in range(3000):
    try:
        client.get_api_rev()
    except Exception as exc:
        print("canary loop:", exc, flush=True)
    time.sleep(0.3)
"""


def _canary_command(canary: bytes) -> str:
    """A guest process named hsm-canary that holds ``canary`` (built at run time: the command line
    only carries its hex text) and sends a GetApiRev every 0.3 s until the VM is killed."""
    program = CANARY_PROGRAM.replace("NAME", CANARY_PROCESS).replace("HEX", canary.hex()) \
        .replace("READY", READY)
    return "python3 -c '" + program.replace("'", "") + "'"


def export_secrets(backend: BackendProcess, path: Path, timeout: float = 60.0) -> Path:
    """Ask the backend (``--secrets-out path``) for its secrets now (SIGUSR1); ``path`` once written."""
    os.kill(backend.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the backend wrote no secrets file"
        time.sleep(0.1)
    return path


def assert_only_the_canary_found(memory_file: Path, secrets: list[secrets_file.Secret],
                                 canary: bytes) -> None:
    """The leak scan of guest memory finds no secret but does find the planted canary (so it
    demonstrably reads that memory)."""
    with PhysicalMemory(memory_file) as memory:
        hits = scan.scan(memory, secrets + [secrets_file.Secret("canary", canary)])
    assert [h.label for h in hits if h.label != "canary"] == []
    assert any(h.label == "canary" for h in hits)


@pytest.fixture(scope="module")
def guest() -> Iterator[dict[str, Any]]:
    if not paths.qemu().exists():
        pytest.fail(f"{paths.qemu()} is missing: run `make qemu`")
    built = images.build(lambda line: None)
    if built.driver_status != "built":
        pytest.fail(f"the guest images carry no azihsm.ko ({built.driver_status})")
    run = Path(tempfile.mkdtemp(prefix="dbg-", dir="/tmp"))
    debug = DebugRun(run, memory_mb=1024)
    canary = os.urandom(32)
    backend = BackendProcess(run / "hsm.sock", run / "state", run / "backend.log",
                             extra_args=debug.backend_args())
    backend.start()
    config = VmConfig(images=built, hsm_socket=backend.socket, workdir=run, accel="tcg",
                      memory_mb=debug.memory_mb, guest_cmd=_canary_command(canary),
                      cmdline_extra=debug.kernel_cmdline, qemu_extra=debug.qemu_args())
    vm = Vm(config)
    try:
        vm.start()
        vm.wait_boot(BOOT_TIMEOUT_S["tcg"])
        steps: list[dict[str, Any]] = []
        deadline = time.monotonic() + BOOT_TIMEOUT_S["tcg"]
        while READY not in config.console_log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no {READY}: {vm.console_tail()}"
            while not vm.events.empty():
                event = vm.events.get()
                if event["event"] == "step":
                    steps.append(event)
                assert event["event"] not in ("done", "exit", "panic"), (event, vm.console_tail())
            time.sleep(0.5)
        assert steps and all(s["result"] == "ok" for s in steps), steps
        secrets_file = export_secrets(backend, run / SECRETS)
        yield {"run": run, "vm": vm, "canary": canary, "steps": steps, "backend": backend,
               "secrets": secrets_file, "memory": run / MEMORY_FILE}
    finally:
        vm.kill()
        backend.stop()
        shutil.rmtree(run, ignore_errors=True)


def test_debug_run_wiring(guest: dict[str, Any]) -> None:
    cmdline = (guest["run"] / "qemu.cmdline").read_text()
    assert "nokaslr" in cmdline and f"mem-path={guest['memory']}" in cmdline
    assert qmp.socket_path(guest["run"]).name == "qmp-tools.sock"
    assert guest["memory"].stat().st_size == 1024 << 20
    assert os.stat(guest["secrets"]).st_mode & 0o777 == 0o600


def test_process_list_shows_the_workload(guest: dict[str, Any]) -> None:
    with PhysicalMemory(guest["memory"]) as memory:
        procs = Kernel(memory, profile.load()).processes()
    names = {p.comm for p in procs}
    assert procs[0].pid == 0 and procs[0].comm == "swapper/0"
    assert CANARY_PROCESS in names, names
    assert "python3" in names                 # the guest agent, still running the guest command
    canary = next(p for p in procs if p.comm == CANARY_PROCESS)
    assert not canary.kernel_thread and canary.ppid > 1
    assert any(p.kernel_thread for p in procs) and 1 in {p.pid for p in procs}


def test_page_walk_agrees_with_the_direct_map(guest: dict[str, Any]) -> None:
    with PhysicalMemory(guest["memory"]) as memory:
        kernel = Kernel(memory, profile.load())
        task = kernel.u64(kernel.sym["init_task"] + kernel.off["task_struct.tasks"])   # a slab address
        for va in (task, task + 0x1234, kernel.sym["init_task"], kernel.sym["printk_rb_static"]):
            assert kernel.walk(va) == kernel.to_phys(va), hex(va)


def test_kernel_log_has_the_driver_lines(guest: dict[str, Any]) -> None:
    with PhysicalMemory(guest["memory"]) as memory:
        lines = list(Kernel(memory, profile.load()).dmesg())
    assert any("Linux version 6.1" in line for line in lines[:5]), lines[:5]
    assert any("azihsm" in line and "ready" in line for line in lines)


def _quiescent_state(client: Any) -> dict[str, Any]:
    """The device state once, with the vCPUs stopped, every submitted command has been fetched and
    answered: nothing in flight and every SQ's head at its tail, twice in a row. (A doorbell rung
    just before ``stop`` is still fetched and forwarded by the device afterwards.)"""
    deadline = time.monotonic() + 10
    previous = None
    while True:
        state = qmp.device_state(client)
        settled = not state["inflight"] and all(
            q.head == q.tail for q in rings.load_queues(state["queues"]) if q.kind == "sq")
        if settled and state == previous:
            return state
        assert time.monotonic() < deadline, state
        previous = state if settled else None
        time.sleep(0.05)


def test_rings_match_what_the_driver_submitted(guest: dict[str, Any]) -> None:
    client = qmp.connect(guest["run"])
    client.cmd("stop")
    try:
        state = _quiescent_state(client)
        with PhysicalMemory(guest["memory"]) as memory:
            decoded = rings.decode_rings(memory, rings.load_queues(state["queues"]))
        traced = [json.loads(line) for line in
                  (guest["run"] / BACKEND_TRACE).read_text().splitlines()]
    finally:
        client.cmd("cont")
        client.close()
    assert state["link-state"] == "up"
    assert {q["format"] for q in decoded} == {"admin", "hsm", "aes"}, decoded
    sq1 = next(q for q in decoded if q["kind"] == "sq" and q["qid"] == 1)
    cq1 = next(q for q in decoded if q["kind"] == "cq" and q["qid"] == 1)
    commands = [r for r in traced if r["event"] == "command"]
    assert commands and len(sq1["entries"]) == min(len(commands), sq1["size"]), (sq1, len(commands))
    recent = commands[-len(sq1["entries"]):]
    seen = {"sq": sq1, "cq": cq1, "trace": [(r["op"], r["request_bytes"], r["response_bytes"],
                                             r["status"]) for r in recent]}
    assert [(e["src_len"], e["session_op"]) for e in sq1["entries"]] == \
        [(r["request_bytes"], r["session_op"]) for r in recent], seen
    assert [e["byte_count"] for e in cq1["entries"]] == [r["response_bytes"] for r in recent], seen
    assert all(e["state"] == "done" for e in sq1["entries"])
    assert {r["op"] for r in commands} >= {"GetApiRev", "OpenSession", "EccSign", "AttestKey",
                                            "CloseSession"}


def test_device_trace_pairs_every_command(guest: dict[str, Any]) -> None:
    with open(guest["run"] / DEVICE_TRACE, errors="replace") as log:
        device = list(records(read_lines(log, follow=False)))
    admin = [r for r in device if r["event"] == "admin"]
    hsm = [r for r in device if r["event"] == "command"]
    backend = [json.loads(line) for line in (guest["run"] / BACKEND_TRACE).read_text().splitlines()]
    assert {"Identify", "CreateCq", "CreateSq", "SetFeatures"} <= {r["op"] for r in admin}
    assert abs(len(hsm) - len([r for r in backend if r["event"] == "command"])) <= 1  # one may be on its way
    assert all(r["status"] == 0 and r["latency_us"] > 0 for r in hsm)


def test_leak_scan_finds_the_canary_and_no_hsm_secret(guest: dict[str, Any]) -> None:
    secrets = secrets_file.load_secrets(guest["secrets"])
    assert len(secrets) >= 5
    assert_only_the_canary_found(guest["memory"], secrets, guest["canary"])


def test_libvmi_file_driver_reads_the_same_memory(guest: dict[str, Any]) -> None:
    from libvmi import INIT_DOMAINNAME, Libvmi, VMIMode
    with PhysicalMemory(guest["memory"]) as memory:
        kernel = Kernel(memory, profile.load())
        comm = kernel.sym["init_task"] + kernel.off["task_struct.comm"]
        phys = kernel.to_phys(comm)
        ours = memory.read(phys, 16)
    with Libvmi(str(guest["memory"]), INIT_DOMAINNAME, mode=VMIMode.FILE, partial=True) as vmi:
        assert vmi.get_memsize() == 1024 << 20
        theirs, count = vmi.read_pa(phys, 16)
    assert count == 16 and theirs == ours and ours.startswith(b"swapper/0")


def test_offline_dump_inspects_like_the_live_memory(guest: dict[str, Any]) -> None:
    dump = guest["run"] / "dump.elf"
    client = qmp.connect(guest["run"])
    try:
        qmp.dump_memory(client, dump)
        assert client.cmd("query-status")["status"] == "running"
    finally:
        client.close()
    out = subprocess.run([str(paths.build() / "venv" / "bin" / "pyhsm"), "inspect",
                          str(dump), "--ps", "--rings", "--scan-hex", guest["canary"].hex(),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr      # 3: something was found (the canary)
    result = json.loads(out.stdout)
    assert CANARY_PROCESS in {p["comm"] for p in result["processes"]}
    assert any(q["kind"] == "sq" and q["qid"] == 1 and q["entries"] for q in result["rings"])
    assert result["scan"]["hits"]
    dump.unlink()


def test_hung_command_is_seen_in_place(guest: dict[str, Any]) -> None:
    """With the backend stopped, the canary's next GetApiRev hangs in the device: pausing the VM
    before the device's 2 s timeout shows it ``in flight`` in the ring, request decoded."""
    pid = guest["backend"].pid
    client = qmp.connect(guest["run"])
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while not client.cmd("qom-get", path=qmp.HSM_PATH, property="inflight"):
            assert time.monotonic() < deadline, "no command reached the device"
            time.sleep(0.02)
        client.cmd("stop")
        state = qmp.device_state(client)
        with PhysicalMemory(guest["memory"]) as memory:
            decoded = rings.decode_rings(memory, rings.load_queues(state["queues"]))
    finally:
        client.cmd("cont")
        client.close()
        os.kill(pid, signal.SIGCONT)
    sq1 = next(q for q in decoded if q["kind"] == "sq" and q["qid"] == 1)
    hung = [e for e in sq1["entries"] if e["state"] == "in flight"]
    assert state["inflight"] == 1 and sq1["inflight"] == 1 and len(hung) == 1, sq1
    assert hung[0]["request"]["op"] == "GetApiRev" and hung[0]["session_op"] == "NONE"
