"""DDI throughput through the backend socket against the same primitive called directly, in one run.

Operations: EccSign P-384, EcdhKeyExchange P-384, AesEncryptDecrypt (CBC, 1 KiB) and Hmac
(HMAC-SHA-384, 1 KiB), each with 1 and 8 concurrent sessions (one client thread per session, all on
one device connection, as guest processes share one device). The backend runs as its own process
(tests/backend/ddi/ddi_backend.py: the real link server and DDI partition). The direct anchor calls
``cryptography`` in this process with the same number of threads. Goal: EccSign P-384 at 8 sessions
>= 70 % of the direct rate.

    build/venv/bin/python -m tests.bench.bench_ddi [seconds per measurement, default 3]

Each measurement alternates backend and direct slices (5 each) and reports the medians, so that both
sides see the same background load on a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from cryptography.hazmat.primitives import hashes, hmac, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

from pyhsm.client import HsmClient, Usage  # noqa: E402
from pyhsm.client.socket_transport import SocketTransport  # noqa: E402
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve, HashAlgorithm, KeyType  # noqa: E402
from tests.backend.ddi import ddi_backend

APP_ID, PIN = bytes.fromhex("0123456789abcdef0123456789abcdef"), b"bench-pin-012345"
MSG = os.urandom(1024)
DIGEST = os.urandom(48)
GOAL = 0.70
SLICES = 5


def rate(workers: list[Callable[[], object]], seconds: float) -> float:
    """Operations per second of all workers running concurrently, one thread each."""
    stop = time.perf_counter() + seconds
    counts = [0] * len(workers)
    barrier = threading.Barrier(len(workers) + 1)

    def run(i: int) -> None:
        fn = workers[i]
        barrier.wait()
        n = 0
        while time.perf_counter() < stop:
            fn()
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def direct_ops() -> dict[str, Callable[[], Callable[[], object]]]:
    """Per-worker factories of the in-process primitives."""
    def sign() -> Callable[[], object]:
        key = ec.generate_private_key(ec.SECP384R1())
        return lambda: key.sign(DIGEST, ec.ECDSA(Prehashed(hashes.SHA384())))

    def ecdh() -> Callable[[], object]:
        key = ec.generate_private_key(ec.SECP384R1())
        peer = ec.generate_private_key(ec.SECP384R1()).public_key()
        return lambda: key.exchange(ec.ECDH(), peer)

    def aes() -> Callable[[], object]:
        key, iv = os.urandom(32), os.urandom(16)

        def once() -> bytes:
            enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            return enc.update(MSG) + enc.finalize()
        return once

    def mac() -> Callable[[], object]:
        key = os.urandom(48)

        def once() -> bytes:
            h = hmac.HMAC(key, hashes.SHA384())
            h.update(MSG)
            return h.finalize()
        return once

    return {"EccSign P-384": sign, "EcdhKeyExchange P-384": ecdh, "AesEncryptDecrypt 1 KiB": aes,
            "Hmac SHA-384 1 KiB": mac}


def backend_ops(client: HsmClient) -> dict[str, Callable[[], object]]:
    """One session's operations on its own keys."""
    sign_key = client.ecc_generate_key_pair(EccCurve.P384, session_only=True).private_key_id
    derive_key = client.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE, session_only=True).private_key_id
    peer = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    aes_key = client.aes_generate_key(AesKeySize.Aes256, session_only=True).key_id
    secret = client.ecdh_key_exchange(derive_key, peer, KeyType.Secret384, session_only=True).key_id
    hmac_key = client.hkdf_derive(secret, HashAlgorithm.Sha384, KeyType.HmacSha384, Usage.SIGN_VERIFY,
                                  session_only=True).key_id
    iv = os.urandom(16)
    return {
        "EccSign P-384": lambda: client.ecc_sign(sign_key, DIGEST),
        # ECDH creates a session key per call; the key is deleted in the same measured step.
        "EcdhKeyExchange P-384": lambda: client.delete_key(
            client.ecdh_key_exchange(derive_key, peer, KeyType.Secret384, session_only=True).key_id),
        "AesEncryptDecrypt 1 KiB": lambda: client.aes_encrypt_decrypt(aes_key, AesOp.Encrypt, MSG, iv),
        "Hmac SHA-384 1 KiB": lambda: client.hmac(hmac_key, MSG),
    }


@contextlib.contextmanager
def backend_socket() -> Iterator[Path]:
    """The socket of a backend process (tests/backend/ddi/ddi_backend.py: the real link server and DDI
    partition), stopped when the block ends."""
    work = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    sock = work / "hsm.sock"
    backend = ddi_backend.start(sock, work)
    try:
        assert backend.stdout is not None and backend.stdout.readline().strip() == "ready"
        yield sock
    finally:
        backend.terminate()
        backend.wait(10)


def provisioned_clients(sock: Path, serial: str, sessions: int) -> list[HsmClient]:
    """``sessions`` clients of device ``serial``, each with an open session, sharing one connection."""
    transport = SocketTransport(sock, serial=serial)
    setup = HsmClient(transport)
    setup.establish_credential(APP_ID, PIN, setup.init_bk3(bytes(range(48))),
                               ec.generate_private_key(ec.SECP384R1()))
    clients = [HsmClient(transport) for _ in range(sessions)]
    for c in clients:
        c.open_session(APP_ID, PIN)
    return clients


@contextlib.contextmanager
def backend_clients(serial: str, sessions: int) -> Iterator[list[HsmClient]]:
    """``sessions`` clients with open sessions on one connection to a backend process."""
    with backend_socket() as sock:
        clients = provisioned_clients(sock, serial, sessions)
        yield clients
        clients[0].transport.close()


def compare(per_session: list[dict[str, Callable[[], object]]],
            direct: dict[str, Callable[[], Callable[[], object]]], counts: tuple[int, ...],
            seconds: float) -> dict[tuple[str, int], float]:
    """Print backend and direct rates per operation and session count; return the ratios.

    Backend and direct slices alternate (``SLICES`` each) so both see the same background load;
    the table shows medians and the machine's load after each row."""
    print(f"{'operation':26} {'sessions':>8} {'backend op/s':>13} {'direct op/s':>12} {'ratio':>7} {'load':>5}")
    ratios = {}
    for name, factory in direct.items():
        for n in counts:
            backend_workers = [per_session[i][name] for i in range(n)]
            direct_workers = [factory() for _ in range(n)]
            pairs = [(rate(backend_workers, seconds / SLICES), rate(direct_workers, seconds / SLICES))
                     for _ in range(SLICES)]
            via_backend = statistics.median(b for b, _ in pairs)
            direct_rate = statistics.median(d for _, d in pairs)
            ratios[(name, n)] = statistics.median(b / d for b, d in pairs)
            print(f"{name:26} {n:8d} {via_backend:13.0f} {direct_rate:12.0f} {ratios[(name, n)]:7.1%} "
                  f"{os.getloadavg()[0]:5.2f}")
    return ratios


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    with backend_clients("BENCH-0001", 8) as clients:
        ratios = compare([backend_ops(c) for c in clients], direct_ops(), (1, 8), seconds)
    ratio = ratios[("EccSign P-384", 8)]
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"goal: EccSign P-384 at 8 sessions >= {GOAL:.0%} of direct: {ratio:.1%} ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
