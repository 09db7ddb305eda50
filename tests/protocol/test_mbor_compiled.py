"""The compiled MBOR codec (``Struct``'s straight-line functions) against the reference codec.

For every struct of every op, valid values, mutated encodings and ill-typed values must give the same
result both ways: the same bytes or value, or an ``MborError`` (the compiled path hands every case it
does not take to the reference, so the error is the reference's own).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyhsm.protocol.ddi import mbor
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.schemas import REQ_HDR, RESP_HDR
from tests.backend.ddi.test_ddi_fuzz import value_of

SCHEMAS = [REQ_HDR, RESP_HDR] + [s for spec in OPS.values() for s in (spec.request, spec.response)]
CHECK = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_encode(schema: mbor.Struct, value: Any) -> bytes:
    out = bytearray(b"\x00" * 3)   # an odd start offset: padding follows the absolute offset
    schema._reference_encode(out, value)
    return bytes(out[3:])


def compiled_encode(schema: mbor.Struct, value: Any) -> bytes:
    out = bytearray(b"\x00" * 3)
    (schema._encoder or schema._compile_encoder())(out, value)
    return bytes(out[3:])


def reference_decode(schema: mbor.Struct, data: bytes) -> Any:
    reader = mbor.Reader(data)
    value = schema._reference_decode(reader)
    if reader.pos != len(data):
        raise mbor.MborError("trailing")
    return value


def outcome(fn, *args) -> Any:
    try:
        return ("ok", fn(*args))
    except mbor.MborError as exc:
        return ("error", str(exc))


@st.composite
def schema_and_value(draw) -> tuple[mbor.Struct, Any]:
    schema = draw(st.sampled_from(SCHEMAS))
    return schema, draw(value_of(schema))


@given(schema_and_value())
@CHECK
def test_compiled_encoding_equals_the_reference(case) -> None:
    schema, value = case
    assert compiled_encode(schema, value) == reference_encode(schema, value)
    assert mbor.decode(schema, mbor.encode(schema, value)) == value


@given(schema_and_value(), st.data())
@CHECK
def test_mutated_encodings_decode_as_the_reference_says(case, data) -> None:
    schema, value = case
    encoded = bytearray(mbor.encode(schema, value))
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "truncate", "extend", "insert"]))
        at = data.draw(st.integers(0, max(len(encoded) - 1, 0)))
        if action == "flip" and encoded:
            encoded[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            del encoded[at:]
        elif action == "extend":
            encoded += data.draw(st.binary(min_size=1, max_size=4))
        else:
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=2))
    expected = outcome(reference_decode, schema, bytes(encoded))
    got = outcome(mbor.decode, schema, bytes(encoded))
    assert got[0] == expected[0], (schema, bytes(encoded).hex(), expected, got)
    if got[0] == "ok":
        assert got[1] == expected[1]


ILL_TYPED = [None, True, -1, 1 << 70, 1.0, "text", b"\x00" * 1000, bytearray(b"ab")]


@pytest.mark.parametrize("schema", sorted({s for s in SCHEMAS if s.fields}, key=lambda s: s.name)[:40],
                         ids=lambda s: s.name)
def test_ill_typed_fields_get_the_reference_error(schema: mbor.Struct) -> None:
    base = {f.name: None for f in schema.fields}
    for f in schema.fields:
        for bad in ILL_TYPED:
            value = schema.cls.__new__(schema.cls)
            value.__dict__.update(base, **{f.name: bad})
            out = bytearray()
            expected = outcome(reference_encode, schema, value)
            got = outcome(lambda: (schema.encode(out, value), bytes(out))[1])
            assert got[0] == expected[0], (schema.name, f.name, bad, expected, got)
            if got[0] == "error":
                assert got[1] == expected[1]
