"""Where source records live: a per-process LRU in front of the shared disk tier."""

from __future__ import annotations

from cachetools import LRUCache

from edge.cache import DiskTier
from edge.freshness import SourceRecord
from edge.keys import record_key

MAX_RECORDS_IN_MEMORY = 100_000  # ~200 bytes each


class RecordStore:
    def __init__(self, disk: DiskTier) -> None:
        self.disk = disk
        self._memory: LRUCache[str, SourceRecord] = LRUCache(maxsize=MAX_RECORDS_IN_MEMORY)

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
        return record

    async def put(self, source_id: str, record: SourceRecord) -> None:
        self._memory[source_id] = record
        await self.disk.set_bytes(record_key(source_id), record.encode(), "")

    async def drop(self, source_id: str) -> None:
        self._memory.pop(source_id, None)
        await self.disk.delete(record_key(source_id))

    def forget_locally(self, source_id: str) -> None:
        """Drop only this process's copy (another process already dropped the shared one)."""
        self._memory.pop(source_id, None)
