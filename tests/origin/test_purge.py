"""Purge notifications reach the edges in the background; dead edges cost the API nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from tests.origin.api import Api, auth
from tests.origin.conftest import MakeConfig, StartOrigin


class RecordingEdge:
    """A stand-in edge: records every purge; can fail the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.failures = failures
        self.arrived = asyncio.Event()

    async def purge(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.get("Authorization", ""), await request.json()))
        if self.failures:
            self.failures -= 1
            return web.json_response({"error": "busy"}, status=503)
        self.arrived.set()
        return web.json_response({"purged": 1})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_purge", self.purge)
        return app


@pytest.fixture
async def hanging_edge() -> AsyncIterator[str]:
    """Accepts connections and never answers (an edge stuck in GC, a black-holed route)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


async def photo_owner(
    api: Api, sample_bytes: Callable[[str], bytes], n: int = 1
) -> tuple[dict, list]:
    user = await api.create_user()
    photos = [
        await api.add_photo(user["token"], sample_bytes("static10k.jpg") + bytes([i]))
        for i in range(n)
    ]
    return user, photos


async def test_changes_of_the_active_photo_are_purged_at_every_edge(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    aiohttp_server: Any,
    sample_bytes: Callable[[str], bytes],
) -> None:
    edges = [RecordingEdge(), RecordingEdge()]
    servers = [await aiohttp_server(edge.app()) for edge in edges]
    api = await start_origin(
        make_config(edges=tuple(str(s.make_url("/")) for s in servers), purge_token="s3cret")
    )
    user, (first, second) = await photo_owner(api, sample_bytes, 2)
    expected = ("Bearer s3cret", {"hashes": [user["hash_md5"], user["hash_sha256"]]})

    assert (await api.set_active(user["token"], first["id"])).status == 200
    for edge in edges:
        await asyncio.wait_for(edge.arrived.wait(), timeout=2.0)
        assert edge.requests == [expected]
        edge.arrived.clear()

    # deleting a photo that is not active changes nothing at the edge
    assert (
        await api.client.delete(f"/v1/photos/{second['id']}", headers=auth(user["token"]))
    ).status == 204
    await asyncio.sleep(0.2)
    assert all(len(edge.requests) == 1 for edge in edges)

    # deleting the active one does
    assert (
        await api.client.delete(f"/v1/photos/{first['id']}", headers=auth(user["token"]))
    ).status == 204
    for edge in edges:
        await asyncio.wait_for(edge.arrived.wait(), timeout=2.0)
        assert edge.requests == [expected, expected]


async def test_a_failing_edge_is_retried(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    aiohttp_server: Any,
    sample_bytes: Callable[[str], bytes],
) -> None:
    edge = RecordingEdge(failures=2)
    server = await aiohttp_server(edge.app())
    api = await start_origin(make_config(edges=(str(server.make_url("/")),)))
    user, (photo,) = await photo_owner(api, sample_bytes)
    assert (await api.set_active(user["token"], photo["id"])).status == 200
    await asyncio.wait_for(edge.arrived.wait(), timeout=3.0)
    assert len(edge.requests) == 3
    metrics = await (await api.client.get("/metrics")).text()
    assert 'imgcdn_origin_purges_total{result="ok"} 1.0' in metrics


async def test_dead_edges_do_not_slow_the_api(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    aiohttp_server: Any,
    hanging_edge: str,
    sample_bytes: Callable[[str], bytes],
) -> None:
    live = RecordingEdge()
    server = await aiohttp_server(live.app())
    closed_port = f"http://127.0.0.1:{unused_port()}"
    edges = (closed_port, hanging_edge, str(server.make_url("/")))
    api = await start_origin(make_config(edges=edges))
    user, photos = await photo_owner(api, sample_bytes, 5)

    for photo in photos:
        started = time.monotonic()
        response = await api.set_active(user["token"], photo["id"])
        assert response.status == 200
        assert time.monotonic() - started < 1.0  # a purge attempt alone may take 2 s
    # the live edge still hears about it, and last about the final change
    await asyncio.wait_for(live.arrived.wait(), timeout=2.0)
    me = await (await api.client.get("/v1/me", headers=auth(user["token"]))).json()
    assert me["active_photo_id"] == photos[-1]["id"]
    lookup = await api.client.get(f"/v1/avatars/{user['hash_sha256']}")
    assert (await lookup.json())["photo_id"] == photos[-1]["id"]
