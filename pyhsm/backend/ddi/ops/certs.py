"""GetCertChainInfo and GetCertificate (docs/ddi.md, "Device profiles"): the identity's chain, root first, leaf last."""

from __future__ import annotations

import hashlib
from typing import Sequence

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus


def thumbprint(chain: Sequence[bytes]) -> bytes:
    """SHA-256 of a single certificate; for longer chains the formula of docs/ddi.md, "Device profiles"."""
    h = lambda data: hashlib.sha256(data).digest()  # noqa: E731
    if len(chain) == 1:
        return h(chain[0])
    head = h(b"".join(h(c) for c in chain[:-2]))
    return h(head + h(chain[-2]) + h(chain[-1]))


def _slot(slot_id: int) -> None:
    if slot_id != 0:
        raise DdiFailure(DdiStatus.InvalidArg, f"certificate slot {slot_id} does not exist")


def get_cert_chain_info(call: Call, req: messages.DdiGetCertChainInfoReq) -> messages.DdiGetCertChainInfoResp:
    _slot(req.slot_id)
    chain = call.identity.certificate_chain()
    return messages.DdiGetCertChainInfoResp(num_certs=len(chain), thumbprint=thumbprint(chain))


def get_certificate(call: Call, req: messages.DdiGetCertificateReq) -> messages.DdiGetCertificateResp:
    _slot(req.slot_id)
    chain = call.identity.certificate_chain()
    if req.cert_id >= len(chain):
        raise DdiFailure(DdiStatus.InvalidArg, f"certificate {req.cert_id} of {len(chain)}")
    return messages.DdiGetCertificateResp(certificate=chain[req.cert_id])


HANDLERS: dict[str, Handler] = {
    "GetCertChainInfo": get_cert_chain_info,
    "GetCertificate": get_certificate,
}
