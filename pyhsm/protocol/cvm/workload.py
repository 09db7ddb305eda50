"""What the confidential workload's guest and host agree on: policy names, the result key and the
signed result's context, the relay prefix of host-typed console lines, and the job whose result the
host recomputes from the data disk's files (docs/confidential.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

POLICY_WORKLOAD = "confidential"
OTHER_WORKLOAD = "confidential-fabric"    # the policy bound to the other VM (the host's fabric)
RESULT_KEY_TAG = 0x5C01            # the ML-DSA-65 key the host provisions for results
RESULT_CONTEXT = b"pyhsm-confidential-result"
RELAY_PREFIX = "@host "      # a console line from the host: a signed owner command to relay


def job_result(root: Path) -> dict[str, Any]:
    """The job: SHA-256, line and word count of every file under ``root`` (sorted by name)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "lost+found" not in p.parts):
        data = path.read_bytes()
        files[str(path.relative_to(root))] = {"sha256": hashlib.sha256(data).hexdigest(),
                                              "lines": data.count(b"\n"),
                                              "words": len(data.split())}
    return {"files": files, "total_words": sum(f["words"] for f in files.values())}


def result_message(result: dict[str, Any], statement: bytes) -> bytes:
    """The signed bytes: canonical JSON of the result and the release statement's SHA-384."""
    return json.dumps({"result": result, "statement_sha384": hashlib.sha384(statement).hexdigest()},
                      sort_keys=True, separators=(",", ":")).encode()
