"""Post-quantum throughput through the backend socket against the same calls made directly with
``cryptography`` in this process, in one run: ML-DSA-65 sign (1 KiB message) and ML-KEM-768
decapsulation, with 1 and 2 sessions (one client thread each, sharing one device connection).

The backend is its own process (tests/ddi/ddi_backend.py: the real link server and DDI partition).
MlKemDecapsulate stores the shared secret as a session key, so each measured backend step also
deletes that key (two round trips); the direct anchor is one ``decapsulate`` call.

    build/venv/bin/python tests/bench/bench_pqc.py [seconds per measurement, default 3]

Backend and direct slices alternate (5 each) and medians are reported, as in bench_ddi.py.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_ddi import APP_ID, PIN, SLICES, rate  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem  # noqa: E402

from pyhsm.client import HsmClient  # noqa: E402
from pyhsm.client.socket_transport import SocketTransport  # noqa: E402

MSG = os.urandom(1024)


def direct_ops() -> dict[str, Callable[[], Callable[[], object]]]:
    def sign() -> Callable[[], object]:
        key = mldsa.MLDSA65PrivateKey.generate()
        return lambda: key.sign(MSG)

    def decaps() -> Callable[[], object]:
        key = mlkem.MLKEM768PrivateKey.generate()
        _, ct = key.public_key().encapsulate()
        return lambda: key.decapsulate(ct)

    return {"ML-DSA-65 sign 1 KiB": sign, "ML-KEM-768 decapsulate": decaps}


def backend_ops(client: HsmClient) -> dict[str, Callable[[], object]]:
    sign_key = client.mldsa_generate_key(65, session_only=True).key_id
    kem = client.mlkem_generate_key(768, session_only=True)
    _, ct = mlkem.MLKEM768PublicKey.from_public_bytes(kem.pub_key).encapsulate()
    return {
        "ML-DSA-65 sign 1 KiB": lambda: client.mldsa_sign(sign_key, MSG),
        "ML-KEM-768 decapsulate": lambda: client.delete_key(
            client.mlkem_decapsulate(kem.key_id, ct, session_only=True).key_id),
    }


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    work = Path(tempfile.mkdtemp(prefix="bench-pqc-"))
    sock = work / "hsm.sock"
    backend = subprocess.Popen([sys.executable, str(ROOT / "tests/ddi/ddi_backend.py"), str(sock), str(work)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert backend.stdout is not None and backend.stdout.readline().strip() == "ready"
        transport = SocketTransport(sock, serial="BENCH-PQC-0001")
        setup = HsmClient(transport)
        setup.establish_credential(APP_ID, PIN, setup.init_bk3(bytes(range(48))),
                                   ec.generate_private_key(ec.SECP384R1()))
        clients = [HsmClient(transport) for _ in range(2)]
        for c in clients:
            c.open_session(APP_ID, PIN)
        per_session = [backend_ops(c) for c in clients]
        print(f"{'operation':26} {'sessions':>8} {'backend op/s':>13} {'direct op/s':>12} {'ratio':>7}")
        for name, factory in direct_ops().items():
            for n in (1, 2):
                backend_workers = [per_session[i][name] for i in range(n)]
                direct_workers = [factory() for _ in range(n)]
                pairs = [(rate(backend_workers, seconds / SLICES), rate(direct_workers, seconds / SLICES))
                         for _ in range(SLICES)]
                via_backend = statistics.median(b for b, _ in pairs)
                direct = statistics.median(d for _, d in pairs)
                ratio = statistics.median(b / d for b, d in pairs)
                print(f"{name:26} {n:8d} {via_backend:13.0f} {direct:12.0f} {ratio:7.1%}")
        transport.close()
        return 0
    finally:
        backend.terminate()
        backend.wait(10)


if __name__ == "__main__":
    sys.exit(main())
