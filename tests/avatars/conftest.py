"""Avatar tests run the whole story over HTTP: a real origin (SQLite + local blobs) and a real
edge on 127.0.0.1, the origin telling the edge about changes through `POST /_purge`.

The origin app gets one extra outermost middleware here that counts the requests the edge
makes (lookups and photo bytes), so coalescing is proven where it matters: at the origin.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from aiohttp.typedefs import Handler

from edge.app import create_app as create_edge
from imgcdn.config import (
    CacheConfig,
    EdgeConfig,
    OriginConfig,
    SecurityConfig,
    StorageConfig,
    TransformsConfig,
)
from origin.app import create_app as create_origin
from tests.origin.api import Api, auth
from transforms.pool import TransformPool

TOKEN = "avatar-purge-token"


@pytest.fixture(scope="session")
def avatar_pool() -> Iterator[TransformPool]:
    """One started pool for every avatar test (workers take ~1 s to start)."""
    pool = TransformPool(processes=2, max_queue=256, timeout_s=20)
    asyncio.run(pool.start())
    yield pool
    asyncio.run(pool.close())


def count_edge_calls(counts: collections.Counter[str], delays: dict[str, float]) -> Any:
    """Count (and optionally slow down, `delays[kind]` seconds) what the edge asks for."""

    @web.middleware
    async def counter(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = None
        if request.path.startswith("/v1/avatars/"):
            kind = "lookup"
        elif request.path.startswith("/v1/photos/") and request.path.endswith("/raw"):
            kind = "raw"
        if kind is not None:
            counts[kind] += 1
            await asyncio.sleep(delays.get(kind, 0.0))
        return await handler(request)

    return counter


@dataclass
class Stack:
    """A running origin + edge pair and ways to drive both."""

    api: Api
    edge: TestClient
    origin_server: TestServer
    edge_config: EdgeConfig
    origin_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    restart: Callable[[], Awaitable[TestServer]] | None = None  # the origin, same port and data
    origin_delays: dict[str, float] = field(default_factory=dict)  # "lookup"/"raw" -> seconds

    async def user(self, *photos: bytes, ratings: tuple[str, ...] = ()) -> dict[str, Any]:
        """A user with these photos uploaded (none active); adds `token` and `photo_ids`."""
        user = await self.api.create_user()
        ids = []
        for i, data in enumerate(photos):
            upload = await self.api.reserve_ok(user["token"], "image/jpeg", len(data))
            assert (await self.api.send(upload, data)).status == 200
            extra = {"rating": ratings[i]} if i < len(ratings) else {}
            registered = await self.api.register(user["token"], upload["photo_id"], **extra)
            assert registered.status == 201, await registered.text()
            ids.append(upload["photo_id"])
        return {**user, "photo_ids": ids}

    async def active_user(self, *photos: bytes, ratings: tuple[str, ...] = ()) -> dict[str, Any]:
        """A user with these photos uploaded, the first one active."""
        user = await self.user(*photos, ratings=ratings)
        await self.activate(user, 0)
        return user

    async def activate(self, user: dict[str, Any], index: int | None) -> None:
        photo_id = None if index is None else user["photo_ids"][index]
        response = await self.api.set_active(user["token"], photo_id)
        assert response.status == 200, await response.text()

    async def get(self, path: str, **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
        response = await self.edge.get(path, headers=headers)
        return response, await response.read()

    async def status_soon(self, path: str, status: int, within_s: float = 1.0) -> bytes:
        """Poll until `path` answers `status` (purges reach the edge just after the API call)."""
        deadline = time.monotonic() + within_s
        while True:
            response, body = await self.get(path)
            if response.status == status:
                return body
            assert time.monotonic() < deadline, f"{path}: still {response.status}"
            await asyncio.sleep(0.05)

    async def stop_origin(self) -> None:
        await self.origin_server.close()

    async def restart_origin(self) -> None:
        assert self.restart is not None
        self.origin_server = await self.restart()

    async def purge(self, body: Any, token: str = TOKEN) -> aiohttp.ClientResponse:
        return await self.edge.post("/_purge", json=body, headers=auth(token))


StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_stack(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, avatar_pool: TransformPool
) -> AsyncIterator[StartStack]:
    """`stack = await start_stack(purges=True, **cache_changes)`: origin + edge on tmp dirs."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(purges: bool = True, origin_timeout_s: float = 3.0, **cache: Any) -> Stack:
        edge_port, origin_port = unused_port(), unused_port()
        origin_url = f"http://127.0.0.1:{origin_port}"
        origin_config = OriginConfig(
            host="127.0.0.1",
            port=origin_port,
            public_url=origin_url,
            database_url=f"sqlite:///{tmp_path}/origin.db",
            storage=StorageConfig(type="local", path=str(tmp_path / "blobs")),
            upload_signing_key="avatar-tests",
            edges=(f"http://127.0.0.1:{edge_port}",) if purges else (),
            purge_token=TOKEN,
        )
        counts: collections.Counter[str] = collections.Counter()
        delays: dict[str, float] = {}

        async def start_origin() -> TestServer:
            origin_app = create_origin(origin_config)
            origin_app.middlewares.insert(0, count_edge_calls(counts, delays))
            return await aiohttp_server(origin_app, host="127.0.0.1", port=origin_port)

        origin_server = await start_origin()
        edge_config = EdgeConfig(
            host="127.0.0.1",
            port=edge_port,
            origin_url=origin_url,
            origin_timeout_s=origin_timeout_s,
            cache=dataclasses.replace(
                CacheConfig(
                    disk_path=str(tmp_path / "edge-cache"),
                    memory_bytes=64 << 20,
                    disk_bytes=256 << 20,
                ),
                **cache,
            ),
            transforms=TransformsConfig(processes=2, max_queue=256, timeout_s=20),
            security=SecurityConfig(purge_token=TOKEN),
        )
        edge_server = await aiohttp_server(
            create_edge(edge_config, pool=avatar_pool), host="127.0.0.1", port=edge_port
        )
        http = aiohttp.ClientSession()
        sessions.append(http)
        api = Api(await aiohttp_client(origin_server), origin_config, http)
        edge = await aiohttp_client(edge_server)
        return Stack(api, edge, origin_server, edge_config, counts, start_origin, delays)

    yield start
    for http in sessions:
        await http.close()
