"""The one table of every operation the device answers: the DDI's (``schemas.DDI_OPS``) and the
vendor's (``schemas_vendor.VENDOR_OPS``), joined here and nowhere else (docs/ddi.md, docs/vendor-ops.md).

``OPS`` maps an opcode to its ``OpSpec``; ``BY_NAME`` maps the op's name to the same spec. Importing
this module is all a decoder, an encoder or a dispatcher needs to know every op.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyhsm.protocol.ddi.schemas import DDI_OPS, OpSpec
from pyhsm.protocol.ddi.schemas_vendor import VENDOR_OPS


def join(*tables: Mapping[int, OpSpec]) -> dict[int, OpSpec]:
    """The union of op tables; raises ``ValueError`` if two tables declare one opcode or one name."""
    joined: dict[int, OpSpec] = {}
    names: set[str] = set()
    for table in tables:
        for code, spec in table.items():
            if code in joined or spec.name in names:
                raise ValueError(f"op 0x{code:x} {spec.name} declared twice")
            joined[code] = spec
            names.add(spec.name)
    return joined


OPS: dict[int, OpSpec] = join(DDI_OPS, VENDOR_OPS)
BY_NAME: dict[str, OpSpec] = {spec.name: spec for spec in OPS.values()}
