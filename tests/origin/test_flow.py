"""The whole story over HTTP, on both stores and both databases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from tests.origin.api import Api, auth
from tests.origin.conftest import MakeConfig, StartOrigin

PHOTO_KEYS = {"id", "content_type", "width", "height", "bytes", "rating", "created_at", "active"}


async def run_flow(api: Api, sample_bytes: Callable[[str], bytes]) -> None:
    """create user -> upload URL -> PUT -> register -> active -> GET /photos/{hash} -> delete."""
    user = await api.create_user("  Jane.Doe@Example.COM ")
    assert user["email"] == "jane.doe@example.com"
    assert user["hash_md5"] == hashlib.md5(b"jane.doe@example.com").hexdigest()
    assert user["hash_sha256"] == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    token = user["token"]

    first = sample_bytes("astronaut.jpg")
    upload = await api.reserve_ok(token, "image/jpeg", len(first))
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "image/jpeg", "Content-Length": str(len(first))}
    assert (await api.send(upload, first)).status == 200
    registered = await api.register(token, upload["photo_id"], rating="pg")
    assert registered.status == 201, await registered.text()
    photo = await registered.json()
    assert set(photo) == PHOTO_KEYS
    assert photo["id"] == upload["photo_id"]
    assert (photo["content_type"], photo["width"], photo["height"]) == ("image/jpeg", 1024, 1024)
    assert (photo["bytes"], photo["rating"], photo["active"]) == (len(first), "pg", False)

    # a PNG claimed as JPEG: the detected type is recorded
    second = await api.add_photo(token, sample_bytes("alpha.png"), "image/jpeg")
    assert second["content_type"] == "image/png"

    assert (await api.client.get(f"/v1/avatars/{user['hash_md5']}")).status == 404
    active = await api.set_active(token, photo["id"])
    assert active.status == 200
    assert await active.json() == {"active_photo_id": photo["id"]}

    listed = await api.photos(token)
    assert [p["id"] for p in listed] == [second["id"], photo["id"]]  # newest first
    assert [p["active"] for p in listed] == [False, True]

    for key in (user["hash_md5"], user["hash_sha256"].upper()):
        lookup = await api.client.get(f"/v1/avatars/{key}")
        assert lookup.status == 200
        found = await lookup.json()
        assert set(found) == {"photo_id", "version", "rating", "content_type", "etag"}
        assert (found["photo_id"], found["rating"]) == (photo["id"], "pg")
        by_hash = await api.client.get(f"/photos/{key}")
        assert by_hash.status == 200
        assert await by_hash.read() == first
        assert by_hash.headers["ETag"] == found["etag"]
        assert by_hash.headers["Content-Type"] == "image/jpeg"
        assert "max-age" in by_hash.headers["Cache-Control"]

    raw = await api.client.get(f"/v1/photos/{photo['id']}/raw")
    assert raw.status == 200 and await raw.read() == first
    assert "immutable" in raw.headers["Cache-Control"]
    again = await api.client.get(
        f"/v1/photos/{photo['id']}/raw", headers={"If-None-Match": raw.headers["ETag"]}
    )
    assert again.status == 304 and again.headers["ETag"] == raw.headers["ETag"]

    # deleting the active photo clears it; its bytes are gone
    deleted = await api.client.delete(f"/v1/photos/{photo['id']}", headers=auth(token))
    assert deleted.status == 204
    assert (await api.client.get(f"/v1/avatars/{user['hash_md5']}")).status == 404
    assert (await api.client.get(f"/photos/{user['hash_md5']}")).status == 404
    assert (await api.client.get(f"/v1/photos/{photo['id']}/raw")).status == 404
    assert [p["id"] for p in await api.photos(token)] == [second["id"]]
    me = await (await api.client.get("/v1/me", headers=auth(token))).json()
    assert me["active_photo_id"] is None
    health = await api.client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok", "database": "ok", "storage": "ok"}


async def test_flow_sqlite(
    store_config: MakeConfig, start_origin: StartOrigin, sample_bytes: Callable[[str], bytes]
) -> None:
    await run_flow(await start_origin(store_config()), sample_bytes)


@pytest.mark.postgres
async def test_flow_postgres(
    store_config: MakeConfig,
    start_origin: StartOrigin,
    sample_bytes: Callable[[str], bytes],
    pg_url: str,
) -> None:
    await run_flow(await start_origin(store_config(database_url=pg_url)), sample_bytes)


async def test_state_survives_restart(
    make_config: MakeConfig, start_origin: StartOrigin, sample_bytes: Callable[[str], bytes]
) -> None:
    config = make_config()
    api = await start_origin(config)
    user = await api.create_user()
    photo = await api.add_photo(user["token"], sample_bytes("static10k.jpg"))
    assert (await api.set_active(user["token"], photo["id"])).status == 200
    await api.client.close()

    again = await start_origin(
        make_config(database_url=config.database_url, storage=config.storage)
    )
    response = await again.client.get(f"/photos/{user['hash_md5']}")
    assert response.status == 200
    assert await response.read() == sample_bytes("static10k.jpg")
