"""The device's non-volatile store (``nv.json`` in the device directory): PUF helper data, the
anti-rollback minimum SVN of every firmware stage, and the monotonic counters that bind each partition's
state file to its latest version (docs/root-of-trust.md, docs/security.md).

Written through ``pyhsm.backend.privfile.write_atomic`` (0600, fsynced, renamed) and only when its content
changed. Format 1 (no counters) is read as format 2 with every counter at 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pyhsm.backend.privfile import write_atomic
from pyhsm.backend.rot.extractor import HelperData
from pyhsm.protocol.dice.errors import RootOfTrustFailure

NV_FORMAT = 2
_READABLE_FORMATS = (1, NV_FORMAT)


@dataclass
class NvStore:
    path: Path
    helper: HelperData | None = None
    min_svn: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    _saved: bytes = field(default=b"", repr=False)

    @classmethod
    def open(cls, path: Path) -> "NvStore":
        if not path.exists():
            return cls(path)
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
            if data.get("format") not in _READABLE_FORMATS:
                raise ValueError("unknown format")
            helper = HelperData.from_json(data["helper"]) if data.get("helper") else None
            min_svn = {str(k): int(v) for k, v in data.get("min_svn", {}).items()}
            counters = {str(k): int(v) for k, v in data.get("counters", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RootOfTrustFailure(f"NV store {path}: unreadable ({e})") from None
        store = cls(path, helper, min_svn, counters)
        store._saved = raw
        return store

    def save(self) -> None:
        """Write the store durably if it differs from what is on disk."""
        content = {"format": NV_FORMAT, "helper": self.helper.to_json() if self.helper else None,
                   "min_svn": self.min_svn, "counters": self.counters}
        encoded = (json.dumps(content, indent=1) + "\n").encode()
        if encoded != self._saved:
            write_atomic(self.path, encoded)
            self._saved = encoded
