"""The disk tier's key filter: "absent" without SQLite, and never wrong about a stored key."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

import edge.diskkeys
from edge.cache import DiskTier, Entry
from edge.diskkeys import SYNC_S, DiskKeys, KeyFilter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(tmp_path: Path) -> Iterator[tuple[diskcache.Cache, sqlite3.Connection]]:
    """A diskcache (as another process would write it) and a read connection to its table."""
    cache = diskcache.Cache(str(tmp_path / "d"))
    con = sqlite3.connect(tmp_path / "d" / "cache.db", isolation_level=None)
    yield cache, con
    con.close()
    cache.close()


def test_a_filter_never_forgets_a_key_and_rarely_claims_one() -> None:
    keys = KeyFilter(20_000)
    stored = [f"v:{i:064x}" for i in range(20_000)]
    for key in stored:
        keys.add(key)
    assert all(keys.maybe(key) for key in stored)
    claimed = sum(keys.maybe(f"other:{i}") for i in range(50_000))
    assert claimed < 50_000 * 0.01  # 0.5 % expected when full
    assert 0.99 * 20_000 < keys.count <= 20_000  # a key whose bits were all set is not counted
    assert not keys.full
    for i in range(1_000):
        keys.add(f"more:{i}")
    assert keys.full


def test_adding_a_key_again_does_not_count() -> None:
    keys = KeyFilter(10)
    for _ in range(50):
        keys.add("same")
    assert keys.count == 1


def test_absent_only_inside_the_window_after_a_sync(
    table: tuple[diskcache.Cache, sqlite3.Connection],
) -> None:
    cache, con = table
    cache.set("stored", b"x")
    clock = Clock()
    keys = DiskKeys(clock)
    assert not keys.absent("unknown")  # never synced: ask SQLite
    assert keys.due()
    keys.sync(con)
    assert keys.absent("unknown")
    assert not keys.absent("stored")
    assert not keys.due()
    clock.now += SYNC_S / 2
    assert keys.due()
    clock.now += SYNC_S / 2
    assert not keys.absent("unknown")  # too old to trust


def test_a_sync_reads_what_others_stored_since(
    table: tuple[diskcache.Cache, sqlite3.Connection],
) -> None:
    cache, con = table
    keys = DiskKeys(Clock())
    keys.sync(con)
    cache.set("theirs", b"x")
    assert keys.absent("theirs")  # not yet: the window a render may repeat
    keys.sync(con)
    assert not keys.absent("theirs")
    keys.add("mine")  # our own write enters at once
    assert not keys.absent("mine")


def test_a_reused_rowid_is_read(table: tuple[diskcache.Cache, sqlite3.Connection]) -> None:
    """SQLite gives a new row max(rowid) + 1: a newest row deleted leaves its rowid to the
    next insert, below the last rowid a sync read."""
    cache, con = table
    cache.set("a", b"x")
    cache.set("probe", b"ok")
    keys = DiskKeys(Clock())
    keys.sync(con)
    cache.delete("probe")
    cache.set("after", b"x")
    (rowid,) = con.execute("SELECT rowid FROM Cache WHERE key = 'after'").fetchone()
    assert rowid == 2  # the deleted probe's
    keys.sync(con)
    assert not keys.absent("after")


def test_a_cleared_table_rebuilds_the_filter(
    table: tuple[diskcache.Cache, sqlite3.Connection],
) -> None:
    cache, con = table
    for i in range(5):
        cache.set(f"old{i}", b"x")
    keys = DiskKeys(Clock())
    keys.sync(con)
    cache.clear()
    cache.set("new", b"x")
    keys.sync(con)
    assert not keys.absent("new")
    assert keys.absent("old0")  # a fresh filter: the cleared keys are gone from it


def test_a_full_filter_is_rebuilt_from_the_table(
    table: tuple[diskcache.Cache, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.diskkeys, "MIN_CAPACITY", 4)
    cache, con = table
    keys = DiskKeys(Clock())
    keys.sync(con)
    for i in range(10):  # stored, then evicted: the filter cannot drop them itself
        cache.set(f"gone{i}", b"x")
        keys.add(f"gone{i}")
        cache.delete(f"gone{i}")
    cache.set("kept", b"x")
    keys.add("kept")
    assert not keys.absent("gone3")
    keys.sync(con)
    assert keys.absent("gone3")
    assert not keys.absent("kept")


def test_a_rebuild_reads_the_table_a_chunk_per_sync_and_misses_nothing_stored_meanwhile(
    table: tuple[diskcache.Cache, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.diskkeys, "BUILD_CHUNK", 3)
    cache, con = table
    for i in range(10):
        cache.set(f"k{i}", b"x")
    keys = DiskKeys(Clock())
    keys.sync(con)
    assert keys.building and not keys.absent("nowhere")  # no filter yet: ask SQLite
    cache.set("a-theirs", b"x")  # sorts before the keys the rebuild has read
    keys.add("b-mine")
    syncs = 1
    while keys.building:
        keys.sync(con)
        syncs += 1
    assert syncs == 4  # 10 keys, 3 a chunk: the 4th chunk is short
    assert keys.absent("nowhere")
    assert not any(keys.absent(k) for k in ("a-theirs", "b-mine", *(f"k{i}" for i in range(10))))


def entry(body: bytes) -> Entry:
    return Entry(body, "image/jpeg", '"e"', 0.0, 0.0)


@pytest.mark.parametrize("name", ["d", "a dir?with#odd%20chars"])
async def test_the_tier_answers_absent_keys_without_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    tier = DiskTier(str(tmp_path / name), 1 << 20, lambda kind: None)
    await tier.open()
    assert await tier.set("stored", entry(b"x" * 100))
    asked: list[str] = []
    contains = diskcache.Cache.__contains__

    def counted(self: diskcache.Cache, key: str) -> bool:
        asked.append(key)
        return contains(self, key)

    monkeypatch.setattr(diskcache.Cache, "__contains__", counted)
    for i in range(100):
        assert await tier.get(f"absent{i}") is None
    assert asked == []
    found = await tier.get("stored")
    assert found is not None and found.body == b"x" * 100
    assert asked == ["stored"]
    await tier.close()


async def test_the_tier_finds_what_another_process_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.diskkeys, "SYNC_S", 0.05)
    tier = DiskTier(str(tmp_path / "d"), 1 << 20, lambda kind: None)
    await tier.open()
    other = diskcache.Cache(str(tmp_path / "d"))
    try:
        other.set("theirs", entry(b"y" * 10).encode())
        await asyncio.sleep(0.06)  # the filter's window is over: SQLite is asked
        found = await tier.get("theirs")
        assert found is not None and found.body == b"y" * 10
    finally:
        other.close()
    await tier.close()
