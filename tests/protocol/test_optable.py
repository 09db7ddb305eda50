"""The op table and the handler table are built explicitly, once (docs/architecture.md, "Layers").

Importing any one module that needs the op table sees every op, DDI and vendor alike: no table
depends on which other modules happen to have been imported before.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyhsm.backend.ddi import ops
from pyhsm.protocol.ddi import optable
from pyhsm.protocol.ddi.schemas import DDI_OPS, OpSpec, SessionKind
from pyhsm.protocol.ddi.schemas_vendor import VENDOR_OPS

MODULES_THAT_DECODE = ("pyhsm.tools.inspect.rings", "pyhsm.protocol.ddi.decode", "pyhsm.client",
                       "pyhsm.backend.ddi.partition")


@pytest.mark.parametrize("module", MODULES_THAT_DECODE)
def test_importing_one_module_alone_sees_every_op(module: str) -> None:
    code = (f"import {module}\n"
            "from pyhsm.protocol.ddi.optable import OPS\n"
            "from pyhsm.protocol.ddi.decode import status_name\n"
            "print(len(OPS), OPS[0x8012].name, status_name(0x08F00001))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(DDI_OPS) + len(VENDOR_OPS)), "CvmReleaseKey", "CvmOwnerNotSet"]


def test_the_op_table_is_the_union_of_the_two_declarations() -> None:
    assert optable.OPS == {**DDI_OPS, **VENDOR_OPS}
    assert set(optable.BY_NAME) == {spec.name for spec in optable.OPS.values()}


def test_joining_refuses_an_opcode_or_a_name_declared_twice() -> None:
    spec = next(iter(DDI_OPS.values()))
    with pytest.raises(ValueError, match="declared twice"):
        optable.join(DDI_OPS, {spec.code: spec})
    renamed = OpSpec(0x7FFF, spec.name, SessionKind.NO_SESSION, spec.request, spec.response)
    with pytest.raises(ValueError, match="declared twice"):
        optable.join(DDI_OPS, {renamed.code: renamed})


def test_every_op_has_exactly_one_handler() -> None:
    assert set(ops.HANDLERS) == set(optable.BY_NAME)
    with pytest.raises(ValueError, match="declared twice"):
        ops.join(ops.aes.HANDLERS, ops.aes.HANDLERS)
    with pytest.raises(ValueError, match="no such op"):
        ops.join({"NoSuchOp": ops.info.get_api_rev})
