"""The checked-in typed messages (pyhsm/protocol/ddi/messages.py) are exactly what the generator
writes from the current schemas, and every struct of the schemas uses its generated class."""

from __future__ import annotations

import dataclasses

import pytest

from pyhsm.protocol.ddi import messages, typegen

REGENERATE = "stale: run `build/venv/bin/python -m pyhsm.protocol.ddi.typegen` and commit messages.py"


def test_messages_py_matches_the_generator() -> None:
    assert typegen.TARGET.read_text() == typegen.render(), f"pyhsm/protocol/ddi/messages.py is {REGENERATE}"


def test_every_struct_uses_its_generated_class() -> None:
    for struct in typegen.structs():
        cls = getattr(messages, struct.name, None)
        assert cls is not None and struct.cls is cls, f"{struct.name}: messages.py is {REGENERATE}"
        assert cls.SCHEMA is struct
        assert dataclasses.is_dataclass(cls) and issubclass(cls, messages.Message)
        assert cls.FIELDS == tuple(f.name for f in dataclasses.fields(cls))


def test_messages_are_immutable_values() -> None:
    a, b = messages.DdiReqHdr(op=1), messages.DdiReqHdr(1, None, None)
    assert a == b and hash(a) == hash(b) and a != messages.DdiReqHdr(op=2)
    assert a != messages.DdiApiRev(1, 0) and repr(a) == "DdiReqHdr(op=1, rev=None, sess_id=None)"
    assert dataclasses.replace(a, sess_id=3) == messages.DdiReqHdr(1, None, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.op = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del a.op


def test_generated_classes_behave_like_struct_calls() -> None:
    struct = typegen.structs()[0]
    value = struct(**{f.name: 0 for f in struct.fields})
    assert type(value) is struct.cls
