"""Purges reach every edge process on the host, not only the one that took the request.

The disk tier is shared by the host's edge processes, but each process has its own memory tier
and source records (and, with avatars, lookups). The process that handles `POST /_purge` drops
the shared state and appends the purge to a small log in the disk cache; every process polls
that log (one cheap read every `POLL_S`) and drops its own copies. So a purge shows everywhere
within about `POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

import diskcache

from edge.cache import DiskTier

log = logging.getLogger(__name__)

POLL_S = 0.25
SEQ_KEY = "purge-log:seq"
ENTRY_TTL_S = 300.0  # log entries expire; a process asleep longer than this misses nothing
# that matters, because its memory copies are short-lived compared to that anyway

LocalDrop = Callable[[str, list[str]], None]  # (field, values) -> drop this process's copies
T = TypeVar("T")


class PurgeBroadcast:
    def __init__(self, disk: DiskTier, drop_local: LocalDrop) -> None:
        self.disk = disk
        self.drop_local = drop_local
        self.origin = uuid.uuid4().hex  # which instance logged an entry (apps may share a pid)
        self._seen = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._seen = await self._call(self._current_seq) or 0
        self._task = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, field: str, values: list[str]) -> None:
        entry = json.dumps({"by": self.origin, "field": field, "values": values}).encode()
        await self._call(self._append, entry)

    async def poll(self) -> int:
        """Apply the purges other processes logged since the last poll; returns how many."""
        found = await self._call(self._read_since, self._seen)
        if not found:
            return 0
        self._seen, entries = found
        applied = 0
        for raw in entries:
            try:
                entry = json.loads(raw)
                if entry["by"] == self.origin:
                    continue
                self.drop_local(str(entry["field"]), [str(v) for v in entry["values"]])
                applied += 1
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed purge log entry")
        return applied

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.poll()
            except Exception:  # the poller must outlive any one bad poll
                log.exception("purge log poll failed")

    async def _call(self, fn: Callable[..., T], *args: object) -> T | None:
        cache = self.disk.cache
        if cache is None:
            return None
        try:
            return await self.disk.run(fn, cache, *args)
        except Exception as err:  # the log is best effort: memory copies also expire on their own
            log.warning("purge log unavailable: %s", err)
            self.disk.on_error("purge-log")
            return None

    @staticmethod
    def _current_seq(cache: diskcache.Cache) -> int:
        return int(cache.get(SEQ_KEY, 0))

    @staticmethod
    def _append(cache: diskcache.Cache, entry: bytes) -> None:
        with cache.transact():
            seq = cache.incr(SEQ_KEY)
            cache.set(f"purge-log:{seq}", entry, expire=ENTRY_TTL_S)

    @staticmethod
    def _read_since(cache: diskcache.Cache, seen: int) -> tuple[int, list[bytes]] | None:
        current = int(cache.get(SEQ_KEY, 0))
        if current <= seen:
            return None
        entries = []
        for seq in range(max(seen + 1, current - 999), current + 1):
            value = cache.get(f"purge-log:{seq}")
            if isinstance(value, bytes):
                entries.append(value)
        return current, entries
