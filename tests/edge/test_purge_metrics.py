"""POST /_purge and /metrics against a real edge."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from edge.diskkeys import SYNC_S
from imgcdn.config import SecurityConfig
from tests.edge.conftest import EdgeFactory, edge_config

TOKEN = "purge-me"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def test_purge_drops_a_paths_variants_in_both_tiers(make_edge: EdgeFactory, tmp_path, images):
    config = edge_config(tmp_path, images, security=SecurityConfig(purge_token=TOKEN))
    client = await make_edge(config)
    for query in ("w=20", "w=30&fm=webp"):
        await client.get(f"/img/astronaut.jpg?{query}")
    await client.get("/img/photos/coffee.jpg?w=20")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await client.post("/_purge", json={"paths": ["astronaut.jpg"]}, headers=auth)
    assert r.status == 200
    assert await r.json() == {"purged": 2}
    for query in ("w=20", "w=30&fm=webp"):  # not from memory, and not from disk either
        assert (await client.get(f"/img/astronaut.jpg?{query}")).headers["X-Cache"] == "MISS"
    assert (await client.get("/img/photos/coffee.jpg?w=20")).headers["X-Cache"] == "HIT-MEMORY"
    # A restarted edge on the same disk does not find the purged variants either.
    r = await client.post(
        "/_purge", json={"paths": ["/astronaut.jpg"], "hashes": ["ab" * 16]}, headers=auth
    )
    assert await r.json() == {"purged": 2}
    await client.close()
    second = await make_edge(config)
    assert (await second.get("/img/astronaut.jpg?w=20")).headers["X-Cache"] == "MISS"
    assert (await second.get("/img/photos/coffee.jpg?w=20")).headers["X-Cache"] == "HIT-DISK"


@pytest.mark.parametrize(
    ("token", "headers", "body", "status"),
    [
        (TOKEN, {}, {"paths": ["a.jpg"]}, 401),
        (TOKEN, {"Authorization": "Basic abc"}, {"paths": ["a.jpg"]}, 401),
        (TOKEN, {"Authorization": "Bearer wrong"}, {"paths": ["a.jpg"]}, 403),
        (None, {"Authorization": f"Bearer {TOKEN}"}, {"paths": ["a.jpg"]}, 403),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, {"paths": "a.jpg"}, 400),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, {"urls": ["a.jpg"]}, 400),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, ["a.jpg"], 400),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, {"paths": ["../x"]}, 400),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, {"paths": []}, 200),
    ],
)
async def test_purge_refusals(
    make_edge: EdgeFactory, tmp_path, images, token, headers, body, status
):
    config = edge_config(tmp_path, images, security=SecurityConfig(purge_token=token))
    client = await make_edge(config)
    r = await client.post("/_purge", json=body, headers=headers)
    assert r.status == status
    if status == 401:
        assert r.headers["WWW-Authenticate"] == "Bearer"
    bad_json = await client.post(
        "/_purge", data=b"{nope", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bad_json.status == (400 if token else 403)


async def test_metrics_parse_and_count_what_was_sent(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    for _ in range(3):
        await client.get("/img/astronaut.jpg?w=40")  # 1 miss, 2 memory hits
    await client.get("/img/photos/coffee.jpg?w=40")  # 1 miss
    await client.get("/img/astronaut.jpg?w=0")  # 400
    await client.get("/img/none.jpg")  # 404
    await client.get("/raw/alpha.png")  # raw miss
    await client.get("/healthz")
    found = samples(await (await client.get("/metrics")).text())

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("imgcdn_edge_requests_total", route="img", status="200") == 4
    assert value("imgcdn_edge_requests_total", route="img", status="400") == 1
    assert value("imgcdn_edge_requests_total", route="img", status="404") == 1
    assert value("imgcdn_edge_requests_total", route="raw", status="200") == 1
    assert value("imgcdn_edge_requests_total", route="healthz", status="200") == 1
    assert value("imgcdn_edge_request_seconds_count", route="img") == 6
    assert value("imgcdn_edge_cache_hits_total", tier="memory") == 2
    assert value("imgcdn_edge_cache_misses_total") == 4  # 2 img + 1 raw + the 404
    assert value("imgcdn_edge_transform_seconds_count") == 2
    assert value("imgcdn_edge_origin_seconds_count") == 4
    assert value("imgcdn_edge_coalesced_total") == 0
    assert value("imgcdn_edge_stale_served_total") == 0
    assert value("imgcdn_edge_cache_bytes", tier="memory") > 0
    assert value("imgcdn_edge_cache_bytes", tier="disk") > 0
    assert ("imgcdn_edge_pool_restarts_total", ()) in found
    assert ("imgcdn_edge_transform_queue", ()) in found
    assert ("imgcdn_edge_origin_errors_total", ()) in found
    again = samples(await (await client.get("/metrics")).text())
    assert again[("imgcdn_edge_requests_total", (("route", "metrics"), ("status", "200")))] == 1


async def test_readyz_reports_a_broken_disk_cache(
    make_edge: EdgeFactory, tmp_path, images, aiohttp_server
):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    config = edge_config(tmp_path, images)
    from tests.edge.conftest import with_cache

    client = await make_edge(with_cache(config, disk_path=str(blocker / "cache")))
    r = await client.get("/readyz")
    assert r.status == 503 and r.headers["Retry-After"] == "1"
    assert "disk cache" in await r.text()
    # ...and the edge keeps serving from memory meanwhile.
    assert (await client.get("/img/astronaut.jpg?w=10")).status == 200
    assert (await client.get("/img/astronaut.jpg?w=10")).headers["X-Cache"] == "HIT-MEMORY"

    async def origin_healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    origin = web.Application()  # readiness also asks the avatar origin's /healthz
    origin.router.add_get("/healthz", origin_healthz)
    origin_url = str((await aiohttp_server(origin)).make_url("")).rstrip("/")
    healthy = await make_edge(edge_config(tmp_path, images, origin_url=origin_url))
    assert (await healthy.get("/readyz")).status == 200


async def test_purge_reaches_another_process_sharing_the_disk(
    make_edge: EdgeFactory, tmp_path, images
):
    """Two edges on one cache dir (as `edge.workers` processes are): a purge taken by one
    also empties the other's memory tier, through the purge log on the shared disk."""
    config = edge_config(tmp_path, images, security=SecurityConfig(purge_token=TOKEN))
    one, two = await make_edge(config), await make_edge(config)
    await one.get("/img/astronaut.jpg?w=20")
    await asyncio.sleep(SYNC_S)  # until `two` trusts its filter of the disk's keys no longer
    assert (await two.get("/img/astronaut.jpg?w=20")).headers["X-Cache"] == "HIT-DISK"
    assert (await two.get("/img/astronaut.jpg?w=20")).headers["X-Cache"] == "HIT-MEMORY"
    r = await one.post(
        "/_purge", json={"paths": ["astronaut.jpg"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert (await r.json())["purged"] == 1
    await asyncio.sleep(0.6)  # two poll periods
    assert (await two.get("/img/astronaut.jpg?w=20")).headers["X-Cache"] == "MISS"
