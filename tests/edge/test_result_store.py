"""The shared result store (`edge.cache.result_store`): two edge "hosts" (own disk each) over one
bucket of moto's S3 server; a stopped, slow or corrupt store costs a miss, never the request."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from moto.server import ThreadedMotoServer

from edge.app import create_app
from edge.appkeys import TIERS
from edge.cache import Entry
from edge.headers import cache_status, hit_outcome
from edge.result_store import ResultStore, decode_object
from imgcdn.config import EdgeConfig, ResultStoreConfig, SourceConfig
from tests.edge.conftest import EdgeFactory, edge_config, with_cache
from tests.edge.sourceserver import FakeSource
from tests.edge.test_freshness import metric, wait_for
from transforms.pool import TransformPool

PREFIX = "variants/"
IMG = "/img/astronaut.jpg?w=50&fm=png"
AVATAR = "/avatar/0bc83cb571cd1c50ba6f3e8a78ef1346?d=identicon&f=y&s=64"
TRANSFORMS = "imgcdn_edge_transform_seconds_count"
ERRORS = "imgcdn_edge_cache_errors_total"


@dataclass(frozen=True)
class Bucket:
    name: str
    client: Any  # boto3 S3 client

    def keys(self) -> list[str]:
        found = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return [obj["Key"] for obj in found]


@pytest.fixture
def bucket(moto_endpoint: str) -> Bucket:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"results-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return Bucket(name, client)


def store_at(endpoint: str, bucket: str, **changes: Any) -> ResultStoreConfig:
    values: dict[str, Any] = {"bucket": bucket, "prefix": PREFIX, "endpoint_url": endpoint}
    return ResultStoreConfig(**{**values, **changes})


def host(base: Path, images: Path, store: ResultStoreConfig | None) -> EdgeConfig:
    """One edge host: its own disk tier under `base`, the shared source folder and store."""
    return with_cache(edge_config(base, images), result_store=store)


def shared_tier(client: TestClient) -> ResultStore:
    tier = client.app[TIERS].shared
    assert isinstance(tier, ResultStore)
    return tier


async def two_hosts(
    make_edge: EdgeFactory, base: Path, images: Path, store: ResultStoreConfig
) -> tuple[TestClient, TestClient]:
    """Hosts "a" and "b": a disk tier each under `base`, one source folder, one store."""
    return (
        await make_edge(host(base / "a", images, store)),
        await make_edge(host(base / "b", images, store)),
    )


async def stored_by(client: TestClient, path: str) -> bytes:
    """`path` asked of a host that misses it, once its upload is done; the body."""
    r = await client.get(path)
    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    body = await r.read()
    await uploaded(client)
    return body


async def uploaded(client: TestClient) -> None:
    """Wait until the host's background uploads are done."""
    tier = shared_tier(client)
    await wait_for(lambda: tier.uploading == 0)


async def test_second_host_answers_from_the_shared_store_without_a_transform(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, moto_endpoint: str, bucket: Bucket
) -> None:
    a, b = await two_hosts(make_edge, tmp_path, images, store_at(moto_endpoint, bucket.name))
    body = await stored_by(a, IMG)
    assert len(bucket.keys()) == 1 and bucket.keys()[0].startswith(PREFIX + "v1:")

    second = await b.get(IMG)  # a source new to b: fetched for its validator, not rendered
    assert second.status == 200 and second.headers["X-Cache"] == "HIT-SHARED"
    assert second.headers["Cache-Status"].startswith("imgcdn; hit; ttl=")
    assert second.headers["Cache-Status"].endswith("; detail=shared")
    assert await second.read() == body
    assert second.headers["ETag"] == (await a.get(IMG)).headers["ETag"]
    assert await metric(b, TRANSFORMS) == 0
    assert await metric(b, "imgcdn_edge_cache_hits_total", tier="shared") == 1
    assert await metric(b, "imgcdn_edge_cache_misses_total") == 0
    third = await b.get(IMG)
    assert third.headers["X-Cache"] == "HIT-MEMORY" and await third.read() == body

    # A source b already knows: its record gives the key, and the store answers by key.
    assert (await a.get("/img/astronaut.jpg?w=60&fm=png")).headers["X-Cache"] == "MISS"
    await uploaded(a)
    known = await b.get("/img/astronaut.jpg?w=60&fm=png")
    assert known.headers["X-Cache"] == "HIT-SHARED"
    assert await metric(b, TRANSFORMS) == 0
    assert len(bucket.keys()) == 2  # b uploaded nothing of its own


async def test_a_shared_hit_is_kept_on_the_hosts_disk(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, moto_endpoint: str, bucket: Bucket
) -> None:
    store = store_at(moto_endpoint, bucket.name)
    a, b = await two_hosts(make_edge, tmp_path, images, store)
    await a.get(IMG)
    await uploaded(a)
    assert (await b.get(IMG)).headers["X-Cache"] == "HIT-SHARED"
    bucket.client.delete_object(Bucket=bucket.name, Key=bucket.keys()[0])
    # Another process of host b (same disk, own memory): the disk has it now.
    b2 = await make_edge(host(tmp_path / "b", images, store))
    assert (await b2.get(IMG)).headers["X-Cache"] == "HIT-DISK"


async def test_avatar_defaults_are_shared_too(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, moto_endpoint: str, bucket: Bucket
) -> None:
    a, b = await two_hosts(make_edge, tmp_path, images, store_at(moto_endpoint, bucket.name))
    body = await stored_by(a, AVATAR)
    second = await b.get(AVATAR)
    assert second.headers["X-Cache"] == "HIT-SHARED"
    assert await second.read() == body
    assert await metric(b, TRANSFORMS) == 0
    assert (await b.get(AVATAR)).headers["X-Cache"] == "HIT-MEMORY"


@pytest.fixture
def own_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedMotoServer]:
    """A moto server of this test's own, so that the test may stop it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server
    server.stop()  # stopping it twice is harmless


async def test_a_stopped_store_costs_a_miss_and_a_counted_error(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, own_moto: ThreadedMotoServer
) -> None:
    host_, port = own_moto.get_host_and_port()
    endpoint = f"http://{host_}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="results"
    )
    store = store_at(endpoint, "results")
    a = await make_edge(host(tmp_path / "a", images, store))
    b = await make_edge(host(tmp_path / "b", images, store))
    assert (await a.get(IMG)).headers["X-Cache"] == "MISS"
    await uploaded(a)
    own_moto.stop()
    r = await b.get(IMG)
    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    assert await metric(b, ERRORS, kind="shared-read") == 1
    # Skipped for a while after that: another miss does not wait for a dead endpoint again.
    r = await b.get("/img/astronaut.jpg?w=40&fm=png")
    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    assert await metric(b, ERRORS, kind="shared-read") == 1
    assert await metric(b, ERRORS, kind="shared-write") == 0


async def test_an_unreachable_endpoint_is_a_miss(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, aws_env: None
) -> None:
    client = await make_edge(host(tmp_path, images, store_at("http://127.0.0.1:9", "results")))
    answers = [await client.get(IMG) for _ in range(2)]
    assert [r.status for r in answers] == [200, 200]
    assert [r.headers["X-Cache"] for r in answers] == ["MISS", "HIT-MEMORY"]
    assert await metric(client, ERRORS, kind="shared-read") == 1


@pytest.mark.parametrize("garbage", [b"", b"ICE1\x00\x00\x00\x05{}", b"not an entry at all"])
async def test_a_corrupt_object_is_a_miss_and_is_replaced(
    make_edge: EdgeFactory,
    tmp_path: Path,
    images: Path,
    moto_endpoint: str,
    bucket: Bucket,
    garbage: bytes,
) -> None:
    store = store_at(moto_endpoint, bucket.name)
    a = await make_edge(host(tmp_path / "a", images, store))
    good = await (await a.get(IMG)).read()
    await uploaded(a)
    (key,) = bucket.keys()
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=garbage)
    b = await make_edge(host(tmp_path / "b", images, store))
    r = await b.get(IMG)
    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    assert await r.read() == good
    assert await metric(b, ERRORS, kind="shared-corrupt") == 1
    await uploaded(b)  # the miss stored the variant again, over the corrupt object
    c = await make_edge(host(tmp_path / "c", images, store))
    assert (await c.get(IMG)).headers["X-Cache"] == "HIT-SHARED"


@dataclass
class HeldS3:
    """A stand-in S3 endpoint on 127.0.0.1 that holds requests until `release` is set:
    GETs (when `hold_reads`, else "no such key") and every PUT."""

    hold_reads: bool
    release: asyncio.Event = field(default_factory=asyncio.Event)
    puts: int = 0
    gets: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "PUT":
            self.puts += 1
            await request.read()
            await self.release.wait()
            return web.Response(headers={"ETag": '"0"'})
        self.gets += 1
        if self.hold_reads:
            await self.release.wait()
        return web.Response(status=404, body=NO_SUCH_KEY, content_type="application/xml")


NO_SUCH_KEY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
)


async def held_s3(aiohttp_server: Any, hold_reads: bool) -> tuple[HeldS3, str]:
    held = HeldS3(hold_reads)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", held.handle)
    server = await aiohttp_server(app)
    return held, str(server.make_url("")).rstrip("/")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


async def test_uploads_beyond_the_bound_are_dropped_not_queued(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, aiohttp_server: Any, aws_env: None
) -> None:
    held, endpoint = await held_s3(aiohttp_server, hold_reads=False)
    store = store_at(endpoint, "results", max_uploads=2, upload_timeout_s=30)
    client = await make_edge(host(tmp_path, images, store))
    started = time.monotonic()
    for width in range(20, 25):
        r = await client.get(f"/img/astronaut.jpg?w={width}&fm=png")
        assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    assert time.monotonic() - started < 10  # no response waited for an upload
    await wait_for(lambda: held.puts == 2)
    assert shared_tier(client).uploading == 2
    assert await metric(client, ERRORS, kind="shared-dropped") == 3
    held.release.set()
    await uploaded(client)
    await asyncio.sleep(0.2)
    assert held.puts == 2  # the dropped three never went out
    assert await metric(client, ERRORS, kind="shared-write") == 0


async def test_a_slow_store_read_costs_its_timeout_then_a_miss(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, aiohttp_server: Any, aws_env: None
) -> None:
    held, endpoint = await held_s3(aiohttp_server, hold_reads=True)
    client = await make_edge(host(tmp_path, images, store_at(endpoint, "results", timeout_s=0.3)))
    started = time.monotonic()
    r = await client.get(IMG)
    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    assert time.monotonic() - started < 5
    assert await metric(client, ERRORS, kind="shared-read") == 1
    held.release.set()


async def test_without_a_store_hosts_share_nothing(
    make_edge: EdgeFactory, tmp_path: Path, images: Path
) -> None:
    a = await make_edge(host(tmp_path / "a", images, None))
    b = await make_edge(host(tmp_path / "b", images, None))
    assert a.app[TIERS].shared is None
    assert [(await c.get(IMG)).headers["X-Cache"] for c in (a, b, b)] == [
        "MISS",
        "MISS",
        "HIT-MEMORY",
    ]
    assert await metric(b, TRANSFORMS) == 1
    assert await metric(b, "imgcdn_edge_cache_hits_total", tier="shared") == 0


def test_the_shared_hit_headers() -> None:
    outcome = hit_outcome("shared")
    assert outcome.x_cache == "HIT-SHARED"
    assert cache_status(outcome, 60) == "imgcdn; hit; ttl=60; detail=shared"
    assert hit_outcome("disk").x_cache == "HIT-DISK"


def test_objects_decode_back_to_entries_or_nothing() -> None:
    entry = Entry(b"\xff\xd8body", "image/jpeg", '"e"', 1.0, 2.0, "p1:x")
    data = entry.encode()
    assert decode_object(data) == entry
    assert decode_object(data[:-1]) is None  # truncated: checksum
    assert decode_object(data[:6]) is None
    assert decode_object(b"ICE1\x00\x00\x00\x02[]") is None


async def test_an_object_over_the_size_bound_is_not_read(
    moto_endpoint: str, bucket: Bucket, aws_env: None
) -> None:
    entry = Entry(b"x" * 2000, "image/png", '"e"', 0.0, 0.0, "t")
    bucket.client.put_object(Bucket=bucket.name, Key=PREFIX + "big", Body=entry.encode())
    bucket.client.put_object(Bucket=bucket.name, Key=PREFIX + "small", Body=entry.encode())
    errors: list[str] = []
    store = ResultStore(store_at(moto_endpoint, bucket.name), errors.append, max_object_bytes=1000)
    await store.start()
    try:
        assert await store.get("big") is None
        assert errors == ["shared-corrupt"]
        store.max_object_bytes = 10_000
        assert await store.get("small") == entry
    finally:
        await store.close()


async def test_a_refusal_does_not_ask_the_store(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, samples: Path, aws_env: None
) -> None:
    """With the pool full, a miss is refused (503) before the shared store is read: under
    overload each read would cost ~1 ms of CPU and S3's latency before the refusal."""
    held, endpoint = await held_s3(aiohttp_server, hold_reads=False)
    source = FakeSource()
    for name in ("known.jpg", "slow1.jpg", "slow2.jpg"):
        source.files[name] = (samples / "astronaut.jpg").read_bytes()
    origin = await aiohttp_server(source.app())
    config = with_cache(
        edge_config(tmp_path, source=SourceConfig(type="http", url=str(origin.make_url("/img/")))),
        result_store=store_at(endpoint, "results"),
    )
    pool = TransformPool(processes=1, max_queue=1, timeout_s=30)  # room for 2 transforms
    await pool.start()
    try:
        client = await aiohttp_client(create_app(config, pool=pool))
        assert (await client.get("/img/known.jpg?w=20")).status == 200  # its record is kept
        source.delay_s = 0.5
        slow = [asyncio.ensure_future(client.get(f"/img/slow{i}.jpg?w=20")) for i in (1, 2)]
        await asyncio.sleep(0.2)  # both admitted, fetching: the pool is full
        asked = held.gets
        refused = [await client.get(f"/img/known.jpg?w={w}") for w in (30, 40, 50)]
        assert [r.status for r in refused] == [503, 503, 503]
        assert held.gets == asked  # no read for a miss that could not be rendered
        assert [(await r).status for r in slow] == [200, 200]
        later = await client.get("/img/known.jpg?w=30")  # room again: the store is asked
        assert later.status == 200 and held.gets > asked
    finally:
        held.release.set()  # the uploads it holds
        await pool.close()


async def test_an_avatar_refusal_does_not_ask_the_store(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, images: Path, aws_env: None
) -> None:
    held, endpoint = await held_s3(aiohttp_server, hold_reads=False)
    config = host(tmp_path, images, store_at(endpoint, "results"))
    pool = TransformPool(processes=1, max_queue=0, timeout_s=30)  # room for 1 transform
    await pool.start()
    try:
        client = await aiohttp_client(create_app(config, pool=pool))
        busy = asyncio.ensure_future(pool.run(time.sleep, 1.0))  # the pool is full
        await asyncio.sleep(0.1)
        r = await client.get(AVATAR)
        assert r.status == 503
        assert held.gets == 0  # refused before the store was read
        await busy
        r = await client.get(AVATAR)
        assert r.status == 200 and r.headers["X-Cache"] == "MISS"
        assert held.gets == 1
    finally:
        held.release.set()
        await pool.close()


async def test_store_reads_in_flight_hold_the_pools_places(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, images: Path, aws_env: None
) -> None:
    """A burst of misses while the pool has room for 2: 2 read the store (each holding a place
    until it is answered), the rest are refused at once instead of all reading S3 first."""
    held, endpoint = await held_s3(aiohttp_server, hold_reads=True)
    config = host(tmp_path, images, store_at(endpoint, "results", timeout_s=1.0))
    pool = TransformPool(processes=1, max_queue=1, timeout_s=30)  # room for 2 transforms
    await pool.start()
    try:
        client = await aiohttp_client(create_app(config, pool=pool))
        held.release.set()  # the first miss: its record, and its upload
        assert (await client.get("/img/astronaut.jpg?w=20")).status == 200
        await uploaded(client)
        held.release.clear()
        asked = held.gets
        started = time.monotonic()

        async def get(width: int) -> tuple[int, float]:
            r = await client.get(f"/img/astronaut.jpg?w={width}")
            await r.read()
            return r.status, time.monotonic() - started

        results = await asyncio.gather(*(get(w) for w in range(30, 35)))
        assert held.gets - asked == 2, results
        assert sorted(status for status, _ in results) == [200, 200, 503, 503, 503]
        assert all(seconds < 0.5 for status, seconds in results if status == 503), results
    finally:
        held.release.set()
        await pool.close()
