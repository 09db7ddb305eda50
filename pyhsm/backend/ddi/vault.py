"""The state of one partition (docs/ddi.md, "State and persistence"): credential, provisioning, keys, sessions, nonce, sealed BK3.

Persistent part (``snapshot``/``restore``): credential, failed-login counter, provisioning secrets,
app and internal (non-volatile) keys, sealed BK3, a boot key taken over by migration. Volatile part, re-created at every start and by
NSSR: the one-shot establish-credential key (only while no credential exists), the
session-encryption key, the nonce, the attestation-key entry and all sessions with their keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.ddi.keyformat import private_to_material
from pyhsm.backend.ddi.keys import INTERNAL_APP, KeyEntry, KeyTable
from pyhsm.backend.ddi.sessions import SessionTable
from pyhsm.protocol.ddi.types import Flag, KeyType

FORMAT_VERSION = 1


@dataclass
class Provisioning:
    """Secrets established by EstablishCredential (docs/ddi.md, "Masking-key hierarchy")."""

    bk_partition: bytes        # 80 bytes, bound to BK3 and the POTA key
    masking_key: bytes         # MK, 80 bytes: masks app keys
    bmk: bytes                 # MK masked under bk_partition
    unwrapping_key_id: int
    masked_unwrapping_key: bytes


def _device_key(private: ec.EllipticCurvePrivateKey) -> KeyEntry:
    entry = KeyEntry(KeyType.Ecc384Private, b"", Flag(0), INTERNAL_APP, volatile=True)
    entry.cache["private"] = private
    return entry


class Vault:
    def __init__(self, attestation_key: ec.EllipticCurvePrivateKey) -> None:
        self._attestation_key = attestation_key
        self.keys = KeyTable()
        self.sessions = SessionTable()
        self.credential: tuple[bytes, bytes] | None = None   # (id, pin)
        self.failed_logins = 0
        self.provisioning: Provisioning | None = None
        self.sealed_bk3: bytes | None = None
        self.bk_boot: bytes | None = None      # a boot key taken over with a migration context
        self.extensions: dict[str, Any] = {}   # persistent JSON state of vendor features, by name
        self.nonce = b""
        self.establish_key_id: int | None = None
        self.session_key_id = 0
        self.attestation_key_id = 0
        self.power_on()

    def power_on(self) -> None:
        """Create the volatile device keys and a fresh nonce (slots 0-2 of table 0 when free)."""
        self.nonce = os.urandom(32)
        self.establish_key_id = None
        if self.credential is None:
            self.establish_key_id = self.keys.insert(_device_key(ec.generate_private_key(ec.SECP384R1())))
        self.session_key_id = self.keys.insert(_device_key(ec.generate_private_key(ec.SECP384R1())))
        self.attestation_key_id = self.keys.insert(_device_key(self._attestation_key))

    def device_private(self, key_id: int) -> ec.EllipticCurvePrivateKey:
        return self.keys.get(key_id).cache["private"]

    def renew_nonce(self) -> None:
        self.nonce = os.urandom(32)

    def nssr(self) -> None:
        """Live-migration reset (docs/ddi.md, "Resets"): all but sealed BK3 and the session slots is gone."""
        self.keys = KeyTable()
        self.credential = None
        self.failed_logins = 0
        self.provisioning = None
        self.extensions = {}
        self.sessions.mark_all_for_renegotiation()
        self.power_on()

    def restore_migration(self, session_mask: int, bk_boot: bytes, sealed_bk3: bytes | None) -> None:
        """Take over a migration context (docs/device.md, "Migration"), as the real device's VF restore
        does: the source's boot key and sealed BK3 replace this partition's, the sessions of the mask are
        allocated and await ReopenSession, and everything else starts empty (the NSSR's state)."""
        self.close_all_sessions()
        self.nssr()
        self.sessions.restore_allocation_mask(session_mask)
        self.bk_boot = bk_boot
        self.sealed_bk3 = sealed_bk3

    def close_all_sessions(self) -> None:
        for sess_id in self.sessions.ids():
            self.keys.drop_session(sess_id)
        self.sessions.clear()

    def snapshot(self) -> dict[str, Any]:
        prov = self.provisioning
        return {
            "version": FORMAT_VERSION,
            "credential": [c.hex() for c in self.credential] if self.credential else None,
            "failed_logins": self.failed_logins,
            "sealed_bk3": self.sealed_bk3.hex() if self.sealed_bk3 is not None else None,
            "bk_boot": self.bk_boot.hex() if self.bk_boot is not None else None,
            "provisioning": None if prov is None else {
                "bk_partition": prov.bk_partition.hex(), "masking_key": prov.masking_key.hex(),
                "bmk": prov.bmk.hex(), "unwrapping_key_id": prov.unwrapping_key_id,
                "masked_unwrapping_key": prov.masked_unwrapping_key.hex()},
            "keys": [{"id": key_id, "kind": int(e.kind), "material": e.material.hex(), "flags": int(e.flags),
                      "app_id": e.app_id.hex(), "tag": e.tag, "label": e.label.hex()}
                     for key_id, e in self.keys.persistent()],
            "extensions": self.extensions,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a snapshot into a freshly constructed vault; raises KeyError/ValueError on bad content."""
        if state["version"] != FORMAT_VERSION:
            raise ValueError(f"state format version {state['version']} is not {FORMAT_VERSION}")
        self.keys = KeyTable()
        cred = state["credential"]
        self.credential = (bytes.fromhex(cred[0]), bytes.fromhex(cred[1])) if cred else None
        self.failed_logins = int(state["failed_logins"])
        sealed = state["sealed_bk3"]
        self.sealed_bk3 = bytes.fromhex(sealed) if sealed is not None else None
        bk_boot = state.get("bk_boot")
        self.bk_boot = bytes.fromhex(bk_boot) if bk_boot is not None else None
        self.extensions = dict(state.get("extensions", {}))
        prov = state["provisioning"]
        self.provisioning = None if prov is None else Provisioning(
            bytes.fromhex(prov["bk_partition"]), bytes.fromhex(prov["masking_key"]), bytes.fromhex(prov["bmk"]),
            int(prov["unwrapping_key_id"]), bytes.fromhex(prov["masked_unwrapping_key"]))
        for k in state["keys"]:
            entry = KeyEntry(KeyType(k["kind"]), bytes.fromhex(k["material"]), Flag(k["flags"]),
                             bytes.fromhex(k["app_id"]), k["tag"], bytes.fromhex(k["label"]))
            self.keys.insert(entry, int(k["id"]))
        self.power_on()


def generated_entry(kind: KeyType, private: Any, flags: Flag, app_id: bytes, **extra: Any) -> KeyEntry:
    """An entry for a private-key object, with the object cached."""
    entry = KeyEntry(kind, private_to_material(private), flags, app_id, **extra)
    entry.cache["private"] = private
    return entry
