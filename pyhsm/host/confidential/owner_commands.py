"""``pyhsm cvm ...``: the owner/fabric's host tooling for confidential VMs (docs/vendor-ops.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.protocol.cvm import owner, pcr
from pyhsm.protocol.cvm.tpm2 import HASH_BY_NAME


def register(subparsers: argparse._SubParsersAction) -> None:
    cvm = subparsers.add_parser("cvm", help="confidential-VM owner tooling: owner key, vTPMs, policies",
                                description="Owner/fabric commands for the HSM's confidential-VM key release.")
    sub = cvm.add_subparsers(dest="cvm_command", required=True, metavar="CVM_COMMAND")

    p = sub.add_parser("owner-key", help="create a P-384 owner key (PEM, mode 0600)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_owner_key)

    p = sub.add_parser("provision-vtpm", help="manufacture a swtpm state with EK certificate and persistent AK")
    p.add_argument("--state", type=Path, required=True, help="swtpm state directory (created)")
    p.add_argument("--ak", choices=["ecc", "rsa"], default="ecc", help="AK type (default ecc: P-256 ECDSA)")
    p.add_argument("--out-dir", type=Path, required=True, help="where ek.pub and ak.pub (TPM2B_PUBLIC) go")
    p.set_defaults(func=_provision_vtpm)

    p = sub.add_parser("predict-pcr", help="PCR value after extending digests of measured files or given digests")
    p.add_argument("--bank", choices=sorted(HASH_BY_NAME), default="sha256")
    p.add_argument("--file", type=Path, action="append", default=[], help="measure this file (its digest)")
    p.add_argument("--digest", action="append", default=[], help="extend this hex digest")
    p.set_defaults(func=_predict_pcr)

    for name, helptext, func in (("set-owner", "register the owner key (once, at provisioning)", _set_owner),
                                 ("register-vm", "register a VM's vTPM EK and AK", _register_vm),
                                 ("set-policy", "set a workload's key-release policy", _set_policy),
                                 ("submit", "send a signed owner command file (from --emit)", _submit),
                                 ("info", "owner state: owner set, last seq, counts", _info)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--socket", type=Path, help="pyhsm serve's socket (required unless --emit)")
        p.add_argument("--serial", default="AZIHSM-DEV-0001", help="device serial of the partition's state")
        p.add_argument("--partition", type=int, default=0)
        p.add_argument("--app-id", help="partition credential id (32 hex digits)")
        p.add_argument("--pin", help="partition credential PIN (32 hex digits)")
        if name in ("set-owner", "register-vm", "set-policy"):
            p.add_argument("--owner", type=Path, required=True, help="owner key PEM (from owner-key)")
        if name in ("register-vm", "set-policy"):
            p.add_argument("--emit", type=Path, help="write the signed command to this file instead of sending "
                                                      "it (for relay by the guest agent); needs --seq")
            p.add_argument("--seq", type=int, help="owner sequence number (default: last accepted + 1)")
        if name == "submit":
            p.add_argument("--command", type=Path, required=True, help="signed owner command file")
        p.set_defaults(func=func)
        if name == "register-vm":
            p.add_argument("--vm-id", required=True)
            p.add_argument("--ek", type=Path, required=True, help="EK TPM2B_PUBLIC (tpm2_createek -u)")
            p.add_argument("--ak", type=Path, required=True, help="AK TPM2B_PUBLIC (tpm2_createak -u)")
        if name == "set-policy":
            p.add_argument("--workload", required=True)
            p.add_argument("--vm-id", default="", help="bind to this VM (default: any registered VM)")
            p.add_argument("--bank", choices=sorted(HASH_BY_NAME), default="sha256")
            p.add_argument("--pcrs", required=True, help="comma-separated PCR indices")
            values = p.add_mutually_exclusive_group(required=True)
            values.add_argument("--values-file", type=Path,
                                help="expected values, concatenated in ascending PCR order (tpm2_pcrread -o)")
            values.add_argument("--value", action="append", help="PCR=HEX (predict-pcr output), one per PCR")
            p.add_argument("--key-tag", type=lambda v: int(v, 0), help="tag of the app key to release")


def _owner_key(args: argparse.Namespace) -> int:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    print(f"owner key written to {args.out}")
    return 0


def _provision_vtpm(args: argparse.Namespace) -> int:
    from pyhsm.host.swtpm import AK_HANDLE, Swtpm
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with Swtpm(args.state) as vtpm:
        (args.out_dir / "ak.pub").write_bytes(vtpm.create_ak(args.ak))
        (args.out_dir / "ek.pub").write_bytes(vtpm.ek_public())
    print(f"vTPM state in {args.state}; AK persistent at {AK_HANDLE:#x}; ek.pub and ak.pub in {args.out_dir}")
    return 0


def _predict_pcr(args: argparse.Namespace) -> int:
    bank = HASH_BY_NAME[args.bank]
    digests = [bytes.fromhex(d) for d in args.digest] + [bank.digest(f.read_bytes()) for f in args.file]
    print(pcr.replay(bank, digests).hex())
    return 0


@contextlib.contextmanager
def _session(args: argparse.Namespace) -> Iterator[Any]:
    """A client with an open session of the partition credential, closed (session and socket) after."""
    from pyhsm.client import HsmClient
    from pyhsm.client.socket_transport import SocketTransport
    if not (args.socket and args.app_id and args.pin):
        raise ValueError("--socket, --app-id and --pin are needed to reach the HSM")
    transport = SocketTransport(args.socket, args.serial, args.partition)
    try:
        client = HsmClient(transport)
        client.open_session(bytes.fromhex(args.app_id), bytes.fromhex(args.pin))
        try:
            yield client
        finally:
            client.close_session()
    finally:
        transport.close()


def _send_owner_command(args: argparse.Namespace, op: str, **body: Any) -> Any:
    """Sign ``op`` with the owner key and send it, or write it to ``--emit``; returns the response."""
    if args.emit and args.seq is None:
        raise ValueError("--emit needs --seq (the HSM is not asked)")
    if args.emit:
        command = owner.signed_command(op, _owner(args.owner), seq=args.seq, **body)
        args.emit.write_bytes(command.to_bytes())
        print(f"{op} seq {args.seq} written to {args.emit}")
        return None
    with _session(args) as client:
        seq = args.seq if args.seq is not None else client.cvm_get_owner_info().last_seq + 1
        response = client.cvm_submit(owner.signed_command(op, _owner(args.owner), seq=seq, **body))
    print(f"{op} seq {seq} accepted")
    return response


def _owner(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def _run(func: Any) -> int:
    """Run a command body; HSM refusals and bad input become one error line and exit status 1."""
    from pyhsm.client import DdiError, DeviceError
    try:
        func()
    except (DdiError, DeviceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _set_owner(args: argparse.Namespace) -> int:
    def go() -> None:
        with _session(args) as client:
            client.cvm_set_owner(owner.public_der(_owner(args.owner)))
    return _run(go)


def _register_vm(args: argparse.Namespace) -> int:
    return _run(lambda: _send_owner_command(args, "CvmRegisterVm", vm_id=args.vm_id.encode(),
                                            ek_public=args.ek.read_bytes(), ak_public=args.ak.read_bytes()))


def _set_policy(args: argparse.Namespace) -> int:
    def go() -> None:
        pcrs = sorted(int(i) for i in args.pcrs.split(","))
        if args.values_file:
            values = args.values_file.read_bytes()
        else:
            given = dict(item.split("=", 1) for item in args.value)
            if sorted(map(int, given)) != pcrs:
                raise ValueError(f"--value must name exactly the PCRs {pcrs}")
            values = b"".join(bytes.fromhex(given[str(i)]) for i in pcrs)
        response = _send_owner_command(args, "CvmSetPolicy", workload=args.workload.encode(),
                                       vm_id=args.vm_id.encode(), pcr_bank=HASH_BY_NAME[args.bank].alg_id,
                                       pcr_mask=sum(1 << i for i in pcrs), pcr_values=values, key_tag=args.key_tag)
        if response is not None:
            print(f"policy {args.workload} is at version {response.version}")
    return _run(go)


def _submit(args: argparse.Namespace) -> int:
    from pyhsm.protocol.cvm.owner import SignedCommand

    def go() -> None:
        with _session(args) as client:
            client.cvm_submit(SignedCommand.from_bytes(args.command.read_bytes()))
    return _run(go)


def _info(args: argparse.Namespace) -> int:
    def go() -> None:
        with _session(args) as client:
            info = client.cvm_get_owner_info()
        print(f"owner_set={info.owner_set} last_seq={info.last_seq} vms={info.vms} policies={info.policies}")
    return _run(go)
