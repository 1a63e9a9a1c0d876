"""Cache tiers: memory (cachetools LRU sized in body bytes) and disk (diskcache, LRU, shared by
every edge process on the host). Nothing read back from a tier is trusted blindly: a disk entry
that fails its checksum, a full disk or an unwritable directory is a miss and a counted error,
never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

import diskcache
from cachetools import LRUCache

from edge.diskkeys import DiskKeys
from transforms.errors import Overloaded

log = logging.getLogger(__name__)
T = TypeVar("T")

VOLUME_EVERY_S = 1.0
READ_WAIT_S = 0.01  # the loop's SQLite busy timeout; longer waits move to a thread
# Values below this are stored by the loop itself, inline in SQLite (diskcache's own
# `disk_min_file_size`); larger ones are files of their own, written on the writer thread.
LOOP_SET_BYTES = 32 * 1024
# The loop's connection never checkpoints the WAL (a checkpoint writes the pages back and
# fsyncs: milliseconds); the writer thread does, once the loop has written this much.
CHECKPOINT_BYTES = 4 * 1024 * 1024  # SQLite's own default: 1000 pages of 4 KiB
MAGIC = b"ICE1"
HEADER = struct.Struct(">4sI")  # magic, length of the JSON metadata that follows


class Entry(NamedTuple):
    """One cached response body and what its headers need.

    A named tuple because the memory tier keeps each one as a plain tuple of bytes, str and
    floats, which CPython's cyclic GC stops tracking after its first collection. Tracked, its
    ~50k entries made every full collection walk them: 170-240 ms with the loop stopped."""

    body: bytes
    content_type: str
    etag: str
    last_modified: float
    stored_at: float
    tag: str = ""  # purge tag (keys.path_tag); empty = not purgeable by path

    def encode(self) -> bytes:
        meta = {
            "ct": self.content_type,
            "etag": self.etag,
            "lm": self.last_modified,
            "at": self.stored_at,
            "tag": self.tag,
            "sha": hashlib.sha256(self.body).hexdigest(),
        }
        raw = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        return HEADER.pack(MAGIC, len(raw)) + raw + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Parse and verify a stored entry; raise ValueError if anything is off."""
        magic, size = HEADER.unpack_from(data)
        if magic != MAGIC or HEADER.size + size > len(data):
            raise ValueError("bad entry header")
        meta = json.loads(data[HEADER.size : HEADER.size + size])
        body = data[HEADER.size + size :]
        if hashlib.sha256(body).hexdigest() != meta["sha"]:
            raise ValueError("entry checksum mismatch")
        return cls(
            body, meta["ct"], meta["etag"], float(meta["lm"]), float(meta["at"]), meta["tag"]
        )


class CacheTier(Protocol):
    name: str

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, entry: Entry) -> bool: ...
    async def evict(self, tag: str) -> int: ...
    def size_bytes(self) -> int: ...


Row = tuple[bytes, str, str, float, float, str]  # an Entry as the memory tier keeps it


class MemoryTier:
    """LRU bounded by the sum of body bytes (`edge.cache.memory_bytes`); 0 disables it.

    Entries are kept as plain tuples (`Row`), which the cyclic GC does not track, so a full
    tier costs a full collection nothing; `get_now` gives them back as `Entry`s (~0.1 us).
    Used from the event loop thread only, so it needs no lock (cachetools is not thread-safe).
    """

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru: LRUCache[str, Row] = LRUCache(maxsize=max(max_bytes, 1), getsizeof=row_size)
        self._find = self._lru.get

    def get_now(self, key: str) -> Entry | None:
        """`get` without a coroutine, for the synchronous hit path."""
        row = self._find(key)
        return None if row is None else _as_entry(Entry, row)

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    async def set(self, key: str, entry: Entry) -> bool:
        if self.max_bytes <= 0 or row_size(entry) > self.max_bytes:
            return False
        self._lru[key] = tuple(entry)  # type: ignore[assignment]  # exactly a Row
        return True

    async def evict(self, tag: str) -> int:
        return self.evict_now(tag)

    def evict_now(self, tag: str) -> int:
        # A scan, not an index: purges are rare and a few thousand entries scan in well under 1 ms.
        doomed = [key for key, row in self._lru.items() if row[TAG] == tag]
        for key in doomed:
            self._lru.pop(key, None)
        return len(doomed)

    def size_bytes(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)


def row_size(row: Row | Entry) -> int:
    return len(row[0])  # the body


_as_entry = tuple.__new__  # (Entry, row) -> Entry, without NamedTuple._make's length check
TAG = Entry._fields.index("tag")


class WholeWrites(diskcache.Disk):  # type: ignore[misc]  # diskcache has no types
    """diskcache's `Disk`, but a bytes value of a file of its own is written in one call:
    the stock `store` iterates a `BytesIO` over it, i.e. line by line (~190 writes for 50 KB
    of JPEG); one call saved ~15 % of such a set in a tight loop."""

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is bytes and len(value) >= self.min_file_size:
            filename, full_path = self.filename(key, value)
            self._write(full_path, iter((value,)), "xb")
            return len(value), diskcache.core.MODE_BINARY, filename, None
        return super().store(value, read, key)


class DiskTier:
    """diskcache with `size_limit` and LRU eviction under `edge.cache.disk_path`.

    Reads, and sets of values under `LOOP_SET_BYTES`, run on the event loop; larger sets,
    deletes, evictions and WAL checkpoints on the tier's own thread.
    Measured on the benchmark machine (2 vCPU, `hit` scenario with `memory_bytes: 0`, so every
    request is a disk hit, whose LRU access-time update is a small write): a 10 KB variant
    3.9-4.0k req/s and p99 15 ms on the loop vs 2.2k req/s and p99 0.9-1.2 s in threads (250 vs
    470 us of CPU per request: the hop costs ~75 us, and the pool's threads queue on SQLite's
    write lock); a 100 KB variant (a file of its own) 2.5k vs 1.7k req/s, p99 21 ms vs 1 s; two
    edge processes sharing the disk, 10 KB: 3.6k req/s, p99 28 ms vs 2.4k req/s, p99 1.8 s. The
    loop reads through a second handle whose SQLite busy timeout is `READ_WAIT_S`: when another
    process or our writer thread holds the lock longer, the read retries in a thread instead of
    stalling the loop.

    Small sets on the loop (`python -m benchmarks.servecpu`: every request a new variant of a
    64 px source, ~900 misses/s; 3 alternating pairs): 0.43-0.44 against 0.54-0.62 ms of the
    serving process's CPU per miss through the thread. The hop, and the thread's Python
    taking the GIL from the loop, cost more than the insert itself (~90 us in a tight loop).
    """

    name = "disk"

    def __init__(self, directory: str, max_bytes: int, on_error: Callable[[str], None]) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.on_error = on_error
        self._cache: diskcache.Cache | None = None
        self._reader: diskcache.Cache | None = None  # the loop's handle (short busy timeout)
        self._volume = 0
        self._volume_due = 0.0  # monotonic time of the next `volume()` refresh
        self._keys = DiskKeys()  # answers "not stored" without SQLite (edge/diskkeys.py)
        self._keys_con: sqlite3.Connection | None = None  # the writer thread's: syncs, checkpoints
        self._reader_sets = True  # small sets on the loop (its connection set up for them)
        self._unchecked = 0  # bytes the loop has set since the writer thread's last checkpoint
        # Every write but the loop's small sets runs on this one thread: one SQLite connection
        # with a warm page cache, and no two writers of this process contending for the lock
        # (the loop's sets wait `READ_WAIT_S` for it at most, then move here). Through
        # asyncio's default executor a set landed on any of its threads, each with its own
        # connection: 20 KB sets from a loop with 8 in flight cost 309 us of CPU there, 179
        # here. (Variants of 32 KB and more are files of their own: ~0.8 ms a set.)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="imgcdn-disk")

    @property
    def available(self) -> bool:
        return self._cache is not None

    @property
    def cache(self) -> diskcache.Cache | None:
        """The open diskcache (for small shared records such as the purge log), or None."""
        return self._cache

    async def open(self) -> bool:
        if self.max_bytes > 0 and self._cache is None:
            self._cache = await self.run(self._open)
            reader = self._reader
            if self._cache is not None and reader is not None:
                try:  # diskcache's connections are per thread: this one is the loop's
                    reader.reset("sqlite_wal_autocheckpoint", 0, update=False)
                except sqlite3.Error as err:
                    log.warning("disk cache: sets stay on the writer thread: %s", err)
                    self._reader_sets = False
        return self._cache is not None

    def _open(self) -> diskcache.Cache | None:
        try:
            return self._open_cache()
        except sqlite3.OperationalError as err:
            # Read-only, locked or an I/O error: the entries may be fine, so never move or
            # delete them (a read-only tier would otherwise be wiped as "corrupt").
            log.error("disk cache %s unusable: %s", self.directory, err)
            self.on_error("open")
            return None
        except sqlite3.DatabaseError as err:
            # A corrupt cache.db: keep it aside for a post-mortem and start empty.
            aside = self.directory.with_name(
                f"{self.directory.name}.corrupt-{int(time.time())}-{os.getpid()}"
            )
            log.warning("disk cache %s is corrupt (%s); moved to %s", self.directory, err, aside)
            self.on_error("open")
            try:
                self.directory.rename(aside)
            except OSError:
                shutil.rmtree(self.directory, ignore_errors=True)
        except OSError as err:
            log.error("disk cache %s unusable: %s", self.directory, err)
            self.on_error("open")
            return None
        try:
            return self._open_cache()
        except (OSError, sqlite3.Error) as err:
            log.error("disk cache %s unusable: %s", self.directory, err)
            self.on_error("open")
            return None

    def _open_cache(self) -> diskcache.Cache:
        settings = {
            "size_limit": self.max_bytes,
            "eviction_policy": "least-recently-used",
            "tag_index": True,  # purge by path tag without a full scan
            "statistics": False,
            "disk": WholeWrites,
        }
        cache = diskcache.Cache(str(self.directory), **settings)
        self._reader = diskcache.Cache(str(self.directory), timeout=READ_WAIT_S, **settings)
        self._volume = cache.volume()
        self._sync_keys(whole=True)
        return cache

    def _sync_keys(self, whole: bool = False) -> None:
        """Bring the key filter up to date (writer thread); `whole`: finish any rebuild now
        (at open, before anything is served). On failure it stays stale, and lookups ask
        SQLite as they did without it."""
        try:
            if self._keys_con is None:
                # read-write only for checkpoints; it never writes a row
                db = quote(str(self.directory / diskcache.core.DBNAME))  # '?', '#', '%'
                self._keys_con = sqlite3.connect(
                    f"file:{db}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
                )
            self._keys.sync(self._keys_con)
            while whole and self._keys.building:
                self._keys.sync(self._keys_con)
            if self._unchecked >= CHECKPOINT_BYTES:
                self._unchecked = 0  # a set racing this reset is checkpointed the next time
                self._keys_con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (OSError, sqlite3.Error) as err:
            log.warning("disk cache key filter not synced: %s", err)
        finally:
            self._keys.syncing = False

    def _queue_key_sync(self) -> None:
        self._keys.syncing = True
        with contextlib.suppress(RuntimeError):  # the thread is shut down: closing
            asyncio.get_running_loop().run_in_executor(self._thread, self._sync_keys)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if self._cache is not None:
            cache, self._cache = self._cache, None
            await self.run(self._close_on_thread, cache)
        self._thread.shutdown(wait=False)

    def _close_on_thread(self, cache: diskcache.Cache) -> None:
        cache.close()
        con, self._keys_con = self._keys_con, None
        if con is not None:
            con.close()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the tier's own thread (for anything that writes to the disk tier)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def get(self, key: str) -> Entry | None:
        data = await self.get_bytes(key)
        if data is None:
            return None
        try:
            return Entry.decode(data)
        except (ValueError, KeyError, TypeError, struct.error) as err:
            log.warning("corrupt disk cache entry %s: %s", key, err)
            self.on_error("corrupt")
            await self.delete(key)
            return None

    async def set(self, key: str, entry: Entry) -> bool:
        return await self.set_bytes(key, entry.encode(), entry.tag)

    async def get_bytes(self, key: str) -> bytes | None:
        cache, reader = self._cache, self._reader
        if cache is None or reader is None:
            return None
        keys = self._keys
        if keys.due():
            self._queue_key_sync()
        if keys.absent(key):
            return None
        try:
            # Under LRU, diskcache's get() takes the write lock (BEGIN IMMEDIATE, to record the
            # access) even for a key it does not hold, so a miss on the loop could wait for the
            # writer thread; a plain SELECT answers misses first, without the lock.
            if key not in reader:
                return None
            try:
                value = reader.get(key)  # on the loop: see the class docstring
            except diskcache.Timeout:  # the write lock is busy: wait for it in a thread
                value = await self.run(cache.get, key)
        except (OSError, sqlite3.Error, diskcache.Timeout) as err:
            log.warning("disk cache read failed: %s", err)
            self.on_error("read")
            return None
        return value if isinstance(value, bytes) else None

    async def set_bytes(self, key: str, data: bytes, tag: str) -> bool:
        cache, reader = self._cache, self._reader
        if cache is None or len(data) > self.max_bytes // 2:
            return False
        try:
            if reader is not None and self._reader_sets and len(data) < LOOP_SET_BYTES:
                try:
                    self._set(reader, key, data, tag)  # on the loop: see the class docstring
                    self._unchecked += len(data)
                    return True
                except diskcache.Timeout:  # the write lock is busy: wait for it in a thread
                    pass
            await self.run(self._set, cache, key, data, tag)
        except (OSError, sqlite3.Error) as err:  # a full disk is ENOSPC or SQLITE_FULL
            log.warning("disk cache write failed: %s", err)
            self.on_error("write")
            return False
        return True

    def _set(self, cache: diskcache.Cache, key: str, data: bytes, tag: str) -> None:
        """Store through `cache` (the loop's handle, or the writer thread's), then tell the key
        filter. From the loop, that `add` may race one of the writer thread's sync: a bit lost
        to it is set again by the next sync, which reads every new row, ours included."""
        cache.set(key, data, tag=tag or None)
        self._keys.add(key)
        now = time.monotonic()
        if now >= self._volume_due:  # a query of its own: at most once a second, not per write
            self._volume_due = now + VOLUME_EVERY_S
            self._volume = cache.volume()

    async def delete(self, key: str) -> None:
        cache = self._cache
        if cache is not None:
            try:
                await self.run(cache.delete, key)
            except (OSError, sqlite3.Error):
                self.on_error("write")

    async def evict(self, tag: str) -> int:
        cache = self._cache
        if cache is None:
            return 0
        try:
            return int(await self.run(cache.evict, tag))
        except (OSError, sqlite3.Error) as err:
            log.warning("disk cache evict failed: %s", err)
            self.on_error("write")
            return 0

    async def probe(self) -> str | None:
        """Readiness: None when a small write + read works, else what is wrong."""
        if self.max_bytes <= 0:
            return None
        if not await self.open():
            return f"disk cache {self.directory} cannot be opened"
        key = f"probe:{os.getpid()}"
        if not await self.set_bytes(key, b"ok", ""):
            return f"disk cache {self.directory} is not writable"
        await self.delete(key)
        return None

    def size_bytes(self) -> int:
        return self._volume


class TieredCache:
    """Memory, then disk, then the optional shared result store (edge/result_store.py); a hit
    is promoted to the tiers before it. Stores go to every tier, the shared one in the
    background. Without a shared store this costs one `is None` test past a disk miss."""

    def __init__(self, memory: MemoryTier, disk: DiskTier, shared: CacheTier | None = None) -> None:
        self.memory = memory
        self.disk = disk
        self.shared = shared
        self.probing = 0  # shared-store reads in flight that hold a place in the pool (`lookup`)

    async def get(self, key: str, *, shared: bool = True) -> tuple[Entry, str] | None:
        """`shared=False`: not the shared store (the caller could not render a miss now, and
        a refusal must not wait for S3, and each read costs the loop CPU: ~0.16 ms)."""
        entry = await self.memory.get(key)
        if entry is not None:
            return entry, self.memory.name
        entry = await self.disk.get(key)
        if entry is not None:
            await self.memory.set(key, entry)
            return entry, self.disk.name
        if self.shared is None or not shared:
            return None
        entry = await self.shared.get(key)
        if entry is not None:
            await self.memory.set(key, entry)
            await self.disk.set(key, entry)  # this host's other processes find it there next
            return entry, self.shared.name
        return None

    async def lookup(
        self, key: str, admit: Callable[[int], None] | None
    ) -> tuple[Entry, str] | None:
        """`get` for a request that renders on a miss. The shared store is read only when
        `admit(reads in flight)` passes (it raises `Overloaded` when the pool has no room for
        one more miss): under overload a refusal must not wait for S3, and each read costs
        ~0.16 ms of the loop's CPU (edge/s3.py). A read holds its place until it is answered
        (`probing`), so a burst reads at most as many objects as there is room for misses.
        `admit` None: the miss needs no place of its own (its render is already running)."""
        if self.shared is None:
            return await self.get(key)
        if admit is not None:
            try:
                admit(self.probing)
            except Overloaded:
                return await self.get(key, shared=False)
        self.probing += 1
        try:
            return await self.get(key)
        finally:
            self.probing -= 1

    async def set(self, key: str, entry: Entry) -> bool:
        in_memory = await self.memory.set(key, entry)
        # Awaited, not fired and forgotten: ~1 ms on a miss that already paid for a transform,
        # and a restart right after the response still finds the entry.
        on_disk = await self.disk.set(key, entry)
        if self.shared is not None:
            await self.shared.set(key, entry)  # only starts the upload
        return in_memory or on_disk

    async def evict(self, tag: str) -> int:
        """Drop every entry tagged `tag`; returns the number of distinct variants dropped
        (an entry usually sits in both tiers, so the larger of the two counts). The shared
        store is left alone: its keys are content-addressed (edge/result_store.py)."""
        dropped_memory = await self.memory.evict(tag)
        dropped_disk = await self.disk.evict(tag)
        return max(dropped_memory, dropped_disk)
