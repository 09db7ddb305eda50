"""AES traffic from several guest processes through faults: the pieces the ``aes_backend_kill`` and
``aes_reset`` workloads share.

``import_tagged_keys`` imports bulk keys of known bytes under fixed tags (app keys: they survive a
backend restart and a controller reset, an NSSR deletes them and ``import_tagged_keys`` puts them back).
``Streams`` forks worker processes; each opens its own descriptor and session, re-opens the keys by tag
(OpenKey), and loops GCM and XTS on 4 KiB buffers, each output checked against ``cryptography``. A call
that fails is recorded (what it raised, how long it took) and the worker recovers the way the DDI
rules say: close the descriptor, open a new one and a new session, re-open the keys by tag, retrying
until that works. Counters live in a shared anonymous mapping, so the agent can wait for "every worker
failed" or "every worker works again" while they run; at ``stop`` each worker sends its report through
a pipe.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import re
import struct
import time
from typing import Any, Callable

from pyhsm.client import credential
from pyhsm.guest.workloads import Context
from pyhsm.guest.workloads.device import open_client, open_new_client

TAGS = {"gcm": 0x0A51, "xts1": 0x0A52, "xts2": 0x0A53}
CLASSES = {"gcm": "AesGcmBulk", "xts1": "AesXtsBulk", "xts2": "AesXtsBulk"}
WORKERS = 4
OP_BYTES = 4096
DRIVER_TIMEOUT_S = 6.0        # azihsm's abort_timeout_in_sec default
FAIL_BOUND_S = DRIVER_TIMEOUT_S + 2.0   # the longest a failing call may take
RECOVER_PAUSE_S = 0.2
# ok, errors, ok since the last error, max failing call (ms)
SLOT = struct.Struct("<IIII")
STOP_AT = 0                   # byte 0 of the mapping: the stop flag; slots follow from byte 8
SLOTS_AT = 8
DEFINED_ERRORS = ("AesError", "DdiError", "DeviceError", "OSError EAGAIN", "OSError EINVAL", "OSError EBUSY")


def import_tagged_keys(context: Context) -> dict[str, Any]:
    """Import the three bulk keys (random bytes kept in the context) under TAGS through RsaUnwrap, on a
    session of the workload's client that is closed again; keys already there (by tag) are kept."""
    from pyhsm.client import DdiError, Usage
    from pyhsm.guest.workloads.aes import _wrap
    from pyhsm.protocol.ddi.types import KeyClass
    material = context.setdefault("aes_keys", {name: os.urandom(32) for name in TAGS})
    client = open_client(context)
    credential.open_session(client)
    try:
        kek = client.get_unwrapping_key()
        ids = {}
        for name, tag in TAGS.items():
            try:
                ids[name] = client.open_key(tag).bulk_key_id
                continue
            except DdiError:
                pass
            blob = _wrap(bytes(kek.pub_key.der), material[name])
            ids[name] = client.rsa_unwrap(kek.key_id, blob, KeyClass[CLASSES[name]], Usage.ENCRYPT_DECRYPT,
                                          tag=tag).bulk_key_id
    finally:
        client.close_session()
    return {"bulk_key_ids": ids, "tags": {n: hex(t) for n, t in TAGS.items()}}


def error_kind(exc: BaseException) -> str:
    """A short class of a failure: ``AesError 0x701``, ``OSError EAGAIN ext 0x4000002``, ``DdiError InvalidArg``."""
    name = type(exc).__name__
    if name == "AesError":
        return f"AesError 0x{getattr(exc, 'result', 0):03X}/{getattr(exc, 'err', 0):#x}"
    if name == "DdiError":
        return f"DdiError {getattr(exc, 'name', '?')}"
    if name == "DeviceError":
        return f"DeviceError {str(exc)[:40]}"
    if isinstance(exc, OSError) and exc.errno:
        ext = re.search(r"extended status (0x[0-9a-f]+)", str(exc))
        return f"OSError {errno.errorcode.get(exc.errno, exc.errno)}" + (f" ext {ext.group(1)}" if ext else "")
    return f"{name}: {str(exc)[:80]}"


def defined(kind: str) -> bool:
    return kind.startswith(DEFINED_ERRORS)


class _Worker:
    """One forked process's loop (never returns into the agent)."""

    def __init__(self, context: Context, index: int, shared: mmap.mmap) -> None:
        self.context, self.index, self.shared = context, index, shared
        self.ok = self.errors = self.ok_since = self.max_fail_ms = 0
        self.kinds: dict[str, int] = {}
        self.examples: list[str] = []
        self.recoveries = 0
        self.client: Any = None
        self.ids: dict[str, int] = {}
        self.keys: dict[str, int] = {}

    def _publish(self) -> None:
        SLOT.pack_into(self.shared, SLOTS_AT + SLOT.size * self.index, self.ok, self.errors, self.ok_since,
                       self.max_fail_ms)

    def _failed(self, exc: BaseException, seconds: float | None) -> None:
        kind = error_kind(exc)
        self.errors += 1
        self.ok_since = 0
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if len(self.examples) < 4 and kind not in " ".join(self.examples):
            self.examples.append(f"{kind}: {str(exc)[:160]}")
        if seconds is not None:
            self.max_fail_ms = max(self.max_fail_ms, int(seconds * 1000))
        self._publish()

    def _drop_client(self) -> None:
        if self.client is not None:
            try:
                self.client.transport.close()
            except OSError:
                pass
            self.client = None

    def _connect(self) -> None:
        """New descriptor and session, keys re-opened by tag."""
        client = open_new_client(self.context)
        try:
            opened = credential.open_session(client)
            self.keys = {name: client.open_key(tag).bulk_key_id for name, tag in TAGS.items()}
        except BaseException:
            client.transport.close()
            raise
        self.client, self.ids = client, {"session_id": opened.sess_id, "short_app_id": opened.short_app_id}

    def _one(self, n: int) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        material = self.context["aes_keys"]
        t = self.client.transport
        data = os.urandom(OP_BYTES)
        if n % 2 == 0:
            iv = os.urandom(12)
            enc = t.aes_gcm_encrypt(self.keys["gcm"], iv, data, b"stream", **self.ids)
            if enc.data + enc.tag != AESGCM(material["gcm"]).encrypt(iv, data, b"stream"):
                raise AssertionError("GCM output differs from cryptography")
        else:
            tweak = n.to_bytes(16, "little")
            ct = t.aes_xts_encrypt(self.keys["xts1"], self.keys["xts2"], tweak, data, **self.ids)
            ref = Cipher(algorithms.AES(material["xts1"] + material["xts2"]), modes.XTS(tweak)).encryptor()
            if ct != ref.update(data) + ref.finalize():
                raise AssertionError("XTS output differs from cryptography")

    def run(self, report_fd: int) -> None:
        n = 0
        while not self.shared[STOP_AT]:
            if self.client is None:
                try:
                    self._connect()
                    self.recoveries += 1
                except Exception as exc:
                    self._failed(exc, None)
                    time.sleep(RECOVER_PAUSE_S)
                    continue
            started = time.monotonic()
            try:
                self._one(n)
            except AssertionError:
                raise
            except Exception as exc:
                self._failed(exc, time.monotonic() - started)
                self._drop_client()
                continue
            n += 1
            self.ok += 1
            self.ok_since += 1
            self._publish()
        self._drop_client()
        report = {"ok": self.ok, "errors": self.errors, "ok_after_last_error": self.ok_since,
                  "max_failing_call_s": self.max_fail_ms / 1000, "sessions_opened": self.recoveries,
                  "error_kinds": self.kinds, "examples": self.examples}
        os.write(report_fd, json.dumps(report).encode())


class Streams:
    """``workers`` forked AES workers (see the module docstring)."""

    def __init__(self, context: Context, workers: int = WORKERS) -> None:
        self.context, self.workers = context, workers
        self.shared = mmap.mmap(-1, mmap.PAGESIZE)
        self.children: list[tuple[int, int]] = []    # (pid, report pipe read end)

    def start(self) -> None:
        for index in range(self.workers):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:   # child: never return into the agent
                code = 0
                os.close(read_fd)
                try:
                    _Worker(self.context, index, self.shared).run(write_fd)
                except BaseException as exc:
                    print(f"pyhsm-guest: AES stream {index} failed: {type(exc).__name__}: {exc}", flush=True)
                    os.write(write_fd, json.dumps({"fatal": f"{type(exc).__name__}: {exc}"}).encode())
                    code = 1
                os._exit(code)
            os.close(write_fd)
            self.children.append((pid, read_fd))

    def counters(self) -> list[dict[str, int]]:
        rows = [SLOT.unpack_from(self.shared, SLOTS_AT + SLOT.size * i) for i in range(self.workers)]
        return [{"ok": r[0], "errors": r[1], "ok_since": r[2], "max_fail_ms": r[3]} for r in rows]

    def wait(self, what: str, done: Callable[[dict[str, int]], bool], patience_s: float) -> float:
        """Wait until ``done`` holds for every worker; returns the seconds it took."""
        started = time.monotonic()
        while True:
            rows = self.counters()
            if all(done(r) for r in rows):
                return round(time.monotonic() - started, 2)
            if time.monotonic() - started > patience_s:
                raise TimeoutError(f"not every AES stream {what} within {patience_s:.0f} s: {rows}")
            if any(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) for pid, _ in self.children):
                raise RuntimeError(f"an AES stream process ended early: {rows}")
            time.sleep(0.1)

    def stop(self) -> list[dict[str, Any]]:
        """Stop the workers and return their reports; raises if one died or saw a wrong output, an
        undefined error, or a failing call longer than FAIL_BOUND_S."""
        self.shared[STOP_AT] = 1
        reports = []
        for pid, read_fd in self.children:
            _, status = os.waitpid(pid, 0)
            raw = b""
            while chunk := os.read(read_fd, 65536):
                raw += chunk
            os.close(read_fd)
            report = json.loads(raw or b'{"fatal": "no report"}')
            report["exit_status"] = status
            reports.append(report)
        self.children.clear()
        bad = [r for r in reports if "fatal" in r or r["exit_status"]]
        if bad:
            raise RuntimeError(f"AES stream processes failed: {bad}")
        undefined = {k for r in reports for k in r["error_kinds"] if not defined(k)}
        if undefined:
            raise RuntimeError(f"undefined failures: {sorted(undefined)}; reports {reports}")
        slow = [r["max_failing_call_s"] for r in reports if r["max_failing_call_s"] > FAIL_BOUND_S]
        if slow:
            raise RuntimeError(f"failing calls took {slow} s (bound {FAIL_BOUND_S} s)")
        return reports


def summary(reports: list[dict[str, Any]], waited_s: float) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for r in reports:
        for k, n in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
    return {"workers": len(reports), "ok": [r["ok"] for r in reports], "errors": [r["errors"] for r in reports],
            "ok_after_last_error": [r["ok_after_last_error"] for r in reports],
            "max_failing_call_s": max(r["max_failing_call_s"] for r in reports), "error_kinds": kinds,
            "recovered_in_s": waited_s, "examples": reports[0]["examples"]}


def aes_queue_count() -> int:
    """The AES queues the driver created (its probe line in the kernel log)."""
    import subprocess
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    found = re.findall(r"(\d+) AES queues x", log)
    return int(found[-1]) if found else 0
