"""Signed uploads: every tampered, expired, reused, oversized or slow PUT writes nothing, and
registration re-checks the object on both stores (moto does not enforce presigned URLs)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from origin.janitor import sweep_uploads
from origin.keys import BLOBS, DATABASE
from origin.signing import UploadGrant, sign_grant
from tests.origin.api import Api, error_of
from tests.origin.conftest import SIGNING_KEY, MakeConfig, StartOrigin

MAX = 300_000


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
async def local(make_config: MakeConfig, start_origin: StartOrigin) -> Api:
    return await start_origin(make_config(max_upload_bytes=MAX, upload_timeout_s=0.5))


async def put(api: Api, url: URL | str, data: Any, headers: dict[str, str]) -> tuple[int, str]:
    async with api.http.put(url, data=data, headers=headers) as response:
        return response.status, await response.text()


def with_query(url: str, **changes: str) -> URL:
    parsed = URL(url)
    return parsed.with_query({**parsed.query, **changes})


async def test_tampered_expired_and_mismatched_puts_write_nothing(
    local: Api, sample_bytes: Callable[[str], bytes], tmp_path: Path
) -> None:
    user = await local.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await local.reserve_ok(user["token"], "image/jpeg", len(data))
    other = await local.reserve_ok(user["token"], "image/jpeg", len(data))
    url, headers = upload["upload_url"], upload["headers"]
    key = URL(url).path.removeprefix("/blobs/")
    sig = URL(url).query["sig"]
    past = int(time.time()) - 5
    expired_sig = sign_grant(UploadGrant(key, past, "image/jpeg", len(data)), SIGNING_KEY.encode())

    forbidden = [
        (with_query(url, sig=sig[:-1] + ("A" if sig[-1] != "A" else "B")), data, headers),
        (URL(url).with_query({"expires": URL(url).query["expires"]}), data, headers),
        (with_query(url, expires=str(int(URL(url).query["expires"]) + 60)), data, headers),
        (with_query(url, expires="soon"), data, headers),
        (with_query(url, expires=str(past), sig=expired_sig), data, headers),
        (URL(other["upload_url"]).with_query(URL(url).query), data, headers),
        (url, data, {**headers, "Content-Type": "image/png"}),
        (url, data, {"Content-Length": headers["Content-Length"]}),
    ]
    for target, body, sent in forbidden:
        status, text = await put(local, target, body, sent)
        assert status == 403, (target, status, text)
    status, text = await put(
        local, with_query(url, expires=str(past), sig=expired_sig), data, headers
    )
    assert "expired" in text

    bigger = data + b"x"
    too_big = await put(local, url, bigger, {**headers, "Content-Length": str(len(bigger))})
    assert too_big[0] == 413 and "signed length" in too_big[1]
    short = await put(local, url, data[:-1], {**headers, "Content-Length": str(len(data) - 1)})
    assert short[0] == 400 and "Content-Length" in short[1]

    async def chunks(body: bytes) -> Any:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    chunked = {"Content-Type": "image/jpeg"}
    assert (await put(local, url, chunks(bigger), chunked))[0] == 413
    assert (await put(local, url, chunks(data[:-10]), chunked))[0] == 400
    assert stored_files(tmp_path / "blobs") == []

    # none of the refusals used the URL up: the honest PUT still works, exactly once
    assert await put(local, url, data, headers) == (
        200,
        f'{{"photo_id": "{upload["photo_id"]}", "bytes": {len(data)}}}',
    )
    reused = await put(local, url, data, headers)
    assert reused[0] == 409 and "already used" in reused[1]
    files = stored_files(tmp_path / "blobs")
    assert [f.read_bytes() for f in files] == [data]
    assert files[0].relative_to(tmp_path / "blobs").as_posix() == key


async def test_keys_cannot_escape_the_blob_directory(local: Api, tmp_path: Path) -> None:
    user = await local.create_user()
    upload = await local.reserve_ok(user["token"], "image/jpeg", 10)
    query = URL(upload["upload_url"]).query
    base = local.config.public_url
    for path in ("/blobs/..%2F..%2Fescape", "/blobs/%2e%2e/%2e%2e/escape", "/blobs/x/../../escape"):
        status, _ = await put(
            local,
            URL(base + path, encoded=True).with_query(query),
            b"0123456789",
            upload["headers"],
        )
        assert status in (403, 404)
    assert not (tmp_path / "escape").exists()
    assert stored_files(tmp_path / "blobs") == []


async def test_a_slow_body_is_cut_at_the_deadline_and_writes_nothing(
    local: Api, tmp_path: Path
) -> None:
    user = await local.create_user()
    upload = await local.reserve_ok(user["token"], "image/jpeg", 1000)
    url = URL(upload["upload_url"])
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"PUT {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}\r\n"
        "Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    writer.write(head.encode() + b"\xff\xd8\xff" + b"x" * 97)  # 100 of 1000 bytes, then nothing
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    elapsed = time.monotonic() - started
    writer.close()
    assert b" 408 " in status_line
    assert 0.4 < elapsed < 2.0
    assert stored_files(tmp_path / "blobs") == []
    # the URL was given back: it works for a client that does send its bytes
    data = b"\xff\xd8\xff" + b"y" * 997
    assert (await put(local, url, data, upload["headers"]))[0] == 200


# Registration: the checks that protect the origin whatever the store let through.


async def place(api: Api, s3: Any, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
    """Put bytes at a blob key behind the origin's back (a plain PUT / a file write)."""
    storage = api.config.storage
    if storage.type == "s3":
        await s3.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType=content_type)
    else:
        path = Path(storage.path) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


async def exists(api: Api, s3: Any, key: str) -> bool:
    storage = api.config.storage
    if storage.type == "local":
        return (Path(storage.path) / key).exists()
    listed = await s3.list_objects_v2(Bucket=storage.bucket, Prefix=key)
    return listed.get("KeyCount", 0) > 0


@pytest.mark.parametrize(
    ("make_body", "status", "words"),
    [
        (lambda jpeg: b"hello, this is a text file".ljust(len(jpeg), b"."), 415, "not an image"),
        (
            lambda jpeg: b"<svg xmlns='http://www.w3.org/2000/svg'/>".ljust(len(jpeg)),
            415,
            "not an image",
        ),
        (lambda jpeg: b"\xff\xd8\xff" + b"\x00garbage" * (len(jpeg) // 8), 422, "header"),
    ],
)
async def test_non_images_are_refused_and_deleted(
    store_config: MakeConfig,
    start_origin: StartOrigin,
    s3: Any,
    sample_bytes: Callable[[str], bytes],
    make_body: Callable[[bytes], bytes],
    status: int,
    words: str,
) -> None:
    api = await start_origin(store_config(max_upload_bytes=MAX))
    user = await api.create_user()
    body = make_body(sample_bytes("static10k.jpg"))
    upload = await api.reserve_ok(user["token"], "image/jpeg", len(body))
    assert (await api.send(upload, body)).status == 200  # neither store looks inside
    key = f"{user['id']}/{upload['photo_id']}"
    assert await exists(api, s3, key)
    response = await api.register(user["token"], upload["photo_id"])
    assert response.status == status
    assert words in (await error_of(response))["message"]
    assert not await exists(api, s3, key)
    assert await api.photos(user["token"]) == []


@pytest.mark.parametrize(
    ("size_change", "status", "words"),
    [
        (MAX + 1, 413, "max_upload_bytes"),  # an object past the limit, put around the URL
        (+1, 413, "reserved"),
        (-1, 400, "reserved"),
    ],
)
async def test_objects_of_the_wrong_size_are_refused_and_deleted(
    store_config: MakeConfig,
    start_origin: StartOrigin,
    s3: Any,
    sample_bytes: Callable[[str], bytes],
    size_change: int,
    status: int,
    words: str,
) -> None:
    api = await start_origin(store_config(max_upload_bytes=MAX))
    user = await api.create_user()
    jpeg = sample_bytes("static10k.jpg")
    upload = await api.reserve_ok(user["token"], "image/jpeg", len(jpeg))
    size = size_change if size_change > MAX else len(jpeg) + size_change
    body = (jpeg + b"\x00" * size)[:size]
    key = f"{user['id']}/{upload['photo_id']}"
    await place(api, s3, key, body)
    response = await api.register(user["token"], upload["photo_id"])
    assert response.status == status
    assert words in (await error_of(response))["message"]
    assert not await exists(api, s3, key)
    assert await api.photos(user["token"]) == []


async def test_s3_upload_through_the_presigned_url(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    storage_for: Callable[[str, str], Any],
    bucket: str,
    s3: Any,
    sample_bytes: Callable[[str], bytes],
) -> None:
    storage = dataclasses.replace(storage_for("s3", bucket), prefix="avatars/")
    api = await start_origin(make_config(storage=storage))
    user = await api.create_user()
    data = sample_bytes("coffee.jpg")
    upload = await api.reserve_ok(user["token"], "image/jpeg", len(data))
    url = URL(upload["upload_url"])
    key = f"avatars/{user['id']}/{upload['photo_id']}"
    assert url.path == f"/{bucket}/{key}"
    signed = url.query["X-Amz-SignedHeaders"].split(";")
    assert {"content-length", "content-type", "host"} <= set(signed)
    assert int(url.query["X-Amz-Expires"]) == api.config.upload_url_ttl_s
    assert (await api.send(upload, data)).status == 200
    stored = await s3.get_object(Bucket=bucket, Key=key)
    async with stored["Body"] as stream:
        assert await stream.read() == data
    assert (await api.register(user["token"], upload["photo_id"])).status == 201
    listed = await s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert [o["Key"] for o in listed["Contents"]] == [f"{key}/v1"]  # only the sealed copy...

    # ...so replaying the presigned PUT (S3 allows it until expiry) cannot change the photo
    replay = b"not an image".ljust(len(data), b"!")
    assert (await api.send(upload, replay)).status == 200
    raw = await api.client.get(f"/v1/photos/{upload['photo_id']}/raw")
    assert await raw.read() == data
    # and the janitor removes the replayed object once the reservation is stale
    app = api.client.server.app
    await sweep_uploads(app[DATABASE], app[BLOBS], cutoff=time.time() + 10 * 3600)
    listed = await s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert [o["Key"] for o in listed["Contents"]] == [f"{key}/v1"]
    raw = await api.client.get(f"/v1/photos/{upload['photo_id']}/raw")
    assert await raw.read() == data
