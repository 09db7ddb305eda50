"""``pyhsm spdm``: SPDM attestation of an HSM over its serial mailbox, with every check printed."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyhsm.client.serialbus.mailbox import DEFAULT_ADDRESS, Mailbox, MailboxError
from pyhsm.client.serialbus.requester import Attestation, MctpRequester, ProtocolError, attest
from pyhsm.protocol.dice.firmware import STAGES, load_stage
from pyhsm.protocol.dice.verify import VerificationError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "spdm", help="attest an HSM over its serial mailbox (SPDM 1.2)",
        description="Run SPDM 1.2 from GET_VERSION to signed GET_MEASUREMENTS against an HSM's serial "
                    "mailbox (docs/serial-mailbox.md), verify the certificate chain (as verify-chain "
                    "does), the CHALLENGE_AUTH and MEASUREMENTS signatures, and the measurements "
                    "against the chain and, with --firmware, the reference firmware. Exit 0 when all "
                    "checks pass, 1 otherwise.")
    p.add_argument("--bus", type=int, required=True, help="the I2C bus number N of /dev/i2c-N (smbus2)")
    p.add_argument("--address", type=lambda s: int(s, 0), default=DEFAULT_ADDRESS,
                   help=f"the mailbox's 7-bit address (default 0x{DEFAULT_ADDRESS:02x})")
    p.add_argument("--firmware", type=Path, default=None,
                   help="directory of the reference HSM firmware stages (rom.fw, bootloader.fw, runtime.fw)")
    p.set_defaults(func=_spdm_command)


def _spdm_command(args: argparse.Namespace) -> int:
    from pyhsm.client.i2c_transport import open_i2c
    firmware = [load_stage(args.firmware, name) for name in STAGES] if args.firmware else None
    mctp = MctpRequester(Mailbox(open_i2c(args.bus), args.address))
    started = time.perf_counter()
    try:
        result = attest(mctp, firmware)
    except (MailboxError, ProtocolError, VerificationError, TimeoutError, OSError) as exc:
        print(f"pyhsm spdm: FAILED: {exc}", file=sys.stderr)
        return 1
    print_attestation(result, time.perf_counter() - started)
    return 0


def print_attestation(result: Attestation, seconds: float) -> None:
    """The checks made and the measurements, one per line."""
    for check in result.checks:
        print(f"ok  {check}")
    for index, digest in sorted(result.measurements.items()):
        print(f"    measurement {index}: sha384 {digest.hex()}")
    print(f"attested in {seconds * 1000:.0f} ms")
