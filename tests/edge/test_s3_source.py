"""The S3 source through moto's server mode over real HTTP (edge/s3.py on the edge)."""

from __future__ import annotations

import asyncio

import boto3
import pytest

from imgcdn.config import SourceConfig
from tests.edge.conftest import EdgeFactory, edge_config, with_cache

BUCKET = "images"


@pytest.fixture
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    """A bucket on the suite's moto server (tests/conftest.py), emptied and removed after."""
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


async def test_s3_source_serves_revalidates_and_refuses(
    make_edge: EdgeFactory, tmp_path, moto_endpoint: str, s3, sample_bytes
):
    s3.put_object(Bucket=BUCKET, Key="pics/astronaut.jpg", Body=sample_bytes("astronaut.jpg"))
    s3.put_object(Bucket=BUCKET, Key="pics/readme.txt", Body=b"hello")
    source = SourceConfig(
        type="s3", bucket=BUCKET, prefix="pics/", endpoint_url=moto_endpoint, timeout_s=5
    )
    client = await make_edge(with_cache(edge_config(tmp_path, source=source), max_age_s=1))
    first = await client.get("/img/astronaut.jpg?w=50&fm=png")
    assert first.status == 200 and first.headers["X-Cache"] == "MISS"
    old = await first.read()
    raw = await client.get("/raw/astronaut.jpg")
    assert await raw.read() == sample_bytes("astronaut.jpg")
    assert (await client.get("/img/missing.jpg")).status == 404
    assert (await client.get("/img/readme.txt")).status == 415
    # A new object under the same key: seen after max-age and one (conditional) revalidation.
    s3.put_object(Bucket=BUCKET, Key="pics/astronaut.jpg", Body=sample_bytes("rocket.jpg"))
    await asyncio.sleep(1.1)
    stale = await client.get("/img/astronaut.jpg?w=50&fm=png")
    assert stale.headers["X-Cache"] == "STALE" and await stale.read() == old
    await asyncio.sleep(0.5)
    fresh = await client.get("/img/astronaut.jpg?w=50&fm=png")
    assert fresh.headers["X-Cache"] == "MISS"
    assert await fresh.read() != old


async def test_s3_source_unchanged_object_revalidates_with_304(
    make_edge: EdgeFactory, tmp_path, moto_endpoint: str, s3, sample_bytes
):
    s3.put_object(Bucket=BUCKET, Key="a.jpg", Body=sample_bytes("coffee.jpg"))
    source = SourceConfig(type="s3", bucket=BUCKET, endpoint_url=moto_endpoint, timeout_s=5)
    client = await make_edge(with_cache(edge_config(tmp_path, source=source), max_age_s=1))
    assert (await client.get("/img/a.jpg?w=20")).headers["X-Cache"] == "MISS"
    await asyncio.sleep(1.1)
    assert (await client.get("/img/a.jpg?w=20")).headers["X-Cache"] == "STALE"
    await asyncio.sleep(0.5)
    assert (await client.get("/img/a.jpg?w=20")).headers["X-Cache"] == "HIT-MEMORY"


async def test_s3_source_down_is_502(make_edge: EdgeFactory, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    source = SourceConfig(type="s3", bucket=BUCKET, endpoint_url="http://127.0.0.1:9", timeout_s=2)
    client = await make_edge(edge_config(tmp_path, source=source))
    r = await client.get("/img/a.jpg?w=20")
    assert r.status == 502
