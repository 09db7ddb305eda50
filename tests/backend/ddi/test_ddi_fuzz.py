"""Property-based fuzzing of the MBOR codec and the partition dispatcher (hypothesis).

Every malformed, truncated, oversized or reordered request must produce an error answer (a DDI
error status, or a transport status with no payload) and nothing may escape ``execute``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import HsmClient
from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope, mbor
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.schemas import OpSpec
from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus
from tests.backend.ddi.ddi_helpers import LocalTransport, provision
from tests.backend.ddi.ddi_identity import TestIdentity
from tests.reliability_log import RELIABILITY

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def value_of(t: mbor.MborType) -> st.SearchStrategy[Any]:
    """A strategy producing valid values of an MBOR type."""
    if isinstance(t, mbor.UInt):
        return st.integers(0, (1 << (8 * t.width)) - 1)
    if isinstance(t, mbor.Bool):
        return st.booleans()
    if isinstance(t, mbor.Fixed):
        return st.binary(min_size=t.length, max_size=t.length)
    if isinstance(t, mbor.Var):
        return st.binary(max_size=min(t.maximum, 80))
    assert isinstance(t, mbor.Struct)
    fields = {f.name: (st.none() | value_of(f.type)) if f.optional else value_of(f.type) for f in t.fields}
    return st.fixed_dictionaries(fields).map(lambda d: t.cls(**d))


SPECS = list(OPS.values())
ops = st.sampled_from(SPECS)


@st.composite
def valid_requests(draw) -> tuple[OpSpec, bytes, Any]:
    spec = draw(ops)
    data = draw(value_of(spec.request))
    rev = draw(st.none() | st.just(envelope.rev(1, 0)))
    sess = draw(st.none() | st.integers(0, 9))
    return spec, envelope.encode_request(spec.code, spec.request, data, rev=rev, sess_id=sess), data


@given(valid_requests())
@FUZZ
def test_every_schema_round_trips(case) -> None:
    spec, payload, data = case
    opened = envelope.open_request(payload)
    assert opened.header.op == spec.code
    assert opened.data(spec.request) == data


@given(st.binary(max_size=300))
@FUZZ
def test_decoder_raises_only_mbor_errors(payload: bytes) -> None:
    for spec in SPECS[:6]:
        try:
            envelope.open_request(payload).data(spec.request)
        except mbor.MborError:
            pass


_PARTITION: dict[str, Any] = {}


def fuzz_partition() -> Partition:
    """One provisioned partition shared by the dispatcher fuzzers (hypothesis calls the test many times)."""
    if "p" not in _PARTITION:
        identity = TestIdentity("FUZZ-0001")
        directory = Path(tempfile.mkdtemp(prefix="ddi-fuzz-"))
        p = Partition(serial=identity.serial, index=0, state_dir=directory, identity=identity)
        provision(HsmClient(LocalTransport(p)), p)
        _PARTITION["p"] = p
    return _PARTITION["p"]


_KNOWN_STATUSES = {0, *DdiStatus, *VendorStatus}


def check_answer(response: link.Response, must_fail: bool) -> None:
    assert isinstance(response, link.Response)
    RELIABILITY.record("malformed MBOR (guest)", "random bytes and mutated valid requests to the DDI "
                       "dispatcher", 1, "a DDI or transport error status each; no crash, no InternalError")
    if response.status:
        assert response.payload == b""
        return
    header = envelope.decode_response(response.payload, _EMPTY_OK)[0]
    if must_fail:
        assert header.status != 0, "a malformed request succeeded"
    assert header.status in _KNOWN_STATUSES, f"unknown DDI status 0x{header.status:08x}"


class _AnyData(mbor.Struct):
    """Accepts any response data: the fuzzers check only the header."""

    def decode(self, reader: mbor.Reader) -> Any:
        reader.pos = len(reader.data)
        return None


_EMPTY_OK = _AnyData("AnyData")


def execute(payload: bytes, flags: int, sess: int, opc: int = 0) -> link.Response:
    return fuzz_partition().execute(link.Request(1, 1, opc, flags, sess, 8192, payload))


@given(st.binary(max_size=400), st.integers(0, 31), st.integers(0, 65535), st.sampled_from([0, 2, 3, 1023]))
@FUZZ
def test_dispatcher_survives_random_bytes(payload: bytes, flags: int, sess: int, opc: int) -> None:
    must_fail = True
    try:
        opened = envelope.open_request(payload)
        spec = OPS.get(opened.header.op)
        if spec is not None:
            opened.data(spec.request)
            must_fail = False
    except mbor.MborError:
        pass
    check_answer(execute(payload, flags, sess, opc), must_fail and opc == 0)


@st.composite
def mutated(draw) -> tuple[bytes, bool]:
    spec, payload, _ = draw(valid_requests())
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "extend", "swap"]))
    data = bytearray(payload)
    if kind == "truncate":
        cut = draw(st.integers(0, len(data) - 1))
        return bytes(data[:cut]), True
    if kind == "extend":
        return bytes(data) + draw(st.binary(min_size=1, max_size=8)), True
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=4))
    else:
        i, j = sorted(draw(st.lists(st.integers(0, len(data) - 1), min_size=2, max_size=2, unique=True)))
        data[i], data[j] = data[j], data[i]
    return bytes(data), False


@given(mutated(), st.booleans())
@FUZZ
def test_dispatcher_survives_mutations(case, in_session: bool) -> None:
    payload, must_fail = case
    flags = link.SessionFlags(link.SessionOp.IN_SESSION, True).to_byte() if in_session else 0
    check_answer(execute(payload, flags, 0), must_fail)


@given(ops, st.integers(1, 64))
@FUZZ
def test_oversized_fields_are_decode_errors(spec: OpSpec, extra: int) -> None:
    var_fields = [f for f in spec.request.fields if isinstance(f.type, mbor.Var)]
    if not var_fields:
        return
    field = var_fields[0]
    big = mbor.Struct(spec.request.name, *[
        mbor.Field(f.id, f.name, mbor.Var(f.type.maximum + extra) if f is field else f.type, f.optional)
        for f in spec.request.fields])
    values = {f.name: None for f in spec.request.fields if f.optional}
    for f in spec.request.fields:
        if not f.optional:
            values[f.name] = bytes(f.type.maximum + extra) if f is field else _minimal(f.type)
    values[field.name] = bytes(field.type.maximum + extra)
    payload = envelope.encode_request(spec.code, big, big.cls(**values), rev=envelope.rev(1, 0))
    kind = int(spec.kind)
    response = execute(payload, kind, 0)
    if response.status == 0:
        header, _ = envelope.decode_response(response.payload, _EMPTY_OK)
        assert header.status == DdiStatus.DdiDecodeFailed
    else:
        assert response.status in (0x710, 0x711)


class _Reordered(mbor.Struct):
    """The schema's fields in another order (the constructor would refuse non-contiguous ids)."""

    def __init__(self, schema: mbor.Struct, fields: list[mbor.Field]) -> None:
        self.name, self.fields, self.cls = schema.name, tuple(fields), schema.cls
        self._keyed = [(f, f.key) for f in fields]
        self._names = [f.name for f in fields]


def _minimal(t: mbor.MborType) -> Any:
    if isinstance(t, mbor.UInt):
        return 0
    if isinstance(t, mbor.Bool):
        return False
    if isinstance(t, mbor.Fixed):
        return bytes(t.length)
    if isinstance(t, mbor.Var):
        return b""
    assert isinstance(t, mbor.Struct)
    return t.cls(**{f.name: None if f.optional else _minimal(f.type) for f in t.fields})


@given(ops, st.data())
@FUZZ
def test_reordered_fields_are_rejected(spec: OpSpec, data) -> None:
    if len(spec.request.fields) < 2:
        return
    fields = list(spec.request.fields)
    i, j = data.draw(st.lists(st.integers(0, len(fields) - 1), min_size=2, max_size=2, unique=True))
    fields[i], fields[j] = fields[j], fields[i]
    reordered = _Reordered(spec.request, fields)
    value = data.draw(value_of(spec.request))
    values = {f.name: getattr(value, f.name) for f in fields}
    for f in fields:
        if values[f.name] is None:
            values[f.name] = _minimal(f.type)  # keep both swapped fields present
    value = spec.request.cls(**values)
    payload = envelope.encode_request(spec.code, reordered, value, rev=envelope.rev(1, 0))
    response = execute(payload, int(spec.kind), 0)
    check_answer(response, True)
