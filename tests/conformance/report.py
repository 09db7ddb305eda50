"""Write docs/conformance.md from the counts of the last conformance run (build/conformance.json).

    build/venv/bin/pytest tests/conformance && build/venv/bin/python -m tests.conformance.report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTRO = """# Conformance with the vendor's DDI integration tests

`tests/conformance/` re-expresses the DDI integration tests of the vendor's SDK (the public
repository Azure/azihsm-sdk, `ddi/lib/tests/integration/<file>.rs`, 535 `#[test]` functions in 57
files) in Python against our backend: `tests/conformance/test_<file>.py` holds one test function per
vendor test under the vendor's name, with the same inputs and asserted statuses, written from the
vendor sources (no code copied; fixed keys and vectors are our own of the same shapes). Every test runs
in-process (`LocalTransport` to a `Partition`) once per device profile, `physical` and `virtual`
(docs/ddi.md, "Device profiles"); `make test` runs them with the rest of the suite. The summary of
a run prints the counts below; `python -m tests.conformance.report` rewrites this file from them.

How the vendor's harness maps onto ours: each vendor test resets the device (NSSR) and runs
`common_setup` (credential established by one file handle, a session opened on another with a fixed
seed); here each test gets a fresh partition and the same set-up (`tests/conformance/vendor.py`). A
vendor "file handle" is an `HsmClient`, which applies the vendor driver's file-handle rules
(FileHandleSessionIdDoesNotMatch and friends) and, against a Physical device, the Physical field
formats. A vendor test that returns early unless the device is Physical is skipped under the virtual
profile with that reason; one that returns early unless the device is Virtual runs under both
profiles here, since our device supports what it checks under both. Where the vendor draws a random
value (a VarHmac key length) the mirror tries every value of the range.

Live migration: the vendor's `simulate_nssr_after_lm` is an NSSR, and NSSR is what our device presents
after a migration (docs/ddi.md, "Resets"), so the live-migration tests (`live_migration_*.rs`,
`lm_context.rs`, the `_after_lm` and `_with_lm` tests) run with an NSSR as the migration: old sessions
answer SessionNeedsRenegotiation, the guest establishes its credential again with its masked BK3 and
partition BMK and reopens its sessions with their seeds and session BMKs. The vendor's stress and
concurrency tests that run for a time or pace themselves with sleeps run a fixed number of rounds
here, unpaced. Two tests the vendor builds only for its mock device expect a certificate chain that
a migration regenerates and are skipped with that reason (ours is the device identity). Where the
vendor accepts any failure and the request has no Physical form (a DER key declared as another
curve, a point at infinity), the client's EncodeError is that failure, as it is in the vendor's SDK.

The AES fast path: the vendor's `exec_op_fp_gcm` / `exec_op_fp_xts` (the guest driver's AES ioctl)
are `vendor.fast_path`, which plays the SDK's, the driver's and the device's part for one command
and runs it in-process through `Partition.execute_aes` (docs/device.md, "AES queues and the AES
path"): it builds the AES_REQUEST the device would send (GCM: the AAD aligned by the SDK's rule,
then the data, its last `len % 16` bytes in the driver's tail buffer; XTS: the data and the code of
its data unit; the session id and short_app_id from the open session, the key ids, IV, tag or
tweak), passes it and the answer through the link codec, and places the output as the device does.
The device's own limit applies first: a transfer over 1 MiB per direction is answered 0x002. The
vendor tests that send 1 MiB as one XTS command (`aes_xts_encrypt_decrypt`, the XTS stress test and
the three HKDF XTS derivations) run their sequences with the vendor's 1 MiB, which is exactly that
limit; the two XTS refusal tests (identical keys, a GCM key as tweak key) get the HSM's
AesEncryptFailed and InvalidKeyType for their 1 MiB.
"""


def render(result: dict) -> str:
    lines = [INTRO, "## Counts", ""]
    lines.append(f"Vendor tests: **{result['vendor_total']}**; covered by a mirror: **{result['covered']}**.")
    lines.append("")
    lines.append("| profile | passed | failed | skipped |")
    lines.append("|---|---:|---:|---:|")
    for profile, counts in result["profiles"].items():
        lines.append(f"| {profile} | {counts['passed']} | {counts['failed']} | {counts['skipped']} |")
    lines.append("")
    for profile, counts in result["profiles"].items():
        for reason, n in sorted(counts["skip_reasons"].items()):
            lines.append(f"- {profile}: {n} skipped: {reason}")
    lines += ["", "## By vendor file", "",
              "| vendor file | vendor tests | covered | physical passed / skipped | virtual passed / skipped |",
              "|---|---:|---:|---|---|"]
    for name, row in sorted(result["files"].items()):
        cells = []
        for profile in ("physical", "virtual"):
            counts = row.get(profile, {})
            cells.append(f"{counts.get('passed', 0)} / {counts.get('skipped', 0)}"
                         + (f" ({counts['failed']} failed)" if counts.get("failed") else ""))
        lines.append(f"| {name}.rs | {row['vendor']} | {row['covered']} | {cells[0]} | {cells[1]} |")
    missing = [name for name, row in sorted(result["files"].items()) if row["covered"] < row["vendor"]]
    lines += ["", "## Not mirrored yet", ""]
    lines.append(f"{len(missing)} vendor files are not (fully) mirrored: "
                 + ", ".join(f"`{name}.rs`" for name in missing) + "." if missing
                 else "Every vendor test has a mirror.")
    return "\n".join(lines) + "\n"


def main() -> int:
    results = ROOT / "build" / "conformance.json"
    if not results.exists():
        print(f"{results} is missing: run build/venv/bin/pytest tests/conformance first", file=sys.stderr)
        return 1
    (ROOT / "docs" / "conformance.md").write_text(render(json.loads(results.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
