"""Power-on of one virtual HSM: PUF read-out, UDS reconstruction, measured boot, DICE identity.

Device directory layout (0700, files 0600): ``silicon.json`` (the chip, made at manufacture),
``nv.json`` (helper data, minimum SVNs, monotonic counters), ``chain.pem`` and ``chain-mldsa87.pem``
(the public certificate chains, for tools), ``.power-on.lock`` (one power-on at a time, across
processes). A power-on writes only what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.identity import MonotonicCounters
from pyhsm.backend.privfile import UnsafePath, private_dir, write_atomic
from pyhsm.backend.rot import dice, extractor, kernels, noise
from pyhsm.backend.rot.nvstore import NvStore
from pyhsm.backend.rot.silicon import Conditions, SiliconProfile, deterministic_seed, manufacture
from pyhsm.protocol.dice import firmware
from pyhsm.protocol.dice.errors import RootOfTrustFailure

log = logging.getLogger("pyhsm.backend.rot")

SILICON_FILE = "silicon.json"
NV_FILE = "nv.json"
CHAIN_FILE = "chain.pem"
MLDSA_CHAIN_FILE = "chain-mldsa87.pem"
LOCK_FILE = ".power-on.lock"
_AT_REST_LABEL = b"AZIHSM-AT-REST-V1"


@dataclass(frozen=True, eq=False)
class DiceIdentity:
    """The identity established at power-on (implements ``pyhsm.backend.identity.DeviceIdentity``)."""
    serial: str
    stages: tuple[firmware.Stage, ...]
    _at_rest_root: bytes = field(repr=False)
    _attestation_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _chains: dice.Chains = field(repr=False)
    counters: MonotonicCounters = field(repr=False)

    def at_rest_key(self, label: bytes) -> bytes:
        return hmac.new(self._at_rest_root, _AT_REST_LABEL + b"\0" + label, hashlib.sha384).digest()[:32]

    def certificate_chain(self) -> Sequence[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self._chains.p384]

    def mldsa87_certificate_chain(self) -> Sequence[bytes]:
        """The ML-DSA-87 chain (Device ID and aliases); its certificates exceed GetCertificate's 2 KiB."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self._chains.mldsa87]

    def attestation_key(self) -> ec.EllipticCurvePrivateKey:
        return self._attestation_key


def power_on(device_dir: Path, firmware_dir: Path, *, serial: str, conditions: Conditions = Conditions(),
             noise_source: noise.NoiseSource = noise.system_noise,
             deterministic_silicon: bool = False) -> DiceIdentity:
    """Bring the device up; manufacture and enrol it on its first power-on.

    Power-ons of one device directory are serialised (a lock file, across threads and processes).
    ``deterministic_silicon`` (INSECURE, reproducible experiments only) manufactures a chip whose secret
    follows from the serial. Raises RootOfTrustFailure (and logs why) when the PUF, the noise source, a
    firmware stage, the anti-rollback check, the NV store or the directory's permissions fail. Never
    returns a different identity than the enrolled one.
    """
    device_dir = Path(device_dir)
    try:
        private_dir(device_dir)
        with _exclusive(device_dir / LOCK_FILE):
            return _power_on(device_dir, Path(firmware_dir), serial, conditions, noise_source,
                             deterministic_silicon)
    except UnsafePath as e:
        log.error("device %s: root of trust failure: %s", serial, e)
        raise RootOfTrustFailure(str(e)) from None
    except RootOfTrustFailure as e:
        log.error("device %s: root of trust failure: %s", serial, e)
        raise


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _power_on(device_dir: Path, firmware_dir: Path, serial: str, conditions: Conditions,
              noise_source: noise.NoiseSource, deterministic_silicon: bool) -> DiceIdentity:
    silicon = _silicon(device_dir, serial, deterministic_silicon)
    nv = NvStore.open(device_dir / NV_FILE)
    stages = tuple(firmware.load_stage(firmware_dir, name) for name in firmware.STAGES)
    for stage in stages:
        floor = nv.min_svn.get(stage.name, 0)
        if stage.svn < floor:
            raise RootOfTrustFailure(f"firmware stage {stage.name} version {stage.version} has SVN {stage.svn}, "
                                     f"below the device's minimum {floor} (rollback refused)")

    response = kernels.puf_read(silicon.thresholds(conditions), noise.read_noise(noise_source, silicon.cells))
    if nv.helper is None:
        nv.helper, uds = extractor.enrol(response)
        log.info("device %s: enrolled (%d PUF cells)", serial, silicon.cells)
    else:
        uds = extractor.reconstruct(response, nv.helper)

    cdi = dice.next_cdi(uds, stages[0])
    extractor.zeroize(uds)
    at_rest_root = dice.derive(cdi, b"AT-REST", 48)
    ueid = b"\x01" + dice.derive(cdi, b"UEID", 32)      # EAT UEID type 0x01 (RAND)
    layers = [dice.layer_keys(cdi, stages[0])]
    for stage in stages[1:]:
        child = dice.next_cdi(cdi, stage)
        extractor.zeroize(cdi)
        cdi = child
        layers.append(dice.layer_keys(cdi, stage))
    attestation = dice.p384_key(cdi, b"ATTESTATION")
    extractor.zeroize(cdi)

    chains = dice.build_chains(layers, attestation, serial=serial, ueid=ueid)
    for stage in stages:
        nv.min_svn[stage.name] = max(stage.svn, nv.min_svn.get(stage.name, 0))
    nv.save()
    _write_pem(device_dir / CHAIN_FILE, chains.p384)
    _write_pem(device_dir / MLDSA_CHAIN_FILE, chains.mldsa87)
    counters = MonotonicCounters(nv.counters, lambda values: _save_counters(nv, values))
    return DiceIdentity(serial=serial, stages=stages, _at_rest_root=at_rest_root,
                        _attestation_key=attestation, _chains=chains, counters=counters)


def _save_counters(nv: NvStore, values: dict[str, int]) -> None:
    nv.counters = dict(values)
    nv.save()


def _silicon(device_dir: Path, serial: str, deterministic: bool) -> SiliconProfile:
    path = device_dir / SILICON_FILE
    if not path.exists():
        profile = manufacture(serial, seed=deterministic_seed(serial) if deterministic else None)
        if deterministic:
            log.warning("device %s: INSECURE deterministic silicon (its secret follows from the serial)",
                        serial)
        profile.save(path)
        log.info("device %s: manufactured silicon profile %s", serial, path)
        return profile
    try:
        profile = SiliconProfile.load(path)
    except (OSError, ValueError, TypeError) as e:
        raise RootOfTrustFailure(f"silicon profile {path}: unreadable ({e})") from None
    if profile.serial != serial:
        raise RootOfTrustFailure(f"silicon profile {path} belongs to device {profile.serial!r}, not {serial!r}")
    return profile


def _write_pem(path: Path, chain: list[x509.Certificate]) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == pem:
            return
    write_atomic(path, pem)
