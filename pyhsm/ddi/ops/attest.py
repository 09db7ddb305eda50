"""AttestKey (ddi.md 2.9): a report on an RSA or ECC key, signed by the attestation key."""

from __future__ import annotations

from typing import Any

from pyhsm.ddi import report
from pyhsm.ddi.call import Call, handler
from pyhsm.ddi.ops.common import private_key, require_family
from pyhsm.ddi.schemas import BY_NAME
from pyhsm.ddi.types import Family


@handler("AttestKey")
def attest_key(call: Call, req: Any) -> Any:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.RSA, Family.ECC)
    public = private_key(entry).public_key()
    signed = report.build(call.identity.attestation_key(), public, entry.flags, entry.app_id, req.report_data)
    return BY_NAME["AttestKey"].response(report=signed)
