"""The HSM's confidential-VM registry: owner key, registered vTPMs, policies (persistent, JSON in the
partition state) and evidence nonces (volatile, single use, short-lived)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pyhsm.protocol.cvm import tpm2

NONCE_LEN = 32
NONCE_LIFETIME_S = 30.0
MAX_NONCES = 64


@dataclass
class VmRecord:
    ek_public: str       # hex TPM2B_PUBLIC of the vTPM's endorsement key
    ak_public: str       # hex TPM2B_PUBLIC of the attestation key created under it

    def keys(self) -> tuple[tpm2.PublicKey, tpm2.PublicKey]:
        """(EK, AK), parsed."""
        return tpm2.parse_public(bytes.fromhex(self.ek_public)), tpm2.parse_public(bytes.fromhex(self.ak_public))


@dataclass
class Policy:
    vm_id: str           # hex; "" = any registered VM
    pcr_bank: int
    pcr_mask: int
    pcr_values: str      # hex, ascending PCR order
    key_tag: int | None
    version: int


@dataclass
class CvmState:
    owner_pub: str = ""  # hex SPKI DER of the owner's P-384 key
    last_seq: int = 0
    generation: int = 0  # bumped by every owner change; nonces of older generations are stale
    vms: dict[str, VmRecord] = field(default_factory=dict)          # by hex vm_id
    policies: dict[str, Policy] = field(default_factory=dict)       # by hex workload

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CvmState:
        if not data:
            return cls()
        return cls(data["owner_pub"], int(data["last_seq"]), int(data["generation"]),
                   {k: VmRecord(**v) for k, v in data["vms"].items()},
                   {k: Policy(**v) for k, v in data["policies"].items()})


@dataclass(frozen=True)
class IssuedNonce:
    vm_id: bytes
    generation: int
    issued: float


class NonceError(Exception):
    """Why a nonce is refused: ``kind`` is "unknown", "expired", "stale" or "full"."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class Nonces:
    """Outstanding nonces of one partition; ``clock`` is injectable for tests."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._issued: dict[bytes, IssuedNonce] = {}

    def issue(self, vm_id: bytes, generation: int) -> bytes:
        now = self._clock()
        self._issued = {n: i for n, i in self._issued.items() if now - i.issued <= NONCE_LIFETIME_S}
        if len(self._issued) >= MAX_NONCES:
            raise NonceError("full", f"{MAX_NONCES} nonces outstanding")
        nonce = os.urandom(NONCE_LEN)
        self._issued[nonce] = IssuedNonce(vm_id, generation, now)
        return nonce

    def consume(self, nonce: bytes, vm_id: bytes, generation: int) -> None:
        """Use up ``nonce`` (whatever follows); raises ``NonceError`` unless it is valid for ``vm_id``."""
        issued = self._issued.get(nonce)
        if issued is None or issued.vm_id != vm_id:
            raise NonceError("unknown", "nonce not issued to this VM, or already used")
        del self._issued[nonce]
        if self._clock() - issued.issued > NONCE_LIFETIME_S:
            raise NonceError("expired", f"nonce older than {NONCE_LIFETIME_S:.0f} s")
        if issued.generation != generation:
            raise NonceError("stale", "nonce issued before the last owner change")
