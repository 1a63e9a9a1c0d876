"""Where source records live: a per-process LRU in front of the shared disk tier."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cachetools import LRUCache

from edge.cache import DiskTier
from edge.freshness import SourceRecord
from edge.keys import record_key

MAX_RECORDS_IN_MEMORY = 100_000  # ~200 bytes each
# A record that only moved its `checked_at` is rewritten on disk at most this often (and at
# most every tenth of its max-age): every miss fetches its source and so renews the record,
# and that SQLite write was ~0.4 ms of the edge's CPU per miss. Another process, or this one
# after a restart, reading the older copy revalidates a little early; nothing else changes.
REWRITE_AFTER_S = 60.0


class RecordStore:
    def __init__(self, disk: DiskTier) -> None:
        self.disk = disk
        self._memory: LRUCache[str, SourceRecord] = LRUCache(maxsize=MAX_RECORDS_IN_MEMORY)
        self._on_disk: LRUCache[str, SourceRecord] = LRUCache(maxsize=MAX_RECORDS_IN_MEMORY)
        # This process's copy only (no disk read), for the synchronous hit path.
        self.get_now: Callable[[str], SourceRecord | None] = self._memory.get

    async def get(self, source_id: str) -> SourceRecord | None:
        record = self._memory.get(source_id)
        if record is not None:
            return record
        data = await self.disk.get_bytes(record_key(source_id))
        if data is None:
            return None
        try:
            record = SourceRecord.decode(data)
        except (ValueError, KeyError, TypeError):
            await self.disk.delete(record_key(source_id))
            self.disk.on_error("corrupt")
            return None
        self._memory[source_id] = record
        self._on_disk[source_id] = record
        return record

    async def put(self, source_id: str, record: SourceRecord) -> None:
        self._memory[source_id] = record
        written = self._on_disk.get(source_id)
        if written is not None and renews(written, record):
            return
        if await self.disk.set_bytes(record_key(source_id), record.encode(), ""):
            self._on_disk[source_id] = record

    async def drop(self, source_id: str) -> None:
        self._memory.pop(source_id, None)
        self._on_disk.pop(source_id, None)
        await self.disk.delete(record_key(source_id))

    def forget_locally(self, source_id: str) -> None:
        """Drop only this process's copy (another process already dropped the shared one)."""
        self._memory.pop(source_id, None)
        self._on_disk.pop(source_id, None)


def renews(written: SourceRecord, record: SourceRecord) -> bool:
    """Is `record` the disk copy `written` with only a recent `checked_at` (no rewrite)?"""
    return dataclasses.replace(
        written, checked_at=record.checked_at
    ) == record and record.checked_at - written.checked_at < min(
        REWRITE_AFTER_S, record.max_age / 10
    )
