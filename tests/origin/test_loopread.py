"""SQLite lookups read on the event loop (origin/loopread.py): the same answers as the
pooled path, never queued behind it, and the pooled path again when SQLite is busy."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from origin.db import Database
from origin.models import Photo, Upload, User

EMAIL = "loop@example.com"
MD5 = hashlib.md5(EMAIL.encode()).hexdigest()
SHA256 = hashlib.sha256(EMAIL.encode()).hexdigest()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(f"sqlite:///{tmp_path}/origin.db")
    yield database
    await database.close()


async def user_with_active_photo(db: Database) -> Photo:
    now = time.time()
    await db.create_user(User("u1", EMAIL, MD5, SHA256, None, now), token_hash="t" * 64)
    await db.reserve_upload(Upload("p1", "u1", "u1/p1", "image/jpeg", 4, now + 60, "reserved"), now)
    photo = Photo("p1", "u1", "u1/p1", "image/jpeg", 640, 480, 4, "pg", 3, '"e"', now)
    assert await db.register_photo(photo)
    assert await db.set_active("u1", "p1")
    return photo


async def test_the_loop_reader_answers_as_the_pool_does(db: Database) -> None:
    assert db.reader is not None
    photo = await user_with_active_photo(db)
    assert db.reader.active_photo(MD5) == photo
    assert db.reader.active_photo(SHA256) == photo
    assert db.reader.active_photo("0" * 32) is None
    reader, db.reader = db.reader, None  # the pooled path, for comparison
    try:
        assert await db.active_photo(MD5) == photo
        assert await db.active_photo("0" * 32) is None
    finally:
        db.reader = reader
    await db.clear_active("u1")  # a commit on the pooled connection shows at once
    assert await db.active_photo(MD5) is None


async def test_lookups_do_not_queue_behind_the_pooled_connection(db: Database) -> None:
    photo = await user_with_active_photo(db)
    async with db.begin():  # SQLite's pool is this one connection, now held
        answer = await asyncio.wait_for(db.active_photo(MD5), timeout=1.0)
    assert answer == photo


async def test_a_busy_loop_read_falls_back_to_the_pool(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = await user_with_active_photo(db)
    assert db.reader is not None

    def busy(avatar_hash: str) -> Photo | None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(db.reader, "active_photo", busy)
    assert await db.active_photo(MD5) == photo


async def test_postgresql_and_memory_databases_keep_the_pooled_path(tmp_path: Path) -> None:
    from origin.db import active_photo_query
    from origin.loopread import LoopReader

    for url in ("postgresql://u:p@127.0.0.1/db", "sqlite:///:memory:", f"sqlite:///{tmp_path}/x"):
        assert LoopReader.for_url(url, active_photo_query) is None
