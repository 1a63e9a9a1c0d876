"""Edge test fixtures: one shared transform pool, a source folder of real images, app factory."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from edge.app import create_app
from imgcdn.config import CacheConfig, EdgeConfig, SecurityConfig, SourceConfig, TransformsConfig
from transforms.pool import TransformPool

EdgeFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture(scope="session")
def shared_pool() -> Iterator[TransformPool]:
    """One started pool for every edge test: workers cost ~1 s to start, renders are cheap."""
    pool = TransformPool(processes=2, max_queue=64, timeout_s=20)
    asyncio.run(pool.start())
    yield pool
    asyncio.run(pool.close())


@pytest.fixture
def images(tmp_path: Path, samples: Path) -> Path:
    """A source folder: two photos, a PNG with alpha, a text file, a subfolder."""
    root = tmp_path / "images"
    (root / "photos").mkdir(parents=True)
    shutil.copy(samples / "astronaut.jpg", root / "astronaut.jpg")
    shutil.copy(samples / "coffee.jpg", root / "photos" / "coffee.jpg")
    shutil.copy(samples / "alpha.png", root / "alpha.png")
    (root / "notes.txt").write_text("not an image\n")
    return root


def edge_config(tmp_path: Path, images: Path | None = None, **changes: Any) -> EdgeConfig:
    """An EdgeConfig on tmp dirs; `changes` may hold `cache=`, `source=`, `security=` etc."""
    base = EdgeConfig(
        port=0,
        source=SourceConfig(type="dir", path=str(images or tmp_path / "images")),
        cache=CacheConfig(
            disk_path=str(tmp_path / "edge-cache"), memory_bytes=64 << 20, disk_bytes=256 << 20
        ),
        transforms=TransformsConfig(processes=2, max_queue=64, timeout_s=20),
        security=SecurityConfig(),
    )
    return dataclasses.replace(base, **changes)


def with_cache(config: EdgeConfig, **changes: Any) -> EdgeConfig:
    return dataclasses.replace(config, cache=dataclasses.replace(config.cache, **changes))


@pytest.fixture
def make_edge(aiohttp_client: Any, shared_pool: TransformPool) -> EdgeFactory:
    """`client = await make_edge(config)`: a real edge on 127.0.0.1 sharing the test pool."""

    async def make(config: EdgeConfig) -> TestClient:
        app: web.Application = create_app(config, pool=shared_pool)
        return await aiohttp_client(app)

    return make
