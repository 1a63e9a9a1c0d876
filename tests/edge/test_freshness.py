"""Sources, coalescing and freshness over real HTTP: a counting source server, a real edge."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyvips
from prometheus_client.parser import text_string_to_metric_families

from imgcdn.config import SourceConfig
from tests.edge.conftest import EdgeFactory, edge_config, with_cache
from tests.edge.sourceserver import FakeSource


def http_config(tmp_path, server, **cache: Any):
    config = edge_config(
        tmp_path,
        source=SourceConfig(type="http", url=str(server.make_url("/img/")), timeout_s=2.0),
    )
    return with_cache(config, **cache) if cache else config


async def metric(client, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def wait_for(predicate, within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_fifty_concurrent_misses_make_one_fetch_and_one_transform(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("astronaut.jpg")
    source.delay_s = 0.3  # every request arrives while the first fetch is still running
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server))
    responses = await asyncio.gather(*(client.get("/img/a.jpg?w=77") for _ in range(50)))
    bodies = {await r.read() for r in responses}
    assert [r.status for r in responses] == [200] * 50
    assert len(bodies) == 1
    kinds = sorted(r.headers["X-Cache"] for r in responses)
    assert kinds == ["COALESCED"] * 49 + ["MISS"]
    coalesced = [r for r in responses if r.headers["X-Cache"] == "COALESCED"]
    assert coalesced[0].headers["Cache-Status"] == "imgcdn; fwd=miss; collapsed"
    assert source.hits["a.jpg"] == 1
    assert await metric(client, "imgcdn_edge_transform_seconds_count") == 1
    assert await metric(client, "imgcdn_edge_coalesced_total") == 49


async def test_changed_file_gives_new_bytes_after_max_age_and_one_revalidation(
    make_edge: EdgeFactory, tmp_path, images, sample_bytes
):
    client = await make_edge(with_cache(edge_config(tmp_path, images), max_age_s=1))
    first = await client.get("/img/astronaut.jpg?w=60&fm=png")
    old = await first.read()
    assert first.headers["Cache-Control"].startswith("public, max-age=1,")
    (images / "astronaut.jpg").write_bytes(sample_bytes("rocket.jpg"))
    assert (await client.get("/img/astronaut.jpg?w=60&fm=png")).headers["X-Cache"] == "HIT-MEMORY"
    await asyncio.sleep(1.1)
    stale = await client.get("/img/astronaut.jpg?w=60&fm=png")
    assert stale.headers["X-Cache"] == "STALE"
    assert "detail=stale-while-revalidate" in stale.headers["Cache-Status"]
    assert await stale.read() == old and int(stale.headers["Age"]) >= 1
    await asyncio.sleep(0.2)  # the background revalidation (a stat) lands
    fresh = await client.get("/img/astronaut.jpg?w=60&fm=png")
    assert fresh.headers["X-Cache"] == "MISS"
    new = await fresh.read()
    assert new != old
    assert (
        pyvips.Image.new_from_buffer(new, "").height != pyvips.Image.new_from_buffer(old, "").height
    )
    assert fresh.headers["ETag"] != first.headers["ETag"]


async def test_source_max_age_and_conditional_revalidation(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("coffee.jpg")
    source.cache_control = "public, max-age=1"  # shorter than edge.cache.max_age_s
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server, max_age_s=3600))
    first = await client.get("/img/a.jpg?w=30")
    assert first.headers["Cache-Control"].startswith("public, max-age=1,")
    await asyncio.sleep(1.1)
    assert (await client.get("/img/a.jpg?w=30")).headers["X-Cache"] == "STALE"
    await wait_for(lambda: source.conditional["a.jpg"] == 1)
    await asyncio.sleep(0.1)
    again = await client.get("/img/a.jpg?w=30")
    assert again.headers["X-Cache"] == "HIT-MEMORY"  # the 304 refreshed it
    assert source.hits["a.jpg"] == 2


async def test_source_down_serves_stale_then_fails_past_stale_if_error(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("coffee.jpg")
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server, max_age_s=1, stale_if_error_s=2))
    body = await (await client.get("/img/a.jpg?w=30")).read()
    await server.close()  # the source is down from here on
    await asyncio.sleep(1.1)
    swr = await client.get("/img/a.jpg?w=30")  # within one max-age past expiry: stale at once
    assert swr.headers["X-Cache"] == "STALE" and await swr.read() == body
    await asyncio.sleep(1.0)
    sie = await client.get("/img/a.jpg?w=30")  # past that: revalidation fails -> stale-if-error
    assert sie.status == 200 and sie.headers["X-Cache"] == "STALE"
    assert "fwd-status=502" in sie.headers["Cache-Status"]
    assert "detail=stale-if-error" in sie.headers["Cache-Status"]
    assert await sie.read() == body
    await asyncio.sleep(1.0)
    dead = await client.get("/img/a.jpg?w=30")  # past stale_if_error_s: the error shows
    assert dead.status == 502
    assert await metric(client, "imgcdn_edge_stale_served_total") == 2
    assert await metric(client, "imgcdn_edge_origin_errors_total") >= 2


async def test_nothing_cached_and_source_down_is_a_quick_502(
    make_edge: EdgeFactory, aiohttp_server, tmp_path
):
    server = await aiohttp_server(FakeSource().app())
    client = await make_edge(http_config(tmp_path, server))
    await server.close()
    started = time.monotonic()
    r = await client.get("/img/a.jpg?w=30")
    assert r.status == 502
    assert "unreachable" in await r.text()
    assert time.monotonic() - started < 2.0  # within the source timeout, no hang


async def test_hanging_source_is_a_504_within_its_timeout(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("coffee.jpg")
    source.delay_s = 30
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server))  # timeout_s=2
    started = time.monotonic()
    r = await client.get("/img/a.jpg?w=30")
    assert r.status == 504
    assert 1.9 < time.monotonic() - started < 4.0


async def test_http_source_statuses_and_size_limit(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["big.jpg"] = sample_bytes("large.jpg")
    server = await aiohttp_server(source.app())
    config = http_config(tmp_path, server)
    config = config.__class__(
        **{
            **config.__dict__,
            "transforms": config.transforms.__class__(processes=2, max_src_bytes=50_000),
        }
    )
    client = await make_edge(config)
    assert (await client.get("/img/missing.jpg")).status == 404
    assert (await client.get("/img/big.jpg?w=10")).status == 413  # refused on Content-Length
    source.chunked = True
    assert (await client.get("/img/big.jpg?w=11")).status == 413  # refused while streaming
    source.status = 500
    assert (await client.get("/img/other.jpg")).status == 502
