"""The trace record (one JSON line per event) and the backend's recorder.

Record fields: ``time`` (UNIX seconds), ``source`` (``backend`` or ``device``), ``event``
(``command``, ``reset``, ``admin``), ``device`` (serial), ``partition``, ``queue`` (qid; 0 is the admin
queue), ``cid``, ``msg_id``, ``session_id``, ``session_op``, ``op`` (DDI opcode name, or the admin
opcode name), ``status`` (CQE status, 0 on success), ``ddi_status`` (from the MBOR response),
``latency_us``, ``request_bytes``, ``response_bytes``, ``request`` and ``response`` (decoded, secrets
redacted). Absent fields are omitted.

The trace file is private: created with mode 0600, and set to 0600 if it existed with a wider mode.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from pyhsm.protocol import link
from pyhsm.protocol.ddi.decode import decode_request, decode_response

log = logging.getLogger("pyhsm.tools.trace")


def command_record(device: str, partition: int, msg_id: int, request: link.Request,
                   response: link.Response, latency_s: float) -> dict[str, Any]:
    """The ``command`` record of one executed link REQUEST (HSM queue)."""
    decoded_request = decode_request(request.payload) if request.opc == 0 else {"flush": True}
    decoded_response = decode_response(response.payload, decoded_request.get("opcode"))
    record: dict[str, Any] = {
        "time": round(time.time(), 6), "source": "backend", "event": "command",
        "device": device, "partition": partition, "queue": request.qid, "cid": request.cid,
        "msg_id": msg_id, "session_id": request.session_id,
        "session_op": request.flags.op.name, "op": decoded_request.get("op", "FlushSession"),
        "status": response.status, "latency_us": round(latency_s * 1e6, 1),
        "request_bytes": len(request.payload), "response_bytes": len(response.payload),
        "request": decoded_request, "response": decoded_response}
    if "ddi_status" in decoded_response:
        record["ddi_status"] = decoded_response["ddi_status"]
    return record


class Recorder:
    """Appends records to ``path`` as JSON lines, flushed per record so ``--follow`` sees them.

    Thread-safe. A write failure is logged once and tracing stops; it never fails a command.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = _open_private(path)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                log.error("trace %s: write failed, tracing stopped: %s", self.path, exc)
                self._file = None

    def command(self, device: str, partition: int, msg_id: int, request: link.Request,
                response: link.Response, latency_s: float) -> None:
        self.write(command_record(device, partition, msg_id, request, response, latency_s))

    def reset(self, device: str, partition: int, kind: int) -> None:
        self.write({"time": round(time.time(), 6), "source": "backend", "event": "reset",
                    "device": device, "partition": partition, "op": _reset_name(kind)})

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _open_private(path: Path) -> TextIO:
    """``path`` opened for appending, mode 0600 whether it is new or not."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _reset_name(kind: int) -> str:
    try:
        return f"reset:{link.ResetKind(kind).name}"
    except ValueError:
        return f"reset:{kind}"
