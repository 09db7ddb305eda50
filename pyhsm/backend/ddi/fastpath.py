"""The AES fast path: bulk AES-GCM and AES-XTS with bulk keys, for the device's AES queues.

The device parses each AES-queue command and sends it as an AES_REQUEST (docs/link-protocol.md, "AES
fast path"); ``execute`` answers it with an AES_RESPONSE. Keys are the bulk keys AesGenerateKey (and
RsaUnwrap) created in the partition's vault, found by their ``bulk_key_id`` (the key id) within the
session named by the command: the session must be open, usable and carry the command's short_app_id,
and the key must be one that session may use (its app's keys, its own session keys). The rules and
every status are in docs/device.md, "AES path".

A refusal is CQE status 0x720 with the DDI status's low 16 bits in the CQE ``err`` field (every status
used here is in the 0x0870xxxx family, so ``0x08700000 | err`` is the full code).
"""

from __future__ import annotations

import logging
import struct
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.ddi import xts
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.backend.ddi.vault import Vault
from pyhsm.protocol import link
from pyhsm.protocol.ddi.errors import DdiFailure, ResponseStatus
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind, Flag, KeyType

log = logging.getLogger("pyhsm.backend.ddi.fastpath")

GCM_KINDS = frozenset({KeyType.AesGcmBulk256, KeyType.AesGcmBulk256Unapproved})
XTS_KINDS = frozenset({KeyType.AesXtsBulk256})
FIPS_KINDS = frozenset({KeyType.AesGcmBulk256, KeyType.AesXtsBulk256})
DATA_UNITS = {0: None, 1: 512, 2: 4096, 3: 8192}  # SQE attr bits 15:14 (None: the whole buffer)
AAD_ALIGN = 32
_U64 = struct.Struct("<Q")
_ZERO_TAG, _ZERO_IV = bytes(16), bytes(12)


class _Bulk:
    """What the fast path needs of one key entry, worked out once per entry (``KeyEntry.loaded``, so it
    goes with the entry): whether it may encrypt and decrypt, its FIPS flag, and for a GCM key its
    ``AESGCM`` (an XTS key's material is joined with the other key's per command)."""

    __slots__ = ("permitted", "fips", "gcm")

    def __init__(self, entry: KeyEntry) -> None:
        self.permitted = entry.flags & (Flag.ENCRYPT | Flag.DECRYPT) == Flag.ENCRYPT | Flag.DECRYPT
        self.fips = int(entry.kind in FIPS_KINDS)
        self.gcm = AESGCM(entry.material) if entry.kind in GCM_KINDS else None


def _bulk(entry: KeyEntry) -> _Bulk:
    return entry.loaded("fastpath", lambda: _Bulk(entry))


class _Refused(Exception):
    def __init__(self, status: ResponseStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def gcm_aad_offset(aad_len: int, aligned_aad_len: int) -> int | None:
    """Where the real AAD starts inside the aligned AAD region, or None if ``aligned_aad_len`` is neither
    ``aad_len`` itself nor the client's 32-byte alignment of it (docs/device.md, "AES path")."""
    if aligned_aad_len == aad_len:
        return 0
    rem = aad_len % AAD_ALIGN
    offset = 16 if 0 < rem <= 16 else 0
    if -(-(offset + aad_len) // AAD_ALIGN) * AAD_ALIGN == aligned_aad_len:
        return offset
    return None


def execute(request: link.AesRequest, *, vault: Vault, lock: threading.Lock,
            kind: DeviceKind = DeviceKind.Physical) -> link.AesResponse:
    """Run one AES fast-path command; never raises (a bug answers 0x006)."""
    try:
        if request.version != link.AES_BODY_VERSION:
            raise _Refused(DdiStatus.InvalidAlgorithm, f"AES body version {request.version}")
        with lock:
            keys = _keys(request, vault)
        if request.cipher == link.AesCipher.GCM:
            return _gcm(request, keys[0], kind)
        return _xts(request, keys)
    except _Refused as refusal:
        log.info("AES q%d c%d refused: %s (%s)", request.qid, request.cid, refusal.status.name, refusal.reason)
        return link.AesResponse.failure(link.Status.AES_REFUSED, int(refusal.status) & 0xFFFF)
    except Exception:  # a bug: answer, log, keep serving
        log.exception("AES fast path: internal error")
        return link.AesResponse.failure(link.Status.INTERNAL_ERROR)


def _keys(request: link.AesRequest, vault: Vault) -> list[KeyEntry]:
    """The command's bulk key(s), checked for the session, the app and the mode."""
    session = vault.sessions.lookup(request.session_id)
    if session is None:
        raise _Refused(DdiStatus.SessionNotFound, f"session {request.session_id} is not open")
    if session.needs_renegotiation:
        raise _Refused(DdiStatus.SessionNeedsRenegotiation, f"session {request.session_id} needs ReopenSession")
    if request.short_app_id != session.short_app_id:
        raise _Refused(DdiStatus.InvalidShortAppId,
                       f"short_app_id {request.short_app_id}, session has {session.short_app_id}")
    if vault.credential is None:
        raise _Refused(DdiStatus.CredentialsNotEstablished, "no credential")
    if request.cipher == link.AesCipher.GCM:
        ids, wanted = [request.key_id1], GCM_KINDS
    elif request.cipher == link.AesCipher.XTS:
        ids, wanted = [request.key_id1, request.key_id2], XTS_KINDS
    else:
        raise _Refused(DdiStatus.InvalidAlgorithm, f"cipher {request.cipher}")
    if request.decrypt not in (0, 1) or request.dul not in DATA_UNITS:
        raise _Refused(DdiStatus.InvalidAlgorithm, f"op {request.decrypt} / dul {request.dul}")
    entries = []
    for key_id in ids:
        if key_id > 0xFFFF:
            raise _Refused(DdiStatus.InvalidKeyNumber, f"key id 0x{key_id:x} is wider than 16 bits")
        try:
            entry = vault.keys.use(key_id, vault.credential[0], session.sess_id)
        except DdiFailure as failure:
            raise _Refused(failure.status, failure.reason) from None
        if not _bulk(entry).permitted:
            raise _Refused(DdiStatus.InvalidPermissions, "key lacks the permission for this operation")
        if entry.kind not in wanted:
            raise _Refused(DdiStatus.InvalidKeyType, f"key 0x{key_id:04x} is {entry.kind.name}")
        entries.append(entry)
    if len(entries) == 2 and (entries[0].session is None) != (entries[1].session is None):
        raise _Refused(DdiStatus.InvalidKeyType, "one XTS key is a session key, the other is not")
    return entries


def _gcm(request: link.AesRequest, key: KeyEntry, kind: DeviceKind) -> link.AesResponse:
    data = request.data
    aligned = request.aligned_aad_len
    offset = gcm_aad_offset(request.aad_len, aligned)
    if request.dul:
        raise _Refused(DdiStatus.InvalidAlgorithm, "GCM with a data unit length")
    if offset is None or aligned > len(data):
        raise _Refused(DdiStatus.AesGcmInvalidBufferSize,
                       f"AAD {request.aad_len} / aligned {aligned} / source {len(data)}")
    if request.dst_len < len(data):
        raise _Refused(DdiStatus.AesGcmInvalidBufferSize, f"destination {request.dst_len} < source {len(data)}")
    aad = data[offset:offset + request.aad_len] if request.aad_len else None
    body = memoryview(data)[aligned:] if aligned else data
    bulk = _bulk(key)
    gcm = bulk.gcm
    assert gcm is not None, "a GCM key's entry holds its AESGCM (the key kind was checked above)"
    if request.decrypt:
        try:
            out = gcm.decrypt(request.iv, b"".join((body, request.tag_or_tweak)), aad)
        except InvalidTag:
            status = (DdiStatus.AesGcmDecryptTagDoesNotMatch if kind is DeviceKind.Physical
                      else DdiStatus.AesDecryptFailed)
            raise _Refused(status, "tag mismatch") from None
        tag = request.tag_or_tweak
    else:
        sealed = gcm.encrypt(request.iv, body, aad)
        out, tag = sealed[:-16], sealed[-16:]
    return link.AesResponse(link.AES_BODY_VERSION, bulk.fips, 0, 0, tag, request.iv, aligned, out)


def _xts(request: link.AesRequest, keys: list[KeyEntry]) -> link.AesResponse:
    data = request.data
    failed = DdiStatus.AesDecryptFailed if request.decrypt else DdiStatus.AesEncryptFailed
    if not data or len(data) % 16:
        raise _Refused(DdiStatus.AesXtsInvalidBufferSize, f"source of {len(data)} bytes")
    if request.dst_len < len(data):
        raise _Refused(DdiStatus.AesXtsInvalidBufferSize, f"destination {request.dst_len} < source {len(data)}")
    unit = DATA_UNITS[request.dul] or len(data)
    if len(data) % unit:
        raise _Refused(DdiStatus.AesXtsInvalidDul, f"data unit {unit} does not divide {len(data)}")
    key1, key2 = keys
    if key1 is key2 or key1.material == key2.material:
        raise _Refused(failed, "the two XTS keys are identical")
    sector = _U64.unpack_from(request.tag_or_tweak)[0]    # bytes 8-15 of the SQE tweak are not used
    out = xts.crypt(key1.material, key2.material, sector, data, unit, bool(request.decrypt))
    return link.AesResponse(link.AES_BODY_VERSION, 1, 0, 0, _ZERO_TAG, _ZERO_IV, 0, out)
