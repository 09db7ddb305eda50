"""``pyhsm puf-stats`` and ``pyhsm verify-chain``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.rot import stats
from pyhsm.backend.rot.silicon import Conditions
from pyhsm.protocol.dice import firmware, verify


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "puf-stats", help="evaluate the SRAM PUF model over a simulated fleet",
        description="Manufacture a fleet of virtual devices, read each PUF repeatedly and print "
                    "uniqueness (inter-device distance), reliability (intra-device distance), bias and "
                    "the fuzzy extractor's key-failure bound at the measured error rate.")
    p.add_argument("--devices", type=int, default=1000, help="number of devices (default 1000)")
    p.add_argument("--reads", type=int, default=100, help="read-outs per device (default 100)")
    p.add_argument("--cells", type=int, default=8192, help="PUF cells per device, a multiple of 128 (default 8192)")
    p.add_argument("--ber", type=float, default=0.10,
                   help="nominal bit-error rate the silicon is calibrated to (default 0.10)")
    p.add_argument("--skew", type=float, default=0.0, help="global cell bias, in units of the bias spread (default 0)")
    p.add_argument("--temperature", type=float, default=25.0, help="operating temperature in C (default 25)")
    p.add_argument("--age", type=float, default=0.0, help="device age in years (default 0)")
    p.add_argument("--seed", type=int, default=0, help="fleet seed, for reproducible runs (default 0)")
    p.set_defaults(func=_puf_stats)

    v = subparsers.add_parser(
        "verify-chain", help="verify a device certificate chain and, optionally, a key attestation report",
        description="Verify a DICE certificate chain (Device ID first, attestation key last) with signature, "
                    "CA and path-length checks, print each layer's TcbInfo measurements, and optionally "
                    "verify a COSE_Sign1 key attestation report against the chain's last certificate.")
    v.add_argument("sources", nargs="+", type=Path,
                   help="certificate files (PEM, or DER with one certificate each) in chain order, or one "
                        "device directory / state directory (then its P-384 and ML-DSA-87 chains are checked)")
    v.add_argument("--firmware", type=Path, default=None,
                   help="directory of reference firmware images: every layer's FWID, version and SVN must match")
    v.add_argument("--report", type=Path, default=None,
                   help="file with a key attestation report (tagged COSE_Sign1, ES384) to verify")
    v.add_argument("--report-data", default=None,
                   help="expected report data as hex (zero-padded to 128 bytes before comparing)")
    v.set_defaults(func=_verify_chain)


def _puf_stats(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    profiles = stats.fleet(args.devices, args.seed, cells=args.cells, nominal_ber=args.ber, skew=args.skew)
    s = stats.evaluate(profiles, args.reads, Conditions(args.temperature, args.age), seed=args.seed + 1)
    print(f"devices {s.devices}, reads {s.reads}, cells {s.cells}, "
          f"temperature {args.temperature} C, age {args.age} years")
    print(f"uniqueness   inter-device distance  mean {s.inter_mean:.4f}  std {s.inter_std:.4f}  (ideal 0.5)")
    print(f"reliability  {s.reliability:.4f}   intra-device distance mean {s.intra_mean:.4f}  max {s.intra_max:.4f}")
    print(f"bias         fraction of ones mean {s.uniformity_mean:.4f}  min {s.uniformity_min:.4f}  "
          f"max {s.uniformity_max:.4f}")
    print(f"bit aliasing mean per-cell min-entropy {s.aliasing_min_entropy:.4f} bits "
          f"(limited by {s.devices} samples per cell)")
    print(f"key failure  bound {s.key_failure_bound:.3g} at the measured intra-device distance")
    print(f"time         {time.perf_counter() - start:.1f} s")
    return 0


def _verify_chain(args: argparse.Namespace) -> int:
    try:
        reference = ([firmware.load_stage(args.firmware, n) for n in firmware.STAGES]
                     if args.firmware else None)
        if len(args.sources) == 1 and args.sources[0].is_dir():
            chains = [verify.load_certificates(f.read_bytes()) for f in verify.device_chain_files(args.sources[0])]
        else:
            chains = [[c for path in args.sources for c in verify.load_certificates(path.read_bytes())]]
        verified = [verify.verify_chain(chain, reference) for chain in chains]
        for chain, result in zip(chains, verified):
            _print_chain(chain, result)
        if args.report:
            leaf = verified[0].leaf_public_key
            if not isinstance(leaf, ec.EllipticCurvePublicKey):
                raise verify.VerificationError("the leaf key is not an ECC key (attestation reports are ES384)")
            report = verify.verify_report(args.report.read_bytes(), leaf)
            _print_report(report)
            if args.report_data is not None:
                expected = bytes.fromhex(args.report_data).ljust(128, b"\0")
                if report.report_data != expected:
                    raise verify.VerificationError("report data differs from the expected value")
    except (verify.VerificationError, OSError, ValueError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def _print_chain(chain: list, result: verify.VerifiedChain) -> None:
    algorithm = "ECDSA P-384" if isinstance(chain[0].public_key(), ec.EllipticCurvePublicKey) else "ML-DSA-87"
    print(f"chain of {len(chain)} certificates ({algorithm}), UEID {result.ueid.hex()}")
    for i, link in enumerate(result.links):
        print(f"  [{i}] {link.subject}")
        if link.tcb:
            t = link.tcb
            for oid, digest in t.fwids:
                print(f"      layer {t.layer} {t.type.decode(errors='replace'):<10} version {t.version:<8} "
                      f"svn {t.svn:<3} sha384 {digest.hex()}")


def _print_report(report: verify.AttestationReport) -> None:
    print(f"attestation report v{report.version}: signature OK")
    print(f"  key flags 0x{report.flags:x}, app {report.app_uuid.hex()}, vm launch id {report.vm_launch_id.hex()}")
    print(f"  key (COSE_Key) {report.public_key.hex()}")
    print(f"  report data {report.report_data.hex()}")
