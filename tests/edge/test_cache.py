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

from edge.cache import DiskTier, Entry, MemoryTier, TieredCache, WholeWrites
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
