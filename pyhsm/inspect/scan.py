"""Leak scan: where in guest memory do given secret byte strings appear?

The secrets file (``pyhsm serve --secrets-out FILE``) holds one JSON object per line:
``{"label": "...", "hex": "..."}``. Strings shorter than ``MIN_LENGTH`` are refused: they would match
by chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyhsm.inspect.memory import PhysicalMemory

MIN_LENGTH = 16


@dataclass(frozen=True)
class Secret:
    label: str
    value: bytes


@dataclass(frozen=True)
class Hit:
    label: str
    phys: int


def load_secrets(path: Path) -> list[Secret]:
    """Secrets from a secrets file; raises ``ValueError`` on a malformed line or a short secret."""
    secrets = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            secret = Secret(str(item["label"]), bytes.fromhex(item["hex"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a secret line ({exc})") from None
        if len(secret.value) < MIN_LENGTH:
            raise ValueError(f"{path}:{number}: {secret.label} is shorter than {MIN_LENGTH} bytes")
        secrets.append(secret)
    return secrets


def scan(memory: PhysicalMemory, secrets: list[Secret]) -> list[Hit]:
    """Every place any secret appears in full (never printing the secret itself)."""
    return [Hit(s.label, phys) for s in secrets for phys in memory.find_all(s.value)]
