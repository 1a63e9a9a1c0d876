"""Origin fixtures: configs on tmp dirs, a real server per test, buckets on moto's S3 server
(`moto_endpoint`, tests/conftest.py), PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiobotocore.session import get_session
from aiohttp.test_utils import unused_port
from sqlalchemy.engine import make_url

from imgcdn.config import OriginConfig, StorageConfig
from origin.app import create_app
from tests.origin.api import Api

SIGNING_KEY = "test-signing-key"
PG_ENV = "IMGCDN_TEST_POSTGRES_URL"

MakeConfig = Callable[..., OriginConfig]
StartOrigin = Callable[[OriginConfig], Awaitable[Api]]


async def s3_client(endpoint: str) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
async def bucket(moto_endpoint: str) -> str:
    name = f"photos-{secrets.token_hex(4)}"
    async with await s3_client(moto_endpoint) as client:
        await client.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3(moto_endpoint: str) -> AsyncIterator[Any]:
    """A plain S3 client for reaching around the origin (direct PUTs, checking deletions)."""
    async with await s3_client(moto_endpoint) as client:
        yield client


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database per test, dropped afterwards; skipped without the env var."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    name = f"imgcdn_origin_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """An OriginConfig on a free port, SQLite and blobs under tmp_path, no edges."""

    def make(**overrides: Any) -> OriginConfig:
        port = unused_port()
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "database_url": f"sqlite:///{tmp_path}/origin.db",
            "storage": StorageConfig(type="local", path=str(tmp_path / "blobs")),
            "upload_signing_key": SIGNING_KEY,
            "edges": (),
        }
        values.update(overrides)
        return OriginConfig(**values)

    return make


@pytest.fixture
async def start_origin(aiohttp_server: Any, aiohttp_client: Any) -> AsyncIterator[StartOrigin]:
    """Start a real origin server for a config; returns an Api bound to it."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(config: OriginConfig) -> Api:
        server = await aiohttp_server(create_app(config), host=config.host, port=config.port)
        client = await aiohttp_client(server)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Api(client, config, http)

    yield start
    for http in sessions:
        await http.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both databases (PostgreSQL only when IMGCDN_TEST_POSTGRES_URL is set)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path}/origin.db"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage_for(moto_endpoint: str) -> Callable[[str, str], StorageConfig]:
    def storage(kind: str, bucket_or_path: str) -> StorageConfig:
        if kind == "local":
            return StorageConfig(type="local", path=bucket_or_path)
        return StorageConfig(
            type="s3", bucket=bucket_or_path, endpoint_url=moto_endpoint, region="us-east-1"
        )

    return storage


@pytest.fixture
def store_config(
    store: str, make_config: MakeConfig, tmp_path: Path, request: pytest.FixtureRequest
) -> MakeConfig:
    """make_config with the parametrised store (local dir or a fresh moto bucket)."""
    if store == "local":
        return make_config
    bucket_name = request.getfixturevalue("bucket")
    storage = request.getfixturevalue("storage_for")("s3", bucket_name)

    def make(**overrides: Any) -> OriginConfig:
        return make_config(**{"storage": storage, **overrides})

    return make
