"""Mirrors extension_support.rs of the vendor's DDI integration tests (docs/conformance.md). The
vendor checks only a Virtual device; ours rejects the request extension under both profiles."""

from __future__ import annotations

from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.link import SessionFlags, SessionOp
from tests.conformance.vendor import S, Setup


def test_extension_support_virtual(setup: Setup) -> None:
    spec = BY_NAME["GetApiRev"]
    plain = envelope.encode_request(spec.code, spec.request, spec.request(), rev=None, sess_id=None)
    assert plain[0] == 0xA2
    with_ext = bytes([0xA3]) + plain[1:] + bytes([0x18, 0x02, 0xA0])   # {0: hdr, 1: data, 2: ext {}}
    completion = setup.dev.transport.submit(with_ext, SessionFlags(SessionOp.NONE, False))
    header, _ = envelope.decode_response(completion.payload, spec.response)
    assert header.status == S.DdiDecodeFailed
