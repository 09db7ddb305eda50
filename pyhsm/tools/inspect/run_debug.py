"""What the debugging tools add to a ``pyhsm run``, in one place.

Always: a second QMP monitor, ``qmp-tools.sock`` in the run directory, for ``pyhsm qmp`` and
``pyhsm inspect --rings`` (a QMP socket serves one client at a time, and the launcher holds
``qmp.sock``).
``--debug``: guest RAM in the run directory's ``guest.mem`` (a shared memory-backend file that
``pyhsm inspect`` reads live), ``nokaslr`` for the guest kernel, the backend's trace and secrets
files, and QEMU's ``azihsm_*`` trace events with timestamps in ``device-trace.log``.
``--gdb PORT``: QEMU's gdb stub on 127.0.0.1:PORT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyhsm.tools.inspect.commands import MEMORY_FILE

BACKEND_TRACE = "trace.jsonl"
DEVICE_TRACE = "device-trace.log"
SECRETS = "secrets.jsonl"
TOOLS_QMP = "qmp-tools.sock"


@dataclass(frozen=True)
class DebugRun:
    run_dir: Path
    memory_mb: int
    memory_file: bool = True          # --debug
    gdb_port: int | None = None       # --gdb PORT

    @property
    def kernel_cmdline(self) -> str:
        return "nokaslr" if self.memory_file else ""

    def qemu_args(self) -> tuple[str, ...]:
        args = ["-qmp", f"unix:{self.run_dir / TOOLS_QMP},server=on,wait=off"]
        if self.memory_file:
            args += ["-object", f"memory-backend-file,id=guestmem,size={self.memory_mb}M,"
                                f"mem-path={self.run_dir / MEMORY_FILE},share=on",
                     "-machine", "memory-backend=guestmem",
                     "-trace", "enable=azihsm_*", "-D", str(self.run_dir / DEVICE_TRACE),
                     "-msg", "timestamp=on"]
        if self.gdb_port is not None:
            args += ["-gdb", f"tcp:127.0.0.1:{self.gdb_port}"]
        return tuple(args)

    def backend_args(self) -> tuple[str, ...]:
        if not self.memory_file:
            return ()
        return ("--trace", str(self.run_dir / BACKEND_TRACE),
                "--secrets-out", str(self.run_dir / SECRETS))

    def explain(self, out: Callable[[str], None]) -> None:
        """How to look at this run while it is kept."""
        run = self.run_dir
        if self.gdb_port is not None:
            out(f"gdb stub: gdb -ex 'target remote 127.0.0.1:{self.gdb_port}' "
                f"(module symbols: add-symbol-file build/images/azihsm.ko -s .text "
                f"$(cat /sys/module/azihsm/sections/.text in the guest))")
        if not self.memory_file:
            return
        out(f"guest memory: {run / MEMORY_FILE} (live; the kernel runs with nokaslr)")
        out(f"  pyhsm inspect {run} --ps | --dmesg | --rings")
        out(f"  kill -USR1 <backend pid>; pyhsm inspect {run} --scan-secrets {run / SECRETS}")
        out(f"traces: pyhsm trace {run / BACKEND_TRACE} --follow; "
            f"pyhsm trace {run / DEVICE_TRACE}")
        out(f"QMP: pyhsm qmp {run} hsm-state | dump FILE | <command> name=value ...")
        out("Ctrl-C stops the VM")
