"""RSA key generation in a helper process (docs/security.md, "Fairness and resource limits").

OpenSSL's RSA key generation, as ``cryptography`` calls it, keeps the interpreter lock for
milliseconds at a time over its ~100 ms, which would stall every other device's commands in the
backend. A child process of the backend (same trust: it is part of the HSM) generates keys instead and
hands each back over a pipe. It starts on first use and exits when its standard input closes, so it
never outlives the backend, however the backend ends.

Protocol on the child's stdin/stdout: a request is the key size as a 4-byte big-endian integer; the
answer is the PKCS#8 DER of the new key, preceded by its length (4 bytes, big-endian).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import IO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_LENGTH = 4


class _Helper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def generate_der(self, bits: int) -> bytes:
        with self._lock:
            for attempt in (1, 2):          # a helper that died is started again once
                proc = self._running()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(bits.to_bytes(_LENGTH, "big"))
                    proc.stdin.flush()
                    return _read_answer(proc.stdout)
                except (OSError, EOFError):
                    self._proc = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", "pyhsm.backend.ddi.rsa_keygen"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self._proc


_HELPER = _Helper()


def generate(bits: int) -> rsa.RSAPrivateKey:
    """A new RSA key of ``bits`` bits (public exponent 65537), generated in the helper process."""
    key = serialization.load_der_private_key(_HELPER.generate_der(bits), None,
                                             unsafe_skip_rsa_key_validation=True)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _read_answer(stream: IO[bytes]) -> bytes:
    length = _read_exactly(stream, _LENGTH)
    return _read_exactly(stream, int.from_bytes(length, "big"))


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError("RSA key helper ended")
    return data


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The helper's loop: one key per request until its input closes."""
    while len(size := requests.read(_LENGTH)) == _LENGTH:
        der = rsa.generate_private_key(65537, int.from_bytes(size, "big")).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        answers.write(len(der).to_bytes(_LENGTH, "big") + der)
        answers.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
