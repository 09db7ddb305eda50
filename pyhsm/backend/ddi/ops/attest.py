"""AttestKey (docs/ddi.md, "Attestation report"): a report on a key, signed by the attestation key. Virtual attests RSA and
ECC keys only (InvalidKeyType otherwise); Physical attests every kind, symmetric ones without a
public key (docs/ddi.md, "Device profiles")."""

from __future__ import annotations

from pyhsm.backend.ddi import attestation_report as report
from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.ops.common import private_key, require_family
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.types import KINDS, Family


def attest_key(call: Call, req: messages.DdiAttestKeyReq) -> messages.DdiAttestKeyResp:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    if not call.physical:
        require_family(entry, Family.RSA, Family.ECC)
    asymmetric = KINDS[entry.kind].family in (Family.RSA, Family.ECC)
    public = private_key(entry).public_key() if asymmetric else None
    flags = report.report_flags(entry.flags, entry.kind, call.physical)
    signed = report.build(call.identity.attestation_key(), public, flags, entry.app_id, req.report_data)
    return messages.DdiAttestKeyResp(report=signed)


HANDLERS: dict[str, Handler] = {
    "AttestKey": attest_key,
}
