"""The partition's key tables (docs/ddi.md, "Keys: properties, tags, ids and tables" and "Sessions, access and the nonce"): slots, byte budgets, tags and access rules.

A key id is ``(table << 8) | slot``. New keys take the first table with a free slot and enough budget.
Internal keys (owned by the device, not by the app) are usable by any session for what their flags
allow and cannot be deleted; app keys belong to the credential's app id; session keys belong to one
session and die with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import KINDS, Flag, KeyType

TABLES = 4
SLOTS = 256
BUDGET = 16 * 1024
INTERNAL_APP = bytes.fromhex("E01D5EA36451439DA55C23DED856EFA3")


@dataclass
class KeyEntry:
    kind: KeyType
    material: bytes                  # the serialized form (keyformat); never leaves except masked
    flags: Flag
    app_id: bytes                    # 16 bytes; INTERNAL_APP for device keys
    tag: int | None = None           # app keys only
    label: bytes = b""               # echoed in masked blobs
    session: int | None = None       # virtual session id of a session-only key
    volatile: bool = False           # device keys re-created at every start (never persisted)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def internal(self) -> bool:
        return self.app_id == INTERNAL_APP

    def loaded(self, name: str, build: Callable[[], Any]) -> Any:
        """A parsed form of the material (e.g. a private-key object), built once."""
        if name not in self.cache:
            self.cache[name] = build()
        return self.cache[name]

    def require(self, flags: Flag) -> None:
        if flags & self.flags != flags:
            raise DdiFailure(DdiStatus.InvalidPermissions, "key lacks the permission for this operation")


class KeyTable:
    def __init__(self, tables: int = TABLES) -> None:
        self.tables = tables
        self._entries: dict[int, KeyEntry] = {}

    def __iter__(self) -> Iterator[tuple[int, KeyEntry]]:
        return iter(sorted(self._entries.items()))

    def _used(self, table: int) -> int:
        return sum(KINDS[e.kind].size for k, e in self._entries.items() if k >> 8 == table)

    def insert(self, entry: KeyEntry, key_id: int | None = None) -> int:
        """Store ``entry`` (at ``key_id`` when restoring); raises NotEnoughSpace/ReachedMaxKeys."""
        if entry.tag is not None and self.find_tag(entry.app_id, entry.tag) is not None:
            raise DdiFailure(DdiStatus.KeyTagAlreadyExists, f"tag {entry.tag} already in use")
        if key_id is not None:
            self._entries[key_id] = entry
            return key_id
        cost = KINDS[entry.kind].size
        any_free_slot = False
        for table in range(self.tables):
            free = next((s for s in range(SLOTS) if (table << 8 | s) not in self._entries), None)
            if free is None:
                continue
            any_free_slot = True
            if self._used(table) + cost <= BUDGET:
                self._entries[table << 8 | free] = entry
                return table << 8 | free
        if any_free_slot:
            raise DdiFailure(DdiStatus.NotEnoughSpace, "no key table has room for this key")
        raise DdiFailure(DdiStatus.ReachedMaxKeys, "every key slot is in use")

    def get(self, key_id: int) -> KeyEntry:
        if key_id >> 8 >= self.tables:
            raise DdiFailure(DdiStatus.InvalidKeyNumber, f"key id 0x{key_id:04x}: no such table")
        entry = self._entries.get(key_id)
        if entry is None:
            raise DdiFailure(DdiStatus.KeyNotFound, f"key id 0x{key_id:04x} is empty")
        return entry

    def use(self, key_id: int, app_id: bytes, session: int) -> KeyEntry:
        """The entry a session may use: internal keys, its app's keys, its own session keys."""
        entry = self.get(key_id)
        if entry.internal:
            return entry
        if entry.app_id != app_id or (entry.session is not None and entry.session != session):
            raise DdiFailure(DdiStatus.InvalidPermissions, f"key id 0x{key_id:04x} belongs to someone else")
        return entry

    def delete(self, key_id: int, app_id: bytes, session: int) -> KeyEntry:
        entry = self.get(key_id)
        if entry.internal:
            raise DdiFailure(DdiStatus.CannotDeleteInternalKeys, "internal keys cannot be deleted")
        self.use(key_id, app_id, session)
        return self._entries.pop(key_id)

    def remove(self, key_id: int) -> None:
        self._entries.pop(key_id, None)

    def find_tag(self, app_id: bytes, tag: int) -> int | None:
        return next((k for k, e in self._entries.items()
                     if e.tag == tag and e.app_id == app_id and e.session is None), None)

    def drop_session(self, session: int) -> int:
        """Delete every session-only key of ``session``; returns how many."""
        doomed = [k for k, e in self._entries.items() if e.session == session]
        for key_id in doomed:
            del self._entries[key_id]
        return len(doomed)

    def persistent(self) -> list[tuple[int, KeyEntry]]:
        return [(k, e) for k, e in self if not e.volatile and e.session is None]
