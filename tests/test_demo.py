"""The demo seeding over the origin's real HTTP API (origin in-process, seeding in a thread)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from imgcdn.config import OriginConfig, StorageConfig
from imgcdn.demo import (
    DEMO_EMAIL,
    DemoError,
    call,
    demo_urls,
    email_hashes,
    seed_demo,
)
from origin.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def origin_url(tmp_path: Path):
    port = free_port()
    config = OriginConfig(
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite:///{tmp_path / 'origin.db'}",
        storage=StorageConfig(path=str(tmp_path / "blobs")),
        edges=(),
    )
    server = TestServer(create_app(config), host="127.0.0.1", port=port)
    await server.start_server()
    yield f"http://127.0.0.1:{port}"
    await server.close()


def test_email_hashes_are_gravatars() -> None:
    md5, sha256 = email_hashes("  Demo@IMGCDN.example ")
    assert md5 == hashlib.md5(b"demo@imgcdn.example").hexdigest()
    assert sha256 == hashlib.sha256(b"demo@imgcdn.example").hexdigest()


def test_demo_urls_list_sizes_formats_and_defaults() -> None:
    urls = dict(demo_urls("http://127.0.0.1:9000/"))
    md5, sha256 = email_hashes(DEMO_EMAIL)
    assert urls["avatar s=32"] == f"http://127.0.0.1:9000/avatar/{md5}?s=32"
    assert urls["avatar s=80"] == f"http://127.0.0.1:9000/avatar/{md5}?s=80"
    assert urls["avatar s=256"] == f"http://127.0.0.1:9000/avatar/{md5}?s=256"
    assert urls["avatar s=80 webp"] == f"http://127.0.0.1:9000/avatar/{md5}.webp?s=80"
    assert urls["avatar by sha-256"] == f"http://127.0.0.1:9000/avatar/{sha256}?s=80"
    assert "d=identicon" in urls["unknown hash, d=identicon"]
    assert md5 not in urls["unknown hash, d=identicon"]
    assert urls["any image, resized"] == "http://127.0.0.1:9000/img/astronaut.jpg?w=300"


async def test_seed_creates_user_with_two_photos_first_active(
    origin_url: str, tmp_path: Path, samples: Path
) -> None:
    state = tmp_path / "var" / "demo.json"
    result = await asyncio.to_thread(seed_demo, origin_url, state, samples)
    assert "created" in result.note
    saved = json.loads(state.read_text())
    assert saved["email"] == DEMO_EMAIL and saved["hash_md5"] == result.hash_md5
    assert state.stat().st_mode & 0o777 == 0o600
    photos = await asyncio.to_thread(call, "GET", f"{origin_url}/v1/photos", token=saved["token"])
    assert photos.status == 200
    listed = photos.body["photos"]
    assert len(listed) == 2
    oldest = listed[-1]
    assert oldest["active"] is True and oldest["width"] == 1024  # astronaut.jpg
    lookup = await asyncio.to_thread(call, "GET", f"{origin_url}/v1/avatars/{result.hash_md5}")
    assert lookup.status == 200 and lookup.body["photo_id"] == oldest["id"]


async def test_seed_again_reuses_the_saved_token(
    origin_url: str, tmp_path: Path, samples: Path
) -> None:
    state = tmp_path / "demo.json"
    await asyncio.to_thread(seed_demo, origin_url, state, samples)
    token = json.loads(state.read_text())["token"]
    again = await asyncio.to_thread(seed_demo, origin_url, state, samples)
    assert "reused" in again.note
    assert json.loads(state.read_text())["token"] == token
    photos = await asyncio.to_thread(call, "GET", f"{origin_url}/v1/photos", token=token)
    assert len(photos.body["photos"]) == 2  # nothing uploaded twice


async def test_seed_without_saved_token_still_gives_the_hash(
    origin_url: str, tmp_path: Path, samples: Path
) -> None:
    state = tmp_path / "demo.json"
    first = await asyncio.to_thread(seed_demo, origin_url, state, samples)
    state.unlink()
    again = await asyncio.to_thread(seed_demo, origin_url, state, samples)
    assert "token is not in" in again.note
    assert again.hash_md5 == first.hash_md5
    state.write_text("{not json")
    assert (
        "token is not in" in (await asyncio.to_thread(seed_demo, origin_url, state, samples)).note
    )


def test_seed_against_nothing_listening_fails_in_one_line(tmp_path: Path, samples: Path) -> None:
    with pytest.raises(DemoError) as err:
        seed_demo(f"http://127.0.0.1:{free_port()}", tmp_path / "demo.json", samples)
    assert "POST" in str(err.value) and "\n" not in str(err.value)
