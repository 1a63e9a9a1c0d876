"""Upload attacks on a running origin that tests/origin/test_uploads.py does not already make:
bodies longer than their Content-Length, clients that vanish mid-body, URLs that expire for
real, replays after registration and polyglots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from yarl import URL

from tests.hardening.hostile import polyglot
from tests.origin.api import Api, error_of
from tests.origin.conftest import MakeConfig, StartOrigin

Read = Callable[[str], bytes]


@pytest.fixture
async def origin(make_config: MakeConfig, start_origin: StartOrigin) -> Api:
    return await start_origin(
        make_config(max_upload_bytes=300_000, upload_timeout_s=0.5, keepalive_timeout_s=1.0)
    )


def blobs(api: Api) -> dict[str, bytes]:
    root = Path(api.config.storage.path)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def send_raw(url: URL, data: bytes, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(data)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10) if read else b""
    writer.close()
    return reply


def put_head(url: URL, length: int, content_type: str = "image/jpeg", close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"PUT {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{connection}\r\n"
    ).encode()


async def test_a_body_longer_than_its_content_length_stores_only_the_signed_bytes(
    origin: Api, sample_bytes: Read
) -> None:
    """Bytes past Content-Length are the next request on the connection: a valid one is
    served as such; garbage makes aiohttp refuse the connection and nothing is stored."""
    user = await origin.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await origin.reserve_ok(user["token"], "image/jpeg", len(data))
    url = URL(upload["upload_url"])
    garbage = b"\xff\xd8\xff" + b"\x07" * 300
    reply = await send_raw(url, put_head(url, len(data)) + data + garbage)
    assert reply.startswith(b"HTTP/1.0 400 ") and b" 200 OK" not in reply
    assert blobs(origin) == {}
    pipelined = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = await send_raw(url, put_head(url, len(data)) + data + pipelined)
    first, second = reply.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and second.startswith(b"200 ") and b"database" in second
    assert list(blobs(origin).values()) == [data]
    assert (await origin.register(user["token"], upload["photo_id"])).status == 201


async def test_a_client_vanishing_mid_body_stores_nothing_and_keeps_the_url(
    origin: Api, sample_bytes: Read
) -> None:
    user = await origin.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await origin.reserve_ok(user["token"], "image/jpeg", len(data))
    url = URL(upload["upload_url"])
    await send_raw(url, put_head(url, len(data)) + data[: len(data) // 2], read=False)
    await asyncio.sleep(0.3)
    assert blobs(origin) == {}
    registered = await origin.register(user["token"], upload["photo_id"])
    assert registered.status == 409  # nothing uploaded yet
    assert (await origin.send(upload, data)).status == 200
    assert (await origin.register(user["token"], upload["photo_id"])).status == 201


async def test_an_upload_url_really_expires(
    make_config: MakeConfig, start_origin: StartOrigin, sample_bytes: Read
) -> None:
    api = await start_origin(make_config(upload_url_ttl_s=1))
    user = await api.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await api.reserve_ok(user["token"], "image/jpeg", len(data))
    await asyncio.sleep(2.1)  # expiry is whole seconds, inclusive
    async with api.http.put(upload["upload_url"], data=data, headers=upload["headers"]) as r:
        assert r.status == 403
        # expired, or already swept by the janitor (it runs every ttl seconds)
        assert (await error_of(r))["message"].startswith(("expires:", "sig:"))
    assert blobs(api) == {}


async def test_replaying_an_upload_after_registration_changes_nothing(
    origin: Api, sample_bytes: Read
) -> None:
    user = await origin.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await origin.reserve_ok(user["token"], "image/jpeg", len(data))
    assert (await origin.send(upload, data)).status == 200
    photo = await origin.register(user["token"], upload["photo_id"])
    assert photo.status == 201
    replay = b"\xff\xd8\xff" + b"evil" * (len(data) // 4)
    replay = replay[: len(data)].ljust(len(data), b"!")
    assert (await origin.send(upload, replay)).status == 409
    raw = await origin.client.get(f"/v1/photos/{upload['photo_id']}/raw")
    assert await raw.read() == data


async def test_a_polyglot_upload_is_refused_and_deleted(origin: Api) -> None:
    user = await origin.create_user()
    body = polyglot()
    upload = await origin.reserve_ok(user["token"], "image/jpeg", len(body))
    assert (await origin.send(upload, body)).status == 200
    response = await origin.register(user["token"], upload["photo_id"])
    assert response.status == 422
    assert blobs(origin) == {}
    assert await origin.photos(user["token"]) == []
