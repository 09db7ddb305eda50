"""Leak scan: where in guest memory do given secret byte strings appear?

The secrets come from the file ``pyhsm serve --secrets-out FILE`` writes (``pyhsm.protocol.secrets_file``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyhsm.protocol.secrets_file import Secret
from pyhsm.tools.inspect.memory import PhysicalMemory


@dataclass(frozen=True)
class Hit:
    label: str
    phys: int


def scan(memory: PhysicalMemory, secrets: list[Secret]) -> list[Hit]:
    """Every place any secret appears in full (never printing the secret itself)."""
    return [Hit(s.label, phys) for s in secrets for phys in memory.find_all(s.value)]
