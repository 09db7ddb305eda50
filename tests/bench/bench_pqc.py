"""Post-quantum throughput through the backend socket against the same calls made directly with
``cryptography`` in this process, in one run: ML-DSA-65 sign (1 KiB message) and ML-KEM-768
decapsulation, with 1 and 2 sessions (one client thread each, sharing one device connection).

The backend is its own process (tests/backend/ddi/ddi_backend.py: the real link server and DDI partition).
MlKemDecapsulate stores the shared secret as a session key, so each measured backend step also
deletes that key (two round trips); the direct anchor is one ``decapsulate`` call.

    build/venv/bin/python -m tests.bench.bench_pqc [seconds per measurement, default 3]

Backend and direct slices alternate (5 each) and medians are reported, as in bench_ddi.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]

from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem  # noqa: E402

from pyhsm.client import HsmClient  # noqa: E402
from tests.bench.bench_ddi import backend_clients, compare  # noqa: E402

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
    with backend_clients("BENCH-PQC-0001", 2) as clients:
        compare([backend_ops(c) for c in clients], direct_ops(), (1, 2), seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
