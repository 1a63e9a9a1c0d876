"""An overloaded edge refuses new misses at once (503 + Retry-After), before reading sources."""

from __future__ import annotations

import asyncio
import time

from edge.app import create_app
from edge.appkeys import IMG_ROUTES
from imgcdn.config import SourceConfig
from tests.edge.conftest import edge_config
from tests.edge.sourceserver import FakeSource
from transforms.pool import TransformPool


async def test_a_full_pool_refuses_before_fetching(
    aiohttp_client, aiohttp_server, tmp_path, samples
):
    source = FakeSource()
    photo = (samples / "astronaut.jpg").read_bytes()
    for i in range(6):
        source.files[f"p{i}.jpg"] = photo
    source.delay_s = 0.5  # a slow source: a refusal after the fetch would take longer than this
    server = await aiohttp_server(source.app())
    config = edge_config(
        tmp_path,
        source=SourceConfig(type="http", url=str(server.make_url("/img/")), timeout_s=5.0),
    )
    pool = TransformPool(processes=1, max_queue=1, timeout_s=30)  # room for 2 transforms
    await pool.start()
    try:
        client = await aiohttp_client(create_app(config, pool=pool))
        started = time.monotonic()

        async def get(i: int) -> tuple[int, float, str | None]:
            response = await client.get(f"/img/p{i}.jpg?w=64")
            await response.read()
            return response.status, time.monotonic() - started, response.headers.get("Retry-After")

        results = await asyncio.gather(*(get(i) for i in range(6)))
        memoized = len(client.app[IMG_ROUTES])
    finally:
        await pool.close()
    refused = [r for r in results if r[0] == 503]
    assert sorted(r[0] for r in results) == [200, 200, 503, 503, 503, 503]
    assert all(seconds < 0.25 and retry == "1" for _, seconds, retry in refused), results
    assert sum(source.hits.values()) == 2  # the refused requests never reached the source
    assert memoized == 2  # a refused URL keeps no route that would push out the hits' routes
