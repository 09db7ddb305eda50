"""Generates ``pyhsm/protocol/ddi/messages.py``: one typed frozen dataclass per MBOR struct of the DDI
and vendor schemas (docs/ddi.md, docs/vendor-ops.md), which ``mbor.Struct`` then uses as its ``cls``.

Run ``python -m pyhsm.protocol.ddi.typegen`` after changing a schema (``--check`` only compares, exit 1
if the file is stale); ``tests/protocol/test_messages_generated.py`` fails while it is stale.

The structs are every module-level struct of ``schemas`` and ``schemas_vendor`` (also those inside a
module-level dict, such as the owner command bodies), every op's request and response (``optable.OPS``)
and every struct nested in one of those. Classes come out in declaration order, a nested struct before
the first struct that holds it. Attribute types come from ``MborType.py_type``; optional fields are
``X | None = None`` and follow the required ones (``Struct.attribute_order``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from pyhsm.protocol.ddi import optable, schemas, schemas_vendor
from pyhsm.protocol.ddi.mbor import Struct

TARGET = Path(__file__).with_name("messages.py")

HEADER = '''\
# GENERATED FILE, do not edit: written by pyhsm/protocol/ddi/typegen.py from the MBOR schemas in
# pyhsm/protocol/ddi/schemas.py and schemas_vendor.py. Regenerate after changing a schema with
#     build/venv/bin/python -m pyhsm.protocol.ddi.typegen
"""Typed DDI messages: one immutable dataclass per MBOR struct (docs/ddi.md, docs/vendor-ops.md).

``mbor.Struct`` uses the class of its name as ``cls``, so decoded messages are instances of these
classes and ``SCHEMA`` is the struct that encodes and decodes them.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pyhsm.protocol.ddi.mbor import Struct

class Message:
    """Base of every message: immutable, equal by type and field values, hashable, with a readable repr.

    The classes below are dataclasses (``dataclasses.fields`` and ``replace`` work) whose methods are
    written out here rather than made by ``@dataclass`` at import time, which would cost about 0.1 s
    per process on the host and seconds in a TCG guest. Their ``__init__`` fills the instance
    dictionary directly (about twice as fast as ``object.__setattr__`` per field).
    """

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()     # the fields, in attribute order

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.FIELDS, self._values()))
        return f"{type(self).__name__}({fields})"
'''


def _module_structs(module: ModuleType) -> list[Struct]:
    found: list[Struct] = []
    for value in vars(module).values():
        if isinstance(value, Struct):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(v for v in value.values() if isinstance(v, Struct))
    return found


def structs() -> list[Struct]:
    """Every struct to generate a class for, each nested struct before its first holder."""
    roots = _module_structs(schemas) + _module_structs(schemas_vendor)
    for spec in optable.OPS.values():
        roots += [spec.request, spec.response]
    ordered: dict[str, Struct] = {}

    def visit(struct: Struct) -> None:
        seen = ordered.get(struct.name)
        if seen is not None:
            if seen is not struct and seen.annotations() != struct.annotations():
                raise ValueError(f"two different structs are named {struct.name}")
            return
        for f in struct.fields:
            if isinstance(f.type, Struct):
                visit(f.type)
        ordered[struct.name] = struct

    for root in roots:
        visit(root)
    return list(ordered.values())


def render_class(struct: Struct) -> str:
    order = struct.attribute_order()
    names = repr(tuple(f.name for f in order))
    lines = ["", "", "@dataclass(init=False, repr=False, eq=False)", f"class {struct.name}(Message):",
             "    SCHEMA: ClassVar[Struct]", f"    FIELDS = {names}"]
    annotations = struct.annotations()
    if order:
        lines.append("")
    for f in order:
        default = " = None" if f.optional else ""
        lines.append(f"    {f.name}: {annotations[f.name]}{default}")
    params = ", ".join(f"{f.name}: {annotations[f.name]}" + (" = None" if f.optional else "") for f in order)
    lines += ["", f"    def __init__(self{', ' if params else ''}{params}) -> None:"]
    if order:
        lines.append("        d = self.__dict__")
    lines += [f"        d[{f.name!r}] = {f.name}" for f in order] or ["        pass"]
    return "\n".join(lines) + "\n"


def render() -> str:
    """The text of messages.py for the current schemas."""
    return HEADER + "".join(render_class(s) for s in structs())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    current = TARGET.read_text() if TARGET.exists() else None
    if "--check" in args:
        if current != text:
            print(f"{TARGET} is stale: run python -m pyhsm.protocol.ddi.typegen", file=sys.stderr)
            return 1
        return 0
    if current != text:
        TARGET.write_text(text)
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
