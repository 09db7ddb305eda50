"""The ``pyhsm run`` sub-command (registered by pyhsm.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyhsm.host.session import RunOptions, run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``pyhsm`` command line."""
    p = subparsers.add_parser(
        "run", help="boot an emulated V7 server and run the guest workload",
        description="Build the guest images if needed, start the HSM backend, boot QEMU (q35) with "
                    "the azihsm device, run the default workload in the guest (driver bound, "
                    "GetApiRev, GetDeviceInfo, credential, session, P-384 key, sign, attest), "
                    "verify the signature on the host, reset the machine, check the device again "
                    "and quit. Prints each step with its result and time; exits 0 only if all "
                    "passed.")
    p.add_argument("--cpus", type=int, default=2, help="guest vCPUs (default 2)")
    p.add_argument("--memory", type=int, default=1024, metavar="MIB",
                   help="guest memory in MiB (default 1024)")
    p.add_argument("--state", type=Path, default=None,
                   help="backend state directory, kept across runs (default: a fresh one in the "
                        "run's log directory)")
    p.add_argument("--guest-cmd", default=None, metavar="CMD",
                   help="shell command run in the guest after the workload; its exit status is a "
                        "step of the run")
    p.add_argument("--interactive", action="store_true",
                   help="keep the VM running after the workload with a root shell on the serial "
                        "console, which is a UNIX socket (the path and a socat line are printed)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also stream the guest console to the terminal")
    p.add_argument("--firmware", choices=["direct", "ovmf"], default="direct",
                   help="direct: QEMU loads the kernel (fastest); ovmf: boot through Debian's OVMF "
                        "UEFI firmware with a private copy of its variable store")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default="auto",
                   help="auto: KVM if a short probe boot under KVM works, else TCG (default); "
                        "kvm fails if the probe fails")
    p.add_argument("--serial", default="AZIHSM-VM0-0001",
                   help="the HSM's serial number; one backend partition per serial")
    p.add_argument("--workload", default="default",
                   help="guest workload (pyhsm.guest.workloads.NAME; default: default). "
                        "confidential / confidential_refusals: OVMF, a provisioned vTPM and a LUKS2 "
                        "data disk unlocked by an attested key release (docs/confidential.md)")
    p.add_argument("--no-reset", dest="reset", action="store_false",
                   help="skip the system_reset and the second boot after the workload")
    p.add_argument("--debug", action="store_true",
                   help="debugging run (docs/debugging.md): guest RAM in RUN/guest.mem for `pyhsm "
                        "inspect`, nokaslr, backend and device traces, HSM secrets for the leak "
                        "scan; keeps QEMU after the workload until Ctrl-C")
    p.add_argument("--gdb", type=int, default=None, metavar="PORT",
                   help="start QEMU's gdb stub on 127.0.0.1:PORT")
    snap = p.add_argument_group("snapshots and live migration (docs/migration.md)")
    modes = snap.add_mutually_exclusive_group()
    modes.add_argument("--save-snapshot", metavar="NAME", default=None,
                       help="boot with the guest agent waiting for a command (pyhsm.wait=1) on a qcow2 "
                            "overlay of the rootfs, and when it reports ready (azihsm loaded, HSM "
                            "idle) save memory (migration to a file) and disk as snapshot NAME, then "
                            "quit; no workload runs")
    modes.add_argument("--from-snapshot", metavar="NAME", default=None,
                       help="start from snapshot NAME instead of booting (a new disk overlay each "
                            "time, so every restore starts from the same point) and run --workload; "
                            "the HSM presents the state after a live migration (NSSR)")
    modes.add_argument("--migrate", choices=["same", "other-backend"], default=None,
                       help="run the migration workload and live-migrate the VM mid-workload to a "
                            "second QEMU over a UNIX socket: on the same backend, or on a second "
                            "backend with another serial (another physical HSM); reports downtime "
                            "and total time")
    snap.add_argument("--snapshot-dir", type=Path, default=None, metavar="DIR",
                      help="where snapshots are kept (default: $PYHSM_SNAPSHOTS or build/snapshots)")
    p.set_defaults(func=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    return run(RunOptions(cpus=args.cpus, memory_mb=args.memory, state=args.state,
                          guest_cmd=args.guest_cmd, interactive=args.interactive,
                          verbose=args.verbose, firmware=args.firmware, accel=args.accel,
                          serial=args.serial, workload=args.workload, reset=args.reset,
                          debug=args.debug, gdb_port=args.gdb,
                          save_snapshot=args.save_snapshot, from_snapshot=args.from_snapshot,
                          snapshot_dir=args.snapshot_dir, migrate=args.migrate))
