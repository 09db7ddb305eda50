"""The reference boot: read the policy PCRs from the vTPM and report them (no HSM use).

The host takes PCRs 0 and 7 from this boot as the good values for its firmware, and checks PCRs 4
and 9 against its own computation from the build (pyhsm/host/confidential/measurements.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pyhsm.client.attestation import POLICY_PCRS, POLICY_SELECTION, tpm2
from pyhsm.guest.workloads import Context, Step, Workload

DIGEST_BYTES = 32


def read_pcrs(context: Context) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pcrs"
        tpm2("pcrread", POLICY_SELECTION, "-o", str(out))
        raw = out.read_bytes()
    if len(raw) != DIGEST_BYTES * len(POLICY_PCRS):
        raise RuntimeError(f"tpm2_pcrread wrote {len(raw)} bytes for {POLICY_SELECTION}")
    return {"pcrs": {str(i): raw[n * DIGEST_BYTES:(n + 1) * DIGEST_BYTES].hex()
                     for n, i in enumerate(POLICY_PCRS)}}


WORKLOAD = Workload(steps=(Step("read policy PCRs", read_pcrs),))
