"""Cache tiers on their own: byte budgets, LRU order, corruption and unwritable directories."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest

from edge.cache import (
    CHECKPOINT_BYTES,
    LOOP_SET_BYTES,
    DiskTier,
    Entry,
    MemoryTier,
    TieredCache,
    WholeWrites,
)
from edge.headers import strong_etag


def entry(size: int, tag: str = "t", fill: bytes | None = None) -> Entry:
    body = (fill or os.urandom(16)) * (size // 16) if fill else os.urandom(size)
    return Entry(body, "image/jpeg", strong_etag(body), 1.0, 2.0, tag)


class Errors(list[str]):
    def __call__(self, kind: str) -> None:
        self.append(kind)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def test_entry_round_trip_and_checksum() -> None:
    e = entry(1000)
    assert Entry.decode(e.encode()) == e
    data = bytearray(e.encode())
    data[-1] ^= 0xFF
    with pytest.raises(ValueError):
        Entry.decode(bytes(data))


async def test_memory_tier_evicts_least_recently_used_within_budget() -> None:
    tier = MemoryTier(max_bytes=10_000)
    for i in range(4):
        assert await tier.set(f"k{i}", entry(3000))
        assert tier.size_bytes() <= 10_000
    # 4 x 3000 > 10000: k0 went first. Touch k1 so k2 is now the least recently used.
    assert await tier.get("k0") is None
    assert await tier.get("k1") is not None
    await tier.set("k4", entry(3000))
    assert await tier.get("k2") is None
    assert await tier.get("k1") is not None
    assert tier.size_bytes() <= 10_000
    assert not await tier.set("huge", entry(20_000))  # larger than the whole budget: skipped
    assert not await MemoryTier(0).set("k", entry(10))  # 0 disables the tier


async def test_memory_tier_evicts_by_tag() -> None:
    tier = MemoryTier(max_bytes=100_000)
    await tier.set("a", entry(10, tag="x"))
    await tier.set("b", entry(10, tag="x"))
    await tier.set("c", entry(10, tag="y"))
    assert await tier.evict("x") == 2
    assert len(tier) == 1


async def test_disk_tier_stays_within_budget_after_writing_three_times_it(tmp_path: Path) -> None:
    budget = 4 << 20
    errors = Errors()
    tier = DiskTier(str(tmp_path / "disk"), budget, errors)
    assert await tier.open()
    written = 0
    while written < 3 * budget:
        e = entry(64 << 10)
        assert await tier.set(f"k{written}", e)
        written += len(e.body)
        assert tier.size_bytes() <= budget
    await tier.close()
    values = sum(f.stat().st_size for f in (tmp_path / "disk").rglob("*.val"))
    assert values <= budget
    assert errors == []


async def test_disk_tier_survives_restart_and_evicts_by_tag(tmp_path: Path) -> None:
    first = DiskTier(str(tmp_path / "d"), 1 << 20, Errors())
    await first.open()
    await first.set("a", entry(100, tag="p"))
    await first.set("b", entry(50_000, tag="p"))  # over 32 KiB: lives in its own file
    await first.set("c", entry(100, tag="q"))
    await first.close()
    second = DiskTier(str(tmp_path / "d"), 1 << 20, Errors())
    await second.open()
    assert (await second.get("b")) is not None
    assert await second.evict("p") == 2
    assert await second.get("a") is None and await second.get("c") is not None
    await second.close()


async def test_a_file_value_is_written_in_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """diskcache's own `Disk` writes a file value line by line; ours hands it over whole, and
    stock diskcache (another tool, an older edge) still reads it."""
    chunks: list[int] = []
    write = WholeWrites._write

    def counting(self: WholeWrites, path: str, iterator: Any, mode: str) -> int:
        parts = list(iterator)
        chunks.append(len(parts))
        return int(write(self, path, iter(parts), mode))

    monkeypatch.setattr(WholeWrites, "_write", counting)
    tier = DiskTier(str(tmp_path / "d"), 1 << 22, Errors())
    await tier.open()
    big = entry(60_000, fill=b"line of jpeg\n...")  # ~3,500 newlines
    small = entry(1_000)
    assert await tier.set("big", big) and await tier.set("small", small)
    await tier.close()
    assert chunks == [1]  # one file value, one write; the small one lives in SQLite
    stock = diskcache.Cache(str(tmp_path / "d"))
    try:
        assert Entry.decode(stock.get("big")) == big
        assert Entry.decode(stock.get("small")) == small
    finally:
        stock.close()


async def test_a_disk_miss_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    """Another process writing (its transaction holds SQLite's write lock) must not hold up a
    lookup of a key the tier does not have; a hit still waits for its access-time update."""
    tier = DiskTier(str(tmp_path / "d"), 1 << 20, Errors())
    await tier.open()
    await tier.set("held", entry(100))
    writer = sqlite3.connect(tmp_path / "d" / "cache.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as another edge process's write does
    try:
        started = time.perf_counter()
        assert await asyncio.wait_for(tier.get("absent"), timeout=5) is None
        assert time.perf_counter() - started < 0.05
        lookup = asyncio.ensure_future(tier.get("held"))
        await asyncio.sleep(0.1)
        assert not lookup.done()  # the hit waits for the lock, in the tier's thread
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert await asyncio.wait_for(lookup, timeout=30) is not None
    await tier.close()


class CountedRuns:
    """Counts the calls a tier hands to its writer thread."""

    def __init__(self, tier: DiskTier, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        run = tier.run

        async def counted(fn: Any, *args: Any) -> Any:
            self.calls.append(getattr(fn, "__name__", "?"))
            return await run(fn, *args)

        monkeypatch.setattr(tier, "run", counted)


async def test_a_small_set_is_stored_by_the_loop_a_large_one_by_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = DiskTier(str(tmp_path / "d"), 16 << 20, Errors())
    await tier.open()
    runs = CountedRuns(tier, monkeypatch)
    small, large = entry(LOOP_SET_BYTES // 2), entry(2 * LOOP_SET_BYTES)
    assert await tier.set("small", small)
    assert runs.calls == []  # no hop to the thread
    other = diskcache.Cache(str(tmp_path / "d"))  # committed: another handle reads it at once
    try:
        assert Entry.decode(other.get("small")) == small
    finally:
        other.close()
    assert await tier.set("large", large)
    assert runs.calls == ["_set"]
    assert await tier.get("small") == small and await tier.get("large") == large
    await tier.close()


async def test_a_small_set_waits_for_the_write_lock_in_the_thread(tmp_path: Path) -> None:
    """Another process holding SQLite's write lock stalls the loop for at most the reader's
    busy timeout: the set then waits in the tier's thread, and lands after the lock is freed."""
    tier = DiskTier(str(tmp_path / "d"), 1 << 20, Errors())
    await tier.open()
    writer = sqlite3.connect(tmp_path / "d" / "cache.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        stored = asyncio.ensure_future(tier.set("k", entry(100)))
        await asyncio.sleep(0)  # the set runs up to its first await
        assert time.perf_counter() - started < 0.05
        await asyncio.sleep(0.1)
        assert not stored.done()
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert await asyncio.wait_for(stored, timeout=30)
    assert await tier.get("k") is not None
    await tier.close()


def wal_bytes(directory: Path) -> int:
    wal = directory / "cache.db-wal"
    return wal.stat().st_size if wal.exists() else 0


async def test_the_loop_never_checkpoints_the_thread_does(tmp_path: Path) -> None:
    """A checkpoint writes pages back and fsyncs: the loop's connection leaves it to the
    writer thread's key sync, once the loop has set `CHECKPOINT_BYTES`."""
    directory = tmp_path / "d"
    tier = DiskTier(str(directory), 256 << 20, Errors())
    await tier.open()
    value = entry(LOOP_SET_BYTES - 1024)
    per_round = CHECKPOINT_BYTES // len(value.body) + 8
    sizes = []
    for r in range(3):
        for i in range(per_round):
            assert await tier.set(f"k{r}-{i}", value)
        sizes.append(wal_bytes(directory))
        await tier.run(tier._sync_keys)
    # Round 0: no checkpoint (SQLite's own, at 1000 pages, would have kept the WAL at ~4 MB;
    # each small set rewrites index pages too, so a round writes ~2x its bytes). Then the
    # thread's checkpoint after each round lets the next one rewrite the WAL from its start.
    assert sizes[0] > 1.5 * CHECKPOINT_BYTES
    assert max(sizes) < 1.2 * sizes[0], sizes
    await tier.close()


async def test_corrupt_disk_entry_is_a_counted_miss(tmp_path: Path) -> None:
    errors = Errors()
    tier = DiskTier(str(tmp_path / "d"), 1 << 20, errors)
    await tier.open()
    await tier.set("big", entry(100_000))
    [val] = list((tmp_path / "d").rglob("*.val"))
    data = bytearray(val.read_bytes())
    data[5000] ^= 0xFF  # flip one byte of the body
    val.write_bytes(bytes(data))
    assert await tier.get("big") is None
    assert errors == ["corrupt"]
    assert await tier.get_bytes("big") is None  # and it was dropped
    val_missing = entry(100_000)
    await tier.set("gone", val_missing)
    for f in (tmp_path / "d").rglob("*.val"):
        f.unlink()
    assert await tier.get("gone") is None  # a deleted value file is a plain miss
    await tier.close()


async def test_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not a database" * 100)
    errors = Errors()
    tier = DiskTier(str(directory), 1 << 20, errors)
    assert await tier.open()
    assert errors == ["open"]
    aside = [p.name for p in os.scandir(tmp_path) if p.name != "d"]
    assert len(aside) == 1 and aside[0].startswith("d.corrupt-")
    assert await tier.set("k", entry(10))
    assert await tier.get("k") is not None
    await tier.close()


async def test_unusable_directory_degrades_to_misses(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    errors = Errors()
    tier = DiskTier(str(blocker / "cache"), 1 << 20, errors)
    assert not await tier.open()
    assert not await tier.set("k", entry(10))
    assert await tier.get("k") is None
    assert "cannot be opened" in (await tier.probe() or "")
    assert errors and set(errors) == {"open"}


async def test_full_disk_is_a_counted_error_not_an_exception(tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for ENOSPC: writing a large value file fails with EFBIG."""
    errors = Errors()
    tier = DiskTier(str(tmp_path / "d"), 4 << 20, errors)
    await tier.open()
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, old_limit[1]))
    try:
        stored = await tier.set("big", entry(500_000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert not stored
    assert errors == ["write"]
    assert await tier.get("big") is None
    assert await tier.set("small", entry(100))  # and the tier keeps working
    await tier.close()


async def test_tiered_cache_promotes_disk_hits(tmp_path: Path) -> None:
    disk = DiskTier(str(tmp_path / "d"), 1 << 20, Errors())
    await disk.open()
    await disk.set("k", entry(100))
    tiers = TieredCache(MemoryTier(1 << 20), disk)
    hit = await tiers.get("k")
    assert hit is not None and hit[1] == "disk"
    hit = await tiers.get("k")
    assert hit is not None and hit[1] == "memory"
    await disk.close()


def test_sqlite_error_classes_are_what_we_catch() -> None:
    assert issubclass(sqlite3.DatabaseError, sqlite3.Error)
