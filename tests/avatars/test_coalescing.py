"""Many requests for one cold avatar: one lookup, one photo fetch at the origin, one transform."""

from __future__ import annotations

import asyncio
import collections

import pytest

from tests.avatars.conftest import StartStack
from tests.avatars.images import is_photo, size_of
from tests.avatars.metrics import metric


async def test_100_concurrent_requests_for_a_cold_hash(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack()
    user = await stack.active_user(astronaut)
    path = f"/avatar/{user['hash_md5']}?s=96"
    stack.origin_delays["lookup"] = 0.2  # a slow origin: all 100 surely arrive while it thinks
    transforms_before = await metric(stack, "imgcdn_edge_transform_seconds_count")

    async def one() -> tuple[int, str, bytes]:
        response, body = await stack.get(path)
        return response.status, response.headers["X-Cache"], body

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert {status for status, _, _ in results} == {200}
    assert len({body for _, _, body in results}) == 1
    assert is_photo(results[0][2], astronaut) and size_of(results[0][2]) == (96, 96)
    assert stack.origin_calls == collections.Counter({"lookup": 1, "raw": 1})
    assert await metric(stack, "imgcdn_edge_transform_seconds_count") == transforms_before + 1
    outcomes = collections.Counter(x_cache for _, x_cache, _ in results)
    assert outcomes["MISS"] == 1 and outcomes["COALESCED"] >= 1
    assert await metric(stack, "imgcdn_edge_requests_total", route="avatar", status="200") == 100
    assert await metric(stack, "imgcdn_edge_origin_seconds_count") == 2  # the lookup + the bytes


async def test_sizes_requested_together_share_one_photo_fetch(
    start_stack: StartStack, sample_bytes
) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("coffee.jpg"))
    stack.origin_delays["raw"] = 0.3  # so every size's miss surely overlaps the first fetch
    sizes = (16, 32, 64, 128, 256)
    results = await asyncio.gather(*(stack.get(f"/avatar/{user['hash_md5']}?s={s}") for s in sizes))
    assert [size_of(body) for _, body in results] == [(s, s) for s in sizes]
    assert stack.origin_calls == collections.Counter({"lookup": 1, "raw": 1})


async def test_100_concurrent_requests_for_an_unknown_hash_with_a_default(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    transforms_before = await metric(stack, "imgcdn_edge_transform_seconds_count")
    path = "/avatar/" + "5" * 64 + "?s=200&d=retro"
    results = await asyncio.gather(*(stack.get(path) for _ in range(100)))
    assert {response.status for response, _ in results} == {200}
    assert stack.origin_calls == collections.Counter({"lookup": 1})
    assert await metric(stack, "imgcdn_edge_transform_seconds_count") == transforms_before + 1


@pytest.mark.parametrize(("originals_bytes", "fetches"), [(64 << 20, 1), (0, 3)])
async def test_more_sizes_of_one_photo_fetch_it_once(
    start_stack: StartStack, sample_bytes, originals_bytes: int, fetches: int
) -> None:
    """Growing sizes above a master's (nothing larger to render from): the photo's original
    is kept in memory (`edge.cache.originals_bytes`) and fetched once; with it off, once per
    size. (Smaller sizes come from the photo's master: tests/avatars/test_masters.py.)"""
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack(originals_bytes=originals_bytes)
    user = await stack.active_user(astronaut)
    for size in (260, 300, 400):
        response, body = await stack.get(f"/avatar/{user['hash_md5']}?s={size}")
        assert response.status == 200 and is_photo(body, astronaut)
        assert size_of(body) == (size, size)
    assert stack.origin_calls["raw"] == fetches
