"""Concurrent uploads lose nothing; concurrent set-active leaves one consistent answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.origin.api import Api, auth
from tests.origin.conftest import MakeConfig, StartOrigin


@pytest.fixture
async def api(database_url: str, make_config: MakeConfig, start_origin: StartOrigin) -> Api:
    return await start_origin(make_config(database_url=database_url))


async def test_fifty_concurrent_uploads_lose_nothing(
    api: Api, sample_bytes: Callable[[str], bytes]
) -> None:
    token = (await api.create_user())["token"]
    base = sample_bytes("static10k.jpg")
    # 50 distinct files (a trailing comment after the JPEG's end marker keeps them valid)
    bodies = [base + f"#{i}".encode() for i in range(50)]
    photos = await asyncio.gather(*(api.add_photo(token, body) for body in bodies))
    ids = {photo["id"] for photo in photos}
    assert len(ids) == 50
    listed = await api.photos(token)
    assert {photo["id"] for photo in listed} == ids
    sizes = sorted(photo["bytes"] for photo in listed)
    assert sizes == sorted(len(body) for body in bodies)
    served = await asyncio.gather(*(raw(api, photo["id"]) for photo in photos))
    assert sorted(served) == sorted(bodies)


async def raw(api: Api, photo_id: str) -> bytes:
    response = await api.client.get(f"/v1/photos/{photo_id}/raw")
    assert response.status == 200
    return await response.read()


async def test_twenty_concurrent_set_active_leave_one_value(
    api: Api, sample_bytes: Callable[[str], bytes]
) -> None:
    user = await api.create_user()
    token = user["token"]
    data = sample_bytes("static10k.jpg")
    photos = [await api.add_photo(token, data + bytes([i])) for i in range(20)]
    responses = await asyncio.gather(*(api.set_active(token, p["id"]) for p in photos))
    assert [r.status for r in responses] == [200] * 20
    await assert_consistent(api, user, {p["id"] for p in photos})


async def test_set_active_racing_deletes_never_dangles(
    api: Api, sample_bytes: Callable[[str], bytes]
) -> None:
    user = await api.create_user()
    token = user["token"]
    data = sample_bytes("static10k.jpg")
    photos = [await api.add_photo(token, data + bytes([i])) for i in range(12)]
    doomed = {p["id"] for p in photos[::2]}
    calls: list[Any] = [api.set_active(token, p["id"]) for p in photos]
    calls += [api.client.delete(f"/v1/photos/{pid}", headers=auth(token)) for pid in doomed]
    random.Random(4).shuffle(calls)
    responses = await asyncio.gather(*calls)
    assert {r.status for r in responses} <= {200, 204, 404}
    await assert_consistent(api, user, {p["id"] for p in photos} - doomed, allow_none=True)


async def assert_consistent(
    api: Api, user: dict[str, Any], allowed: set[str], allow_none: bool = False
) -> None:
    """The user row, the photo list and the edge lookup all name the same active photo."""
    me = await (await api.client.get("/v1/me", headers=auth(user["token"]))).json()
    active = me["active_photo_id"]
    listed = [p["id"] for p in await api.photos(user["token"]) if p["active"]]
    lookup = await api.client.get(f"/v1/avatars/{user['hash_md5']}")
    if active is None:
        assert allow_none and listed == [] and lookup.status == 404
        return
    assert active in allowed
    assert listed == [active]
    assert (await lookup.json())["photo_id"] == active
