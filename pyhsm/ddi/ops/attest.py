"""AttestKey (ddi.md 2.9): a report on a key, signed by the attestation key. Virtual attests RSA and
ECC keys only (InvalidKeyType otherwise); Physical attests every kind, symmetric ones without a
public key (docs/ddi.md, "Device profiles")."""

from __future__ import annotations

from typing import Any

from pyhsm.ddi import report
from pyhsm.ddi.call import Call, handler
from pyhsm.ddi.ops.common import private_key, require_family
from pyhsm.ddi.schemas import BY_NAME
from pyhsm.ddi.types import KINDS, Family


@handler("AttestKey")
def attest_key(call: Call, req: Any) -> Any:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    if not call.physical:
        require_family(entry, Family.RSA, Family.ECC)
    asymmetric = KINDS[entry.kind].family in (Family.RSA, Family.ECC)
    public = private_key(entry).public_key() if asymmetric else None
    flags = report.report_flags(entry.flags, entry.kind, call.physical)
    signed = report.build(call.identity.attestation_key(), public, flags, entry.app_id, req.report_data)
    return BY_NAME["AttestKey"].response(report=signed)
