"""Avatar hits answered in front of aiohttp's router (edge/front.py): only a fresh lookup of
a photo whose variant is in memory; everything else is the route's, and nothing a client or
an operator sees differs."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from edge.appkeys import AVATAR_ROUTES
from tests.avatars.conftest import Stack, StartStack
from tests.avatars.images import is_photo
from tests.avatars.metrics import metric
from tests.gc_walk import tracked_held

IGNORED = ("Date", "Server")


def routed_requests(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The avatar paths the edge's router resolves from now on (the origin's purges and the
    test's /metrics reads are routed too, at times of their own)."""
    router = stack.edge.app.router
    resolve = router.resolve
    seen: list[str] = []

    async def counting(request: web.Request) -> Any:
        if request.path not in ("/_purge", "/metrics"):
            seen.append(request.path)
        return await resolve(request)

    monkeypatch.setattr(router, "resolve", counting)
    return seen


def kept(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in IGNORED}


async def test_avatar_memory_hits_are_answered_before_routing(
    start_stack: StartStack, sample_bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack(lookup_ttl_s=60)
    user = await stack.active_user(astronaut)
    path = f"/avatar/{user['hash_md5']}?s=64"
    routed = routed_requests(stack, monkeypatch)
    miss, body = await stack.get(path)
    assert miss.headers["X-Cache"] == "MISS" and routed == [path.split("?")[0]]
    hits = [await stack.get(path) for _ in range(3)]
    assert len(routed) == 1  # the front answered them
    assert [b for _, b in hits] == [body] * 3
    assert {r.headers["X-Cache"] for r, _ in hits} == {"HIT-MEMORY"}
    not_modified, _ = await stack.get(path, **{"If-None-Match": miss.headers["ETag"]})
    assert not_modified.status == 304 and len(routed) == 1
    head = await stack.edge.head(path)  # HEAD is routed, and says the same
    assert len(routed) == 2 and kept(head.headers) == kept(hits[-1][0].headers)
    assert await metric(stack, "imgcdn_edge_requests_total", route="avatar", status="200") == 5
    assert await metric(stack, "imgcdn_edge_requests_total", route="avatar", status="304") == 1
    assert await metric(stack, "imgcdn_edge_cache_hits_total", tier="memory") == 5
    assert stack.origin_calls["lookup"] == 1


async def test_defaults_ratings_and_forced_defaults_never_show_the_photo(
    start_stack: StartStack, sample_bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo rated above what the page asks for, `f=y` and hashes without a photo are never
    answered with the photo from memory, however often they are asked. Their default, once
    drawn, is answered from memory before routing like a photo; `d=404` always routes."""
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack(lookup_ttl_s=60)
    user = await stack.active_user(astronaut, ratings=("r",))
    md5 = user["hash_md5"]
    await stack.get(f"/avatar/{md5}?s=50&r=r")  # the photo's variant is in memory now
    routed = routed_requests(stack, monkeypatch)
    for query, shows_photo in [("r=g", False), ("f=y&r=x", False), ("r=r", True)]:
        for _ in range(3):
            response, body = await stack.get(f"/avatar/{md5}?s=50&{query}")
            assert response.status == 200, query
            assert is_photo(body, astronaut) is shows_photo, query
    assert len(routed) == 2  # r=g and f=y once each, to draw their default; r=r never
    nobody = "0" * 32
    for _ in range(2):
        response, _ = await stack.get(f"/avatar/{nobody}?s=50&d=404")
        assert response.status == 404
    assert len(routed) == 2 + 2
    # a 404 keeps no route in the memo (edge/avatars.py `handle_avatar`)
    memoized = {route.hash for route in stack.edge.app[AVATAR_ROUTES]._items.values()}
    assert memoized == {md5}


async def test_a_default_from_memory_is_what_the_route_answers(
    start_stack: StartStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most hashes a page asks for have no photo (`d=identicon`): after the first, their
    default is answered before routing, with the route's very headers and counts."""
    stack = await start_stack(lookup_ttl_s=60)
    path = f"/avatar/{'ab' * 16}?s=40&d=identicon"
    routed = routed_requests(stack, monkeypatch)
    miss, body = await stack.get(path)
    assert miss.status == 200 and miss.headers["X-Cache"] == "MISS"
    hits = [await stack.get(path) for _ in range(3)]
    assert len(routed) == 1  # the front answered the rest
    assert [b for _, b in hits] == [body] * 3
    assert {r.headers["X-Cache"] for r, _ in hits} == {"HIT-MEMORY"}
    head = await stack.edge.head(path)  # HEAD is routed, and says the same
    assert len(routed) == 2 and kept(head.headers) == kept(hits[-1][0].headers)
    assert await metric(stack, "imgcdn_edge_requests_total", route="avatar", status="200") == 5
    assert await metric(stack, "imgcdn_edge_cache_hits_total", tier="memory") == 4
    assert stack.origin_calls["lookup"] == 1


async def test_memoized_avatar_routes_share_their_query_and_spec(start_stack: StartStack) -> None:
    """Every hash asking `?s=48&d=mp` resolves to the same query and spec: the memo holds one
    of each between them, and per route only the route (its own header slot) and its headers,
    which is what a full collection of the cyclic GC then walks (see tests/edge/test_gc.py)."""
    stack = await start_stack(lookup_ttl_s=60)
    hashes = [f"{i:032x}" for i in range(1, 13)]
    for avatar_hash in hashes:
        for _ in range(2):
            response, _ = await stack.get(f"/avatar/{avatar_hash}?s=48&d=mp")
            assert response.status == 200
    routes = list(stack.edge.app[AVATAR_ROUTES]._items.values())
    assert sorted(route.hash for route in routes) == hashes
    assert len({id(route.spec) for route in routes}) == 1
    assert len({id(route.query) for route in routes}) == 1
    assert tracked_held(routes) <= 2 * len(routes) + 3
