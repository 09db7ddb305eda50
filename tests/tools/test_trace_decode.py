"""Trace decoding without a backend: every DDI and vendor op's request and response decode to JSON with
every field not declared safe redacted; messages that do not decode show no bytes; QEMU log lines decode
with the device's own trace-event formats."""

from __future__ import annotations

import json

import pytest

from pyhsm import paths
from pyhsm.protocol.ddi import decode, envelope, mbor, redaction
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.schemas import OpSpec, public, secret
from pyhsm.protocol.ddi.schemas_vendor import VENDOR_OPS, VendorStatus
from pyhsm.tools.trace import qemu_log
from pyhsm.tools.trace.filters import Filter, parse_since
from tests.tools.debug_samples import PLAIN_MARK, SECRET_MARK, sample


def _secret_paths(value: object) -> list[object]:
    """Every ``{"redacted": n}`` leaf of a decoded value."""
    if isinstance(value, dict):
        if set(value) == {"redacted"}:
            return [value]
        return [leaf for item in value.values() for leaf in _secret_paths(item)]
    return []


@pytest.mark.parametrize("spec", OPS.values(), ids=lambda s: s.name)
def test_every_op_decodes_with_secrets_redacted(spec: OpSpec) -> None:
    request = envelope.encode_request(spec.code, spec.request, sample(spec.request),
                                      rev=envelope.rev(1, 0), sess_id=7)
    response = envelope.encode_response(spec.code, 0, spec.response, sample(spec.response),
                                        rev=envelope.rev(1, 0), sess_id=7)
    decoded = {"request": decode.decode_request(request),
               "response": decode.decode_response(response, spec.code)}
    text = json.dumps(decoded)
    assert decoded["request"]["op"] == spec.name
    assert "undecodable" not in text
    assert decoded["response"]["ddi_status"] == "Success"
    assert SECRET_MARK.hex()[:8] not in text
    has_secret = any(not f.safe for s in _structs(spec) for f in s.fields)
    assert bool(_secret_paths(decoded)) == has_secret
    has_plain_bytes = PLAIN_MARK.hex() in text
    assert has_plain_bytes or not _has_plain_bytes(spec)


def test_the_decoder_knows_every_vendor_op() -> None:
    assert VENDOR_OPS and set(VENDOR_OPS) <= set(OPS)
    payload = envelope.encode_response(0x8013, VendorStatus.CvmPolicyNotFound)
    assert decode.decode_response(payload, 0x8013) == {"ddi_status": "CvmPolicyNotFound"}


def _structs(spec: OpSpec) -> list[mbor.Struct]:
    found, todo = [], [spec.request, spec.response]
    while todo:
        s = todo.pop()
        found.append(s)
        todo += [f.type for f in s.fields if isinstance(f.type, mbor.Struct)]
    return found


def _has_plain_bytes(spec: OpSpec) -> bool:
    return any(isinstance(f.type, (mbor.Fixed, mbor.Var)) and f.safe for s in _structs(spec) for f in s.fields)


_INNER = mbor.Struct("Inner", public(1, "shown", mbor.Var(8)), secret(2, "hidden", mbor.Var(8)))
_OUTER = mbor.Struct("Outer", secret(1, "count", mbor.U32), secret(2, "flag", mbor.BOOL), secret(3, "inner", _INNER),
                     public(4, "open", _INNER), public(5, "id", mbor.U16))


def test_a_field_not_declared_safe_shows_only_its_size_whatever_its_type() -> None:
    inner = _INNER(shown=b"\xaa\xbb", hidden=SECRET_MARK)
    shown = redaction.to_json(_OUTER(count=7, flag=True, inner=inner, open=inner, id=9))
    assert shown == {"count": {"redacted": 5}, "flag": {"redacted": 1},
                     "inner": {"redacted": len(mbor.encode(_INNER, inner))},
                     "open": {"shown": "aabb", "hidden": {"redacted": len(SECRET_MARK)}}, "id": 9}


def test_requests_that_do_not_decode_show_no_bytes() -> None:
    unknown = envelope.encode_request(0x7FFF, _OUTER, _OUTER(count=1, flag=False, inner=_INNER(
        shown=SECRET_MARK, hidden=SECRET_MARK), open=_INNER(shown=SECRET_MARK, hidden=SECRET_MARK), id=1),
        rev=envelope.rev(1, 0), sess_id=3)
    bad_data = envelope.encode_request(1077, _INNER, _INNER(shown=SECRET_MARK, hidden=SECRET_MARK),
                                       rev=envelope.rev(1, 0), sess_id=3)
    for payload, op in ((unknown, "op32767"), (bad_data, "Hmac")):
        decoded = decode.decode_request(payload)
        assert decoded["op"] == op and decoded["sess_id"] == 3 and decoded["undecodable"]
        assert "data" not in decoded and SECRET_MARK.hex()[:8] not in json.dumps(decoded)
    response = envelope.encode_response(0x7FFF, 0, _INNER, _INNER(shown=SECRET_MARK, hidden=SECRET_MARK))
    assert decode.decode_response(response, 0x7FFF) == {"undecodable": "request op unknown",
                                                        "bytes": len(response)}


def test_undecodable_bytes_are_reported_not_raised() -> None:
    assert decode.decode_request(b"\x01\x02")["undecodable"]
    assert decode.decode_response(b"\xA2junk", 1002)["undecodable"]
    assert decode.decode_response(b"\xA2", None)["undecodable"] == "request op unknown"


def test_error_response_shows_the_ddi_status_name() -> None:
    payload = envelope.encode_response(1062, 0x0870000E)
    assert decode.decode_response(payload, 1062) == {"ddi_status": "KeyNotFound"}


QEMU_LOG = """\
4242@1700000000.000100:azihsm_admin_cmd admin cid 3 opcode 0x06 dw10 0x1 dw11 0x0
4242@1700000000.000150:azihsm_admin_done admin cid 3 opcode 0x06 status 0x000 dw0 0x0
4242@1700000000.001000:azihsm_create_sq create SQ 1 size 64 base 0x7f3a000 cq 1
4242@1700000000.002000:azihsm_hsm_submit HSM SQ 1 cid 9 opc 0 src 120 dst 8192 session flags 0x3 msg_id 5
4242@1700000000.002700:azihsm_hsm_complete HSM SQ 1 cid 9 status 0x702 bytes 0 session flags 0x3
unrelated line
"""


def test_qemu_log_pairs_submissions_with_completions() -> None:
    records = list(qemu_log.records(QEMU_LOG.splitlines()))
    assert [r["event"] for r in records] == ["admin", "create_sq", "command"]
    admin, create, command = records
    assert admin["op"] == "Identify" and admin["latency_us"] == pytest.approx(50, abs=1)
    assert create["base"] == 0x7f3a000 and create["qid"] == 1
    assert command["queue"] == 1 and command["cid"] == 9 and command["status"] == 0x702
    assert command["session_op"] == "IN_SESSION" and command["msg_id"] == 5
    assert command["latency_us"] == pytest.approx(700, abs=1)


def test_every_device_trace_event_has_a_parsed_format() -> None:
    names = {line.split("(")[0] for line in paths.trace_events().read_text().splitlines()
             if line.startswith("azihsm_")}
    assert names and names == set(qemu_log.formats())


def test_filters() -> None:
    ok = {"time": 100.0, "event": "command", "queue": 1, "op": "EccSign", "session_id": 3, "status": 0,
          "ddi_status": "Success"}
    failed = {**ok, "ddi_status": "KeyNotFound"}
    admin = {"time": 50.0, "event": "admin", "queue": 0, "op": "Identify", "status": 0}
    assert Filter(errors_only=True)(failed) and not Filter(errors_only=True)(ok)
    assert Filter(queue="hsm")(ok) and not Filter(queue="hsm")(admin)
    assert Filter(queue="admin")(admin) and not Filter(queue="admin")(ok)
    assert Filter(queue=1)(ok) and not Filter(queue=1)(admin)
    assert Filter(ops=frozenset({"eccsign"}))(ok) and not Filter(ops=frozenset({"hmac"}))(ok)
    assert Filter(session=3)(ok) and not Filter(session=4)(ok)
    assert Filter(since=75.0)(ok) and not Filter(since=75.0)(admin)
    assert parse_since("10s", now=1000.0) == 990.0 and parse_since("2m", now=1000.0) == 880.0
    with pytest.raises(ValueError, match="30s"):
        parse_since("yesterday")
