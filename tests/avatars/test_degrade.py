"""The origin stopped or hanging: what was cached keeps being served; the rest fails fast, or
shows the `d` default (as Gravatar degrades)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp.test_utils import unused_port

from edge.app import create_app as create_edge
from tests.avatars.conftest import StartStack
from tests.avatars.images import is_photo, size_of
from tests.avatars.metrics import metric

UNKNOWN = "c0ffee" * 10 + "abcd"  # 64 hex characters, never created


async def test_origin_stopped_cached_avatars_still_200(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    # originals off: a kept original would let a new size be rendered (the hardening tests
    # show that); here the new size must need the origin
    stack = await start_stack(lookup_ttl_s=0.3, originals_bytes=0)
    user = await stack.active_user(astronaut)
    md5 = user["hash_md5"]
    path = f"/avatar/{md5}?s=64"
    _, cached = await stack.get(path)
    _, cached_identicon = await stack.get(f"/avatar/{UNKNOWN}?s=64&d=identicon")
    await stack.stop_origin()
    await asyncio.sleep(0.4)  # the lookup is past lookup_ttl_s: the edge must ask, and fails
    for _ in range(3):
        response, body = await stack.get(path)
        assert response.status == 200 and body == cached
        assert response.headers["X-Cache"] == "STALE"
        assert "fwd-status=502" in response.headers["Cache-Status"]
    assert await metric(stack, "imgcdn_edge_stale_served_total") == 3
    assert await metric(stack, "imgcdn_edge_origin_errors_total") >= 1
    # A new size of a known hash needs the photo's bytes: 502, or the default when d is given.
    response, _ = await stack.get(f"/avatar/{md5}?s=65")
    assert response.status == 502
    response, body = await stack.get(f"/avatar/{md5}?s=65&d=identicon")
    assert response.status == 200 and not is_photo(body, astronaut)
    assert response.headers["Cache-Control"] == "no-store"
    # The unknown hash's negative lookup (negative_ttl_s=10) still holds: its default is served.
    response, body = await stack.get(f"/avatar/{UNKNOWN}?s=64&d=identicon")
    assert response.status == 200 and body == cached_identicon
    ready = await stack.edge.get("/readyz")
    assert ready.status == 503 and "origin" in await ready.text()


async def test_origin_stopped_uncached_hash_is_a_quick_502_or_the_given_default(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(origin_timeout_s=3.0)
    assert (await stack.edge.get("/readyz")).status == 200
    await stack.stop_origin()
    started = time.monotonic()
    response, body = await stack.get(f"/avatar/{UNKNOWN}?s=40")
    assert response.status == 502, body
    assert body.decode().startswith("origin")
    assert response.headers["Cache-Control"] == "no-store"
    assert time.monotonic() - started < 1.0  # refused at once, far inside the timeout
    for query in ("d=identicon", "d=mp", "default=blank", "d=initials&name=Ada"):
        response, body = await stack.get(f"/avatar/{UNKNOWN}?s=40&{query}")
        assert response.status == 200 and size_of(body) == (40, 40), query
        assert response.headers["Cache-Control"] == "no-store", query  # a stand-in, not kept
    response = await stack.edge.get(
        f"/avatar/{UNKNOWN}?d=https://example.com/a.png", allow_redirects=False
    )
    assert response.status == 302 and response.headers["Cache-Control"] == "no-store"
    response, _ = await stack.get(f"/avatar/{UNKNOWN}?s=40&d=404")
    assert response.status == 502  # a 404 would claim "no avatar", which nobody knows now
    assert time.monotonic() - started < 3.0


async def test_the_edge_recovers_when_the_origin_comes_back(
    start_stack: StartStack, sample_bytes
) -> None:
    """A restarted origin: the edge's kept-alive connections are dead, its backoff ends."""
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack(lookup_ttl_s=0.2)
    user = await stack.active_user(astronaut)
    path = f"/avatar/{user['hash_md5']}?s=50"
    assert (await stack.get(path))[0].status == 200
    await stack.stop_origin()
    assert (await stack.get(f"/avatar/{UNKNOWN}?s=50"))[0].status == 502
    await stack.restart_origin()
    await asyncio.sleep(1.1)  # past the edge's 1 s backoff after a failure
    lookups = stack.origin_calls["lookup"]
    response, _ = await stack.get(f"/avatar/{UNKNOWN}?s=50&d=404")
    assert response.status == 404  # the origin answered again
    response, _ = await stack.get(path)
    assert response.status == 200 and response.headers["X-Cache"] == "HIT-MEMORY"
    assert stack.origin_calls["lookup"] == lookups + 2  # both asked the restarted origin
    assert (await stack.edge.get("/readyz")).status == 200


@contextlib.asynccontextmanager
async def silent_origin() -> AsyncIterator[str]:
    """A server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = unused_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_origin_hanging_is_a_504_within_the_timeout(
    start_stack: StartStack, aiohttp_client, avatar_pool
) -> None:
    stack = await start_stack()
    async with silent_origin() as url:
        config = stack.edge_config.__class__(
            **{**stack.edge_config.__dict__, "origin_url": url, "origin_timeout_s": 0.5, "port": 0}
        )
        edge = await aiohttp_client(create_edge(config, pool=avatar_pool))
        started = time.monotonic()
        statuses = await asyncio.gather(*(edge.get(f"/avatar/{UNKNOWN}?s=40") for _ in range(5)))
        assert [r.status for r in statuses] == [504] * 5
        assert time.monotonic() - started < 1.5
        response = await edge.get(f"/avatar/{UNKNOWN}?s=40&d=retro")  # backing off: at once
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert time.monotonic() - started < 1.5
