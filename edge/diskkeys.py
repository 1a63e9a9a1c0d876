"""What the disk tier holds, known in memory: a Bloom filter of its keys, so that asking for a
key it does not hold costs no SQLite query.

Every miss and every 503 asks the disk tier first. In the running edge that `SELECT` took
18 us of CPU on average and up to 0.45 ms of wall time (p99: releasing the GIL for it hands
the loop to the disk-write thread), where the filter takes ~0.3 us. Closed-loop overload, the
check skipped outright: 7.3k against 4.9k req/s, 503 p99 37 against 55 ms.

The filter is exact in one direction only. "Not in the filter" means "not stored" as of the
filter's last sync with the table, which is at most `SYNC_S` old; past that it answers
nothing and the caller asks SQLite. A false "maybe" (another key's bits, a key since evicted)
costs the query it would have cost anyway. A key another process stored after the last sync
is missed for up to `SYNC_S`: that variant is rendered once more here, as when two processes
miss it at the same moment. This process's own writes enter the filter as they commit.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

SYNC_S = 0.25  # the longest a filter is trusted without reading the keys stored since
BITS_PER_KEY = 16  # 3 probes: 0.5 % false "maybe" when full, 0.07 % half full
MIN_CAPACITY = 1 << 16  # keys; 128 KiB of filter
REUSED_ROWIDS = 8  # re-read this many rowids below the last seen (`DiskKeys.sync`: why)
BUILD_CHUNK = 20_000  # keys a rebuild reads per sync: ~30 ms of the writer thread


class KeyFilter:
    """A Bloom filter of strings (3 probes from `hash()`, per process): `maybe(key)` is False
    only for a key never added. No removal: it is rebuilt once `count` passes `capacity`."""

    __slots__ = ("_bits", "_mask", "capacity", "count")

    def __init__(self, capacity: int) -> None:
        size = 1 << max(16, (capacity * BITS_PER_KEY - 1).bit_length())
        self._bits = bytearray(size >> 3)
        self._mask = size - 1
        self.capacity = capacity
        self.count = 0  # keys that set a new bit (an estimate: re-adding costs nothing)

    @property
    def full(self) -> bool:
        return self.count > self.capacity

    def add(self, key: str) -> None:
        h = hash(key)
        step, mask, bits = (h >> 32) | 1, self._mask, self._bits
        fresh = False
        for i in (h & mask, (h + step) & mask, (h + 2 * step) & mask):
            bit = 1 << (i & 7)
            if not bits[i >> 3] & bit:
                bits[i >> 3] |= bit
                fresh = True
        self.count += fresh

    def maybe(self, key: str) -> bool:
        # `add`'s three probes, unrolled and stopping at the first clear bit: every lookup
        h = hash(key)  # cached on the str
        step, mask, bits = (h >> 32) | 1, self._mask, self._bits
        i = h & mask
        if not bits[i >> 3] & 1 << (i & 7):
            return False
        i = (h + step) & mask
        if not bits[i >> 3] & 1 << (i & 7):
            return False
        i = (h + 2 * step) & mask
        return bool(bits[i >> 3] & 1 << (i & 7))


class DiskKeys:
    """The disk tier's keys as of the last `sync`. `absent` is read on the event loop, and
    `sync` runs on the tier's writer thread; `add` runs after each of this process's sets, on
    whichever of the two stored it. The loop only ever sees whole filters (swapped in one
    assignment). An `add` on the loop may race the thread's (both set bits of one byte, or
    the rebuilt filter is swapped in between): a key whose bits are lost that way is read
    again by the next sync, which reads every row stored since the last, ours included; until
    then it is rendered once more at worst, as within the window for other processes' rows.

    Two reads keep it current: every sync reads the rows stored since the last one (by rowid),
    and a rebuild (at first, when the filter is full, when the table was cleared) reads the
    whole table in `BUILD_CHUNK`s of keys, one per sync, so that a large table never holds up
    the writes queued behind it on the thread for long (200k keys in one go took ~0.3 s)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._filter: KeyFilter | None = None  # None: not built yet, ask SQLite
        self._synced = 0.0  # clock() when the last sync's snapshot began
        self._rowid = 0  # the highest rowid read so far
        self._building: KeyFilter | None = None  # the next filter, while the table is read
        self._cursor = ""  # the last key the rebuild has read (keys are read in order)
        self.syncing = False  # a sync is queued or running (set on the loop, cleared by the tier)

    @property
    def building(self) -> bool:
        return self._building is not None

    def absent(self, key: str) -> bool:
        """True only when `key` is certainly not stored (as of at most `SYNC_S` ago)."""
        f = self._filter
        return f is not None and self._clock() - self._synced < SYNC_S and not f.maybe(key)

    def due(self) -> bool:
        """Time to queue a sync: half way through the window, so that lookups rarely find
        the filter expired while traffic flows."""
        return not self.syncing and self._clock() - self._synced >= SYNC_S / 2

    def add(self, key: object) -> None:
        """A key stored: by this process (after the commit, on the loop or the writer
        thread) or read from the table by `sync`. Into the filter in use and the one being
        built; non-str keys (not ours) are never asked for."""
        if isinstance(key, str):
            for f in (self._filter, self._building):
                if f is not None:
                    f.add(key)

    def sync(self, con: sqlite3.Connection) -> None:
        """Read the keys stored since the last sync, and the next chunk of a rebuild (writer
        thread). diskcache's rowid is SQLite's max + 1, so new rows come above the last one
        read, except a row reusing the rowid of a newest row deleted since: the last
        `REUSED_ROWIDS` are read again for that (e.g. the readiness probe's key, written and
        deleted)."""
        started = self._clock()
        (top,) = con.execute("SELECT COALESCE(MAX(rowid), 0) FROM Cache").fetchone()
        if top < self._rowid:  # cleared: the filter's bits may no longer say anything
            self._filter, self._building = None, None
        if self._building is None and (self._filter is None or self._filter.full):
            (rows,) = con.execute("SELECT COUNT(*) FROM Cache").fetchone()
            self._building, self._cursor = KeyFilter(max(MIN_CAPACITY, 2 * rows)), ""
            if self._filter is None:
                self._rowid = top  # the rebuild reads every row up to here
        since = max(0, self._rowid - REUSED_ROWIDS)
        query = "SELECT key FROM Cache WHERE rowid > ? AND rowid <= ? AND raw = 1"
        for (key,) in con.execute(query, (since, top)):
            self.add(key)
        self._rowid = top
        if self._building is not None:
            self._read_chunk(con)
        if self._filter is not None:
            self._synced = started

    def _read_chunk(self, con: sqlite3.Connection) -> None:
        """The next keys of the whole table, through diskcache's (key, raw) index (covering:
        no row is read); the last chunk swaps the new filter in."""
        building = self._building
        assert building is not None
        query = "SELECT key FROM Cache WHERE key > ? AND raw = 1 ORDER BY key LIMIT ?"
        chunk = con.execute(query, (self._cursor, BUILD_CHUNK)).fetchall()
        for (key,) in chunk:
            if isinstance(key, str):
                building.add(key)  # not `self.add`: a filter in use holds these already
        if chunk:
            self._cursor = chunk[-1][0]
        if len(chunk) < BUILD_CHUNK:
            self._filter, self._building = building, None
