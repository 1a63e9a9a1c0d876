"""Abandoned reservations are swept with their bytes; registered photos are never touched."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from origin.blobstore import LocalBlobStore
from origin.db import Database
from origin.janitor import sweep_uploads
from origin.models import Photo, Upload


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(f"sqlite:///{tmp_path}/origin.db")
    yield database
    await database.close()


def upload(photo_id: str, expires_at: float) -> Upload:
    return Upload(photo_id, "u", f"u/{photo_id}", "image/jpeg", 4, expires_at, "reserved")


async def test_sweep(db: Database, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", "http://x", b"k")
    now = time.time()
    for photo_id, expires in (("old", now - 100), ("kept", now - 100), ("fresh", now + 100)):
        await db.reserve_upload(upload(photo_id, expires), now)
        await blobs.put(f"u/{photo_id}", b"data", "image/jpeg")
    photo = Photo("kept", "u", "u/kept", "image/jpeg", 1, 1, 4, "g", 1, '"e"', now)
    assert await db.register_photo(photo)
    assert await sweep_uploads(db, blobs, cutoff=now - 10) == 1
    assert await blobs.stat("u/old") is None
    assert await blobs.stat("u/kept") == 4 and await blobs.stat("u/fresh") == 4
    assert await db.get_upload("old") is None and await db.get_upload("kept") is None
    assert await db.get_upload("fresh") is not None
    assert await db.get_photo("kept") == photo
    # a swept reservation can no longer be registered
    late = Photo("old", "u", "u/old", "image/jpeg", 1, 1, 4, "g", 1, '"e"', now)
    assert not await db.register_photo(late)
