"""Benchmark: GetApiRev round trips, backend socket alone vs through the azihsm device (qtest), with
TPM2_GetRandom through QEMU's tpm-crb and swtpm as the anchor, all measured in the same run.

Run: ``build/venv/bin/python -m tests.bench.bench_device [--count N]`` (or as a script). Each path is
driven the same way: one synchronous command at a time, timed from issuing the command until its
response bytes are read back; medians and 99th percentiles over ``--count`` commands after a warm-up.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyhsm.host.backend import BackendProcess  # noqa: E402
from pyhsm.host.sockets import wait_listening  # noqa: E402
from pyhsm.protocol import link  # noqa: E402
from pyhsm.testing.qtest.controller import open_controller  # noqa: E402
from pyhsm.testing.qtest.machine import Machine, hsm_device_args  # noqa: E402

GET_API_REV = bytes.fromhex("A2 18 00 A1 18 02 1A 00 00 03 EA 18 01 A0")  # the vendor encoder's GetApiRev example (docs/ddi.md, "MBOR strictness")
WARM_UP = 100

# TPM CRB interface of QEMU's tpm-crb (locality 0 registers at the fixed base)
CRB_BASE = 0xFED4_0000
CRB_LOC_STATE, CRB_LOC_CTRL, CRB_LOC_STS = 0x00, 0x08, 0x0C
CRB_CTRL_REQ, CRB_CTRL_STS, CRB_CTRL_START, CRB_DATA = 0x40, 0x44, 0x4C, 0x80
LOC_STATE_ASSIGNED, LOC_STATE_VALID = 1 << 1, 1 << 7
TPM2_STARTUP_CLEAR = bytes.fromhex("8001 0000000C 00000144 0000")
TPM2_GET_RANDOM_16 = bytes.fromhex("8001 0000000C 0000017B 0010")


@dataclass(frozen=True)
class Timing:
    name: str
    samples_ns: list[int]

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1000

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.samples_ns)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 1000


def measure(name: str, once: Callable[[], None], count: int) -> Timing:
    for _ in range(WARM_UP):
        once()
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        once()
        samples.append(time.perf_counter_ns() - start)
    return Timing(name, samples)


# ---- path 1: the backend socket, no QEMU ---------------------------------------------------------------
class LinkClient:
    """Speaks the device side of the link protocol directly to the backend."""

    def __init__(self, path: Path, serial: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")
        self.msg_id = 0
        ack = self.exchange(link.Hello.make(serial))
        if not isinstance(ack, link.HelloAck) or ack.result != link.HelloAck.ACCEPTED:
            raise RuntimeError(f"backend refused HELLO: {ack}")

    def exchange(self, message: link.Message) -> link.Message:
        self.msg_id += 1
        self.sock.sendall(link.encode_frame(self.msg_id, message))
        header = self.reader.read(link.HEADER.size)
        _, msg_id, body_len = link.decode_header(header)
        return link.decode_frame(header + self.reader.read(body_len))[1]

    def get_api_rev(self) -> None:
        answer = self.exchange(link.Request(1, 0, 0, 0, 0, link.MAX_PAYLOAD, GET_API_REV))
        assert isinstance(answer, link.Response) and answer.status == 0, answer

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


# ---- path 3: the TPM anchor --------------------------------------------------------------------------
class CrbTpm:
    """TPM2 commands through the tpm-crb register interface, driven over qtest like the HSM device."""

    def __init__(self, machine: Machine) -> None:
        self.qt = machine.qtest
        self.qt.writel(CRB_BASE + CRB_LOC_CTRL, 1)  # request locality 0
        deadline = time.monotonic() + 5
        want = LOC_STATE_ASSIGNED | LOC_STATE_VALID
        while self.qt.readl(CRB_BASE + CRB_LOC_STATE) & want != want:
            if time.monotonic() > deadline:
                raise RuntimeError("tpm-crb did not grant locality 0")
        self.qt.writel(CRB_BASE + CRB_CTRL_REQ, 1)  # cmdReady

    def command(self, cmd: bytes) -> bytes:
        self.qt.write(CRB_BASE + CRB_DATA, cmd)
        self.qt.writel(CRB_BASE + CRB_CTRL_START, 1)
        deadline = time.monotonic() + 10
        while self.qt.readl(CRB_BASE + CRB_CTRL_START) & 1:
            if time.monotonic() > deadline:
                raise RuntimeError("TPM command did not complete")
        header = self.qt.read(CRB_BASE + CRB_DATA, 10)
        size = int.from_bytes(header[2:6], "big")
        return header + self.qt.read(CRB_BASE + CRB_DATA + 10, size - 10)

    def get_random(self) -> None:
        response = self.command(TPM2_GET_RANDOM_16)
        assert response[6:10] == bytes(4) and len(response) == 12 + 16, response.hex()


def swtpm(workdir: Path) -> tuple[subprocess.Popen, Path]:
    if not shutil.which("swtpm"):
        raise RuntimeError("swtpm is not installed (Debian package swtpm); it is the benchmark's anchor")
    state, ctrl = workdir / "tpm", workdir / "swtpm.ctrl"
    state.mkdir()
    process = subprocess.Popen(["swtpm", "socket", "--tpm2", "--ctrl", f"type=unixio,path={ctrl}",
                                "--tpmstate", f"dir={state}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    if not wait_listening(ctrl, process, 10):
        raise RuntimeError("swtpm did not open its control socket")
    return process, ctrl


def run(count: int) -> list[Timing]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    tpm_process = None
    try:
        with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
            direct = LinkClient(backend.socket, "AZIHSM-BENCH-DIRECT")
            try:
                backend_timing = measure("backend socket, GetApiRev", direct.get_api_rev, count)
            finally:
                direct.close()
            with Machine(hsm_device_args(backend.socket, serial="AZIHSM-BENCH-QTEST")) as machine:
                ctrl = open_controller(machine.qtest)
                ctrl.probe()
                deadline = time.monotonic() + 15
                while ctrl.hsm(GET_API_REV).cqe.status == link.Status.BACKEND_UNAVAILABLE:
                    if time.monotonic() > deadline:
                        raise RuntimeError("device link to the backend did not come up")

                def device_round_trip() -> None:
                    result = ctrl.hsm(GET_API_REV)
                    assert result.cqe.status == 0 and result.cqe.byte_count == 58, result.cqe

                device_timing = measure("azihsm device via qtest, GetApiRev", device_round_trip, count)
                vs = ctrl.regs + 0x08
                qtest_timing = measure("(one qtest register read, for scale)",
                                       lambda: machine.qtest.readl(vs), count)
        tpm_process, tpm_ctrl = swtpm(workdir)
        with Machine(["-chardev", f"socket,id=chrtpm,path={tpm_ctrl}",
                      "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]) as machine:
            tpm = CrbTpm(machine)
            startup = tpm.command(TPM2_STARTUP_CLEAR)
            if startup[6:10] not in (bytes(4), bytes.fromhex("00000100")):  # success or already initialised
                raise RuntimeError(f"TPM2_Startup failed: {startup.hex()}")
            tpm_timing = measure("tpm-crb + swtpm via qtest, TPM2_GetRandom", tpm.get_random, count)
        return [backend_timing, device_timing, tpm_timing, qtest_timing]
    finally:
        if tpm_process is not None:
            tpm_process.terminate()
            tpm_process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def report(timings: list[Timing], count: int) -> str:
    backend, device, tpm, _ = timings
    lines = [f"azihsm device benchmark: {count} commands per path, one at a time, {WARM_UP} warm-up",
             f"{'path':44} {'median us':>10} {'p99 us':>10}"]
    lines += [f"{t.name:44} {t.median_us:10.1f} {t.p99_us:10.1f}" for t in timings]
    lines += [
        f"{'ratio device / backend (median, p99)':44} {device.median_us / backend.median_us:10.2f} "
        f"{device.p99_us / backend.p99_us:10.2f}",
        f"{'ratio device / TPM anchor (median, p99)':44} {device.median_us / tpm.median_us:10.2f} "
        f"{device.p99_us / tpm.p99_us:10.2f}",
        f"goal (device no slower than the TPM path, median): "
        f"{'met' if device.median_us <= tpm.median_us else 'NOT met'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="timed commands per path (default 2000)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be positive")
    print(report(run(args.count), args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
