"""The local blob store: all-or-nothing writes inside its directory only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from origin.blobstore import LocalBlobStore
from transforms.errors import InvalidParam, NotFound, SourceTooLarge


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    (tmp_path / "blobs").mkdir()
    return LocalBlobStore(tmp_path / "blobs", "http://origin.test/", b"key")


async def chunks(*parts: bytes, delay: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(delay)
        yield part


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a/b/", ".hidden", "a/.", "", "a\\b", "ü"]
)
async def test_keys_outside_the_pattern_are_refused(store: LocalBlobStore, key: str) -> None:
    with pytest.raises(NotFound):
        store.path_for(key)
    with pytest.raises(NotFound):
        await store.put(key, b"data", "image/jpeg")
    with pytest.raises(NotFound):
        await store.presign_put(key, "image/jpeg", 4, 60)


async def test_put_get_stat_delete(store: LocalBlobStore, tmp_path: Path) -> None:
    await store.put("u/p", b"hello", "image/jpeg")
    assert await store.stat("u/p") == 5
    assert await store.get("u/p") == b"hello"
    assert files(tmp_path / "blobs") == ["u/p"]
    await store.delete("u/p")
    await store.delete("u/p")  # idempotent
    assert await store.stat("u/p") is None and await store.get("u/p") is None


@pytest.mark.parametrize(
    ("parts", "error"),
    [((b"abc", b"def"), SourceTooLarge), ((b"ab",), InvalidParam), ((), InvalidParam)],
)
async def test_wrong_lengths_store_nothing(
    store: LocalBlobStore, tmp_path: Path, parts: tuple[bytes, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.receive("u/p", chunks(*parts), 5)
    assert files(tmp_path / "blobs") == []


async def test_a_cancelled_write_leaves_the_old_bytes_and_no_temp_file(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    await store.put("u/p", b"old!!", "image/jpeg")
    task = asyncio.create_task(store.receive("u/p", chunks(b"ne", b"w!!", delay=0.2), 5))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files(tmp_path / "blobs") == ["u/p"]
    assert await store.get("u/p") == b"old!!"


async def test_presigned_url_points_at_the_public_url(store: LocalBlobStore) -> None:
    signed = await store.presign_put("u/p", "image/png", 42, 60)
    assert signed.url.startswith("http://origin.test/blobs/u/p?expires=")
    assert "&sig=" in signed.url
    assert signed.headers == {"Content-Type": "image/png", "Content-Length": "42"}
