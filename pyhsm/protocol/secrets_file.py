"""The debugging secrets file: what ``pyhsm serve --secrets-out FILE`` writes and ``pyhsm inspect
--scan-secrets FILE`` reads (docs/debugging.md).

One JSON object per line: ``{"label": "...", "hex": "..."}``. Strings shorter than ``MIN_LENGTH`` are
refused: they would match guest memory by chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MIN_LENGTH = 16


@dataclass(frozen=True)
class Secret:
    label: str
    value: bytes


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


def encode(secrets: list[Secret]) -> bytes:
    """The file's content for ``secrets``."""
    return b"".join(json.dumps({"label": s.label, "hex": s.value.hex()}).encode() + b"\n" for s in secrets)
