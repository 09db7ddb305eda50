"""DDI operation handlers, one module per family, joined into ``HANDLERS`` here and nowhere else.

``HANDLERS`` maps an op name of ``pyhsm.protocol.ddi.optable.BY_NAME`` to its handler; building it
checks that no two families declare one op and that every handler names a declared op.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyhsm.backend.ddi.call import Handler
from pyhsm.backend.ddi.ops import aes, attest, bk3, certs, credentials, cvm, derive, ecc, info, keymgmt, pqc, rsa
from pyhsm.protocol.ddi.optable import BY_NAME


def join(*families: Mapping[str, Handler]) -> dict[str, Handler]:
    """The union of handler tables; raises ``ValueError`` on an op handled twice or not declared."""
    joined: dict[str, Handler] = {}
    for family in families:
        for name, fn in family.items():
            if name in joined or name not in BY_NAME:
                raise ValueError(f"handler of {name!r}: " + ("declared twice" if name in joined else "no such op"))
            joined[name] = fn
    return joined


HANDLERS: dict[str, Handler] = join(
    aes.HANDLERS, attest.HANDLERS, bk3.HANDLERS, certs.HANDLERS, credentials.HANDLERS, cvm.HANDLERS,
    derive.HANDLERS, ecc.HANDLERS, info.HANDLERS, keymgmt.HANDLERS, pqc.HANDLERS, rsa.HANDLERS)
