"""The backend's own secrets, exported for the leak scan (``pyhsm serve --secrets-out FILE``).

Collected per device: the at-rest root and the at-rest keys derived from it, the attestation private
key; per partition: the boot backup key, the provisioning secrets (partition key, masking key) and
every stored key's private material (serialized and, for parsed keys, the raw scalar or exponent).
What the guest itself supplies (PINs, BK3, imported keys before masking) is not an HSM secret and
is left out: the guest legitimately holds it. Written only to a new host file with mode 0600, never
logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyhsm.backend.ddi.store import KEY_LABEL
from pyhsm.backend.privfile import write_atomic
from pyhsm.protocol import secrets_file
from pyhsm.protocol.secrets_file import MIN_LENGTH, Secret

log = logging.getLogger("pyhsm.secrets")

AT_REST_LABELS = (KEY_LABEL, b"ddi-bk-boot")


def _private_scalar(key: Any) -> bytes | None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        d = key.private_numbers().d
        return d.to_bytes((d.bit_length() + 7) // 8, "big")
    return None


def device_secrets(serial: str, identity: Any) -> Iterator[Secret]:
    root = getattr(identity, "_at_rest_root", None)
    if root:
        yield Secret(f"{serial}: at-rest root (UDS-derived)", bytes(root))
    for label in AT_REST_LABELS:
        yield Secret(f"{serial}: at-rest key {label.decode()}", identity.at_rest_key(label))
    scalar = _private_scalar(identity.attestation_key())
    if scalar:
        yield Secret(f"{serial}: attestation private key", scalar)


def partition_secrets(name: str, partition: Any) -> Iterator[Secret]:
    bk_boot = getattr(partition, "_bk_boot", None)
    if bk_boot:
        yield Secret(f"{name}: BK boot", bytes(bk_boot))
    migration_key = getattr(partition, "_migration_key", None)
    if migration_key:
        yield Secret(f"{name}: fleet migration key", bytes(migration_key))
    vault = getattr(partition, "vault", None)
    if vault is None:
        return
    if getattr(vault, "bk_boot", None):
        yield Secret(f"{name}: BK boot taken over by migration", bytes(vault.bk_boot))
    if vault.provisioning:
        yield Secret(f"{name}: partition backup key", vault.provisioning.bk_partition)
        yield Secret(f"{name}: partition masking key", vault.provisioning.masking_key)
    for key_id, entry in vault.keys:
        if entry.material:
            yield Secret(f"{name}: key 0x{key_id:x} material", entry.material)
        scalar = _private_scalar(entry.cache.get("private"))
        if scalar:
            yield Secret(f"{name}: key 0x{key_id:x} private value", scalar)


def collect(devices: Iterable[tuple[str, Any]],
            partitions: Iterable[tuple[str, int, Any]]) -> list[Secret]:
    """Every secret of the given devices and partitions that is long enough to scan for."""
    found = [s for serial, ident in devices for s in device_secrets(serial, ident)]
    found += [s for serial, index, part in partitions
              for s in partition_secrets(f"{serial}/{index}", part)]
    return [s for s in found if len(s.value) >= MIN_LENGTH]


def write(path: Path, secrets: list[Secret]) -> None:
    """Replace ``path`` with the secrets file, readable by the owner only."""
    write_atomic(path, secrets_file.encode(secrets))
    log.info("wrote %d secrets for the leak scan to %s", len(secrets), path)
