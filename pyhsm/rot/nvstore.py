"""The device's non-volatile store (``nv.json`` in the device directory): PUF helper data and the
anti-rollback minimum SVN of every firmware stage. Written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyhsm.rot.errors import RootOfTrustFailure
from pyhsm.rot.extractor import HelperData

NV_FORMAT = 1


@dataclass
class NvStore:
    path: Path
    helper: HelperData | None = None
    min_svn: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> "NvStore":
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != NV_FORMAT:
                raise ValueError("unknown format")
            helper = HelperData.from_json(data["helper"]) if data.get("helper") else None
            min_svn = {str(k): int(v) for k, v in data.get("min_svn", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RootOfTrustFailure(f"NV store {path}: unreadable ({e})") from None
        return cls(path, helper, min_svn)

    def save(self) -> None:
        data = {"format": NV_FORMAT, "helper": self.helper.to_json() if self.helper else None,
                "min_svn": self.min_svn}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.path)
