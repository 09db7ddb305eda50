"""Every DDI and vendor op at the limits its schema declares (docs/ddi.md, "Limits").

For each op, its valid call (``ddi_scenarios``) is repeated with the op's request changed: one leaf
field at a time, then all of them at once, set to a bound of its schema type (byte arrays empty and at
their maximum length, of zeros and of 0xFF; fixed arrays of zeros and of 0xFF; integers 0 and their
largest value; both booleans; optional fields absent). Owner commands get the same treatment for the
fields of their signed body (re-signed with the owner key). Each case runs on a fresh partition
restored from one baseline. The answer must never be InternalError: a successful response must decode
under the op's schema, a failure must carry a known DDI or vendor status, and a transport status must
not be the link's internal error. The unchanged call must succeed, so that the bounds reach the handler.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import DdiError, DeviceError, HsmClient
from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol import link
from pyhsm.protocol.cvm import owner
from pyhsm.protocol.ddi import envelope, mbor
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.schemas import OpSpec
from pyhsm.protocol.ddi.schemas_vendor import OWNER_BODIES, VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus
from tests.backend.ddi.ddi_helpers import LocalTransport
from tests.backend.ddi.ddi_scenarios import SCENARIOS, Baseline

Mutation = Callable[[Any], Any]
_KNOWN_STATUSES = {0, *DdiStatus, *VendorStatus}


def bounds(t: mbor.MborType) -> list[tuple[str, Any]]:
    """The values at the limits of a leaf type, smallest first, largest last."""
    if isinstance(t, mbor.UInt):
        return [("0", 0), ("max", (1 << (8 * t.width)) - 1)]
    if isinstance(t, mbor.Bool):
        return [("false", False), ("true", True)]
    if isinstance(t, mbor.Fixed):
        return [("zeros", bytes(t.length)), ("ones", b"\xff" * t.length)]
    assert isinstance(t, mbor.Var), t
    return [("empty", b""), (f"{t.maximum} zeros", bytes(t.maximum)), (f"{t.maximum} ones", b"\xff" * t.maximum)]


def leaves(struct: mbor.Struct, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], mbor.Field]]:
    """Every non-struct field of ``struct``, nested ones included, with its attribute path."""
    for f in struct.fields:
        if isinstance(f.type, mbor.Struct):
            yield from leaves(f.type, prefix + (f.name,))
        else:
            yield prefix + (f.name,), f


def replaced(value: Any, path: tuple[str, ...], new: Any) -> Any:
    head, *rest = path
    return dataclasses.replace(value, **{head: replaced(getattr(value, head), tuple(rest), new) if rest else new})


def mutations(struct: mbor.Struct) -> Iterator[tuple[str, Mutation]]:
    """(label, change of a request value) for every bound of every leaf field, and all at once."""
    fields = list(leaves(struct))
    for path, f in fields:
        name = ".".join(path)
        for label, v in bounds(f.type):
            yield f"{name}={label}", lambda x, p=path, v=v: replaced(x, p, v)
        if f.optional:
            yield f"{name}=absent", lambda x, p=path: replaced(x, p, None)

    def everything(index: int, drop_optional: bool) -> Mutation:
        def change(x: Any) -> Any:
            for path, f in fields:
                x = replaced(x, path, None if f.optional and drop_optional else bounds(f.type)[index][1])
            return x
        return change

    if fields:
        yield "all=max", everything(-1, False)
        yield "all=min", everything(0, True)


def body_mutations(op: str, owner_key: Any) -> Iterator[tuple[str, Mutation]]:
    """The bounds of an owner command's body fields, each body re-signed so that it authenticates."""
    schema = OWNER_BODIES[op]
    code = BY_NAME[op].code
    for label, change in mutations(schema):
        def resigned(req: Any, change: Mutation = change) -> Any:
            body = mbor.encode(schema, change(mbor.decode(schema, req.body)))
            return dataclasses.replace(req, body=body, owner_sig=owner.sign(owner_key, code, body))
        yield f"body.{label}", resigned


class Mutating(LocalTransport):
    """Sends the first request of ``spec`` changed by ``mutate`` and keeps its answer."""

    def __init__(self, partition: Partition, spec: OpSpec, mutate: Mutation) -> None:
        super().__init__(partition)
        self.spec, self.mutate = spec, mutate
        self.answer: link.Response | None = None

    def submit(self, request: bytes, flags: link.SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        opened = envelope.open_request(request)
        target = self.answer is None and opened.header.op == self.spec.code
        if target:
            header = opened.header
            data = self.mutate(opened.data(self.spec.request))
            request = envelope.encode_request(header.op, self.spec.request, data, rev=header.rev,
                                              sess_id=header.sess_id)
        completion = super().submit(request, flags, session_id, opc=opc, dst_len=dst_len)
        if target:
            self.answer = self.responses[-1]
        return completion


def run_case(base: Baseline, directory: Path, spec: OpSpec, mutate: Mutation) -> link.Response:
    """The answer to ``spec``'s scenario with its request changed by ``mutate``, on a fresh partition."""
    lab = base.lab(directory)
    transport = Mutating(lab.partition, spec, mutate)
    client = HsmClient(transport)
    client.session_id = lab.client.session_id
    with contextlib.suppress(DdiError, DeviceError):
        SCENARIOS[spec.name](lab, client)
    assert transport.answer is not None, f"the {spec.name} scenario never sent {spec.name}"
    return transport.answer


def problem(spec: OpSpec, answer: link.Response) -> str | None:
    """Why ``answer`` is not an acceptable answer to ``spec``, or None."""
    if answer.status:
        return "link internal error" if answer.status == link.Status.INTERNAL_ERROR else None
    try:
        header, _ = envelope.decode_response(answer.payload, spec.response)
    except mbor.MborError as exc:
        return f"response does not decode: {exc}"
    if header.status == DdiStatus.InternalError:
        return "InternalError"
    if header.status not in _KNOWN_STATUSES:
        return f"unknown status 0x{header.status:08x}"
    return None


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    return Baseline.create(tmp_path_factory.mktemp("baseline"))


def test_every_op_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(BY_NAME)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_op_at_its_limits(name: str, baseline: Baseline, tmp_path: Path, reliability) -> None:
    spec = BY_NAME[name]
    unchanged = run_case(baseline, tmp_path / "unchanged", spec, lambda x: x)
    assert problem(spec, unchanged) is None and envelope.decode_response(
        unchanged.payload, spec.response)[0].status == DdiStatus.Success, "the scenario itself fails"
    cases = list(mutations(spec.request))
    if name in OWNER_BODIES:
        cases += body_mutations(name, baseline.cvm.owner_key)
    failures = []
    for i, (label, mutate) in enumerate(cases):
        found = problem(spec, run_case(baseline, tmp_path / f"case-{i}", spec, mutate))
        if found:
            failures.append(f"{label}: {found}")
    assert not failures, f"{name}: {failures}"
    reliability.record("requests at their declared limits", "every op, each field at its bounds, all at max, "
                       "all at min", len(cases), "success or a DDI status; never InternalError")
