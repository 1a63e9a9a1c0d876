"""`POST /_purge {"hashes": [...]}`: drops lookups (here and in every process on the host)."""

from __future__ import annotations

import asyncio

import pytest

from edge.app import create_app as create_edge
from tests.avatars.conftest import TOKEN, StartStack
from tests.avatars.images import is_photo
from tests.origin.api import auth


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"hashes": ["a" * 32]}, 401),
        ({"Authorization": "Bearer wrong"}, {"hashes": ["a" * 32]}, 403),
        (auth(TOKEN), {"hashes": ["not-a-hash"]}, 400),
        (auth(TOKEN), {"hashes": ["a" * 32, "b" * 31]}, 400),
        (auth(TOKEN), {"hashes": "a" * 32}, 400),
        (auth(TOKEN), {"hashes": [32]}, 400),
        (auth(TOKEN), {"hashes": ["a" * 32]}, 200),
        (auth(TOKEN), {"hashes": ["A" * 64]}, 200),
        (auth(TOKEN), {"hashes": []}, 200),
    ],
)
async def test_purge_hashes_refusals(start_stack: StartStack, headers, body, status) -> None:
    stack = await start_stack()
    response = await stack.edge.post("/_purge", json=body, headers=headers)
    assert response.status == status, await response.text()


async def test_purge_drops_the_lookup_and_counts_it(start_stack: StartStack, sample_bytes) -> None:
    astronaut, coffee = sample_bytes("astronaut.jpg"), sample_bytes("coffee.jpg")
    stack = await start_stack(purges=False)  # the origin stays silent: we purge by hand
    user = await stack.active_user(astronaut, coffee)
    md5, sha = user["hash_md5"], user["hash_sha256"]
    await stack.get(f"/avatar/{md5}?s=30")
    await stack.activate(user, 1)
    _, body = await stack.get(f"/avatar/{md5}?s=30")
    assert is_photo(body, astronaut)  # the lookup is cached for lookup_ttl_s
    response = await stack.purge({"hashes": [md5.upper(), sha]})
    assert response.status == 200
    assert await response.json() == {"purged": 1}  # only the MD5 had been looked up
    response, body = await stack.get(f"/avatar/{md5}?s=30")
    assert is_photo(body, coffee)
    assert response.headers["X-Cache"] == "MISS"  # a new photo id: a new variant
    assert stack.origin_calls["lookup"] == 2


async def test_a_purge_reaches_another_edge_process_sharing_the_disk(
    start_stack: StartStack, sample_bytes, aiohttp_client, avatar_pool
) -> None:
    """Two edges on one cache directory, as `edge.workers` processes are: the origin tells
    only one of them; the other drops its lookup through the purge log on the shared disk."""
    astronaut, coffee = sample_bytes("astronaut.jpg"), sample_bytes("coffee.jpg")
    stack = await start_stack()
    other = await aiohttp_client(
        create_edge(
            stack.edge_config.__class__(**{**stack.edge_config.__dict__, "port": 0}),
            pool=avatar_pool,
        )
    )
    user = await stack.active_user(astronaut, coffee)
    path = f"/avatar/{user['hash_md5']}?s=30"
    response = await other.get(path)
    assert is_photo(await response.read(), astronaut)
    await stack.activate(user, 1)  # purge sent to `stack.edge` only
    for _ in range(40):
        await asyncio.sleep(0.05)
        if is_photo(await (await other.get(path)).read(), coffee):
            break
    else:
        raise AssertionError("the other process kept its lookup")
