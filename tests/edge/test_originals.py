"""Originals kept in memory: more variants of one source, one fetch; never past a change."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest
import pyvips

from edge.app import create_app
from edge.appkeys import POOL
from edge.origin_client import PhotoBytes
from edge.originals import Originals
from edge.sources import Fetched, Validators
from imgcdn.config import SecurityConfig
from tests.edge.conftest import EdgeFactory, edge_config
from tests.edge.sourceserver import FakeSource
from tests.edge.test_freshness import http_config
from tests.transforms import tasks
from tests.transforms.test_held import Frames

TOKEN = "purge-me"


def fetched(size: int, validator: str = "v1") -> Fetched:
    return Fetched(b"x" * size, Validators(validator))


def test_kept_only_under_the_version_and_kind_that_made_it() -> None:
    kept = Originals(1000)
    kept.put("a", "v1", fetched(100))
    assert kept.get("a", "v1", Fetched) is not None
    assert kept.get("a", "v2", Fetched) is None  # the source changed since
    assert kept.get("a", "v1", PhotoBytes) is None  # another kind under the same key
    kept.discard("a")
    assert kept.get("a", "v1", Fetched) is None


def test_demoted_entries_stay_while_there_is_room_and_go_first() -> None:
    kept = Originals(1000)
    kept.put("photo", "v", fetched(120))
    kept.put("master", "v", fetched(30))
    kept.demote("photo")
    assert kept.get("photo", "v", Fetched) is not None  # room to spare: still served
    assert kept.size_bytes() == 150
    for i in range(8):  # 8 x 120 + the master: the demoted photo must make room
        kept.put(f"other{i}", "v", fetched(120))
    assert kept.get("photo", "v", Fetched) is None
    assert kept.get("master", "v", Fetched) is not None  # older, but not demoted
    assert all(kept.get(f"other{i}", "v", Fetched) is not None for i in range(8))
    assert kept.size_bytes() == 990
    kept.put("photo", "v", fetched(120))  # fetched again: an ordinary entry once more
    assert kept.get("photo", "v", Fetched) is not None and kept.size_bytes() <= 1000


def test_bounded_by_body_bytes_and_large_originals_skipped() -> None:
    kept = Originals(1000)
    kept.put("big", "v", fetched(126))  # over an eighth of the budget
    assert kept.get("big", "v", Fetched) is None
    for i in range(20):
        kept.put(i, "v", fetched(100))
    assert kept.size_bytes() <= 1000
    assert kept.get(19, "v", Fetched) is not None and kept.get(0, "v", Fetched) is None
    off = Originals(0)
    off.put("a", "v", fetched(1))
    assert off.get("a", "v", Fetched) is None and off.size_bytes() == 0


def width_of(body: bytes) -> tuple[int, int]:
    image = pyvips.Image.new_from_buffer(body, "")
    return image.width, image.height


@pytest.mark.parametrize(("originals_bytes", "fetches"), [(64 << 20, 1), (0, 3)])
async def test_three_widths_of_one_source_fetch_it_once(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes, originals_bytes, fetches
) -> None:
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("astronaut.jpg")
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server, originals_bytes=originals_bytes))
    for width in (50, 60, 70):
        r = await client.get(f"/img/a.jpg?w={width}")
        assert r.status == 200 and r.headers["X-Cache"] == "MISS"
        assert width_of(await r.read()) == (width, width)
    assert source.hits["a.jpg"] == fetches


async def test_a_kept_original_crosses_to_a_worker_once(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes, monkeypatch
) -> None:
    """The kept bytes are one object, so the worker that rendered the first width holds
    them: the next widths send a token (transforms/pool.py, held sources)."""
    frames = Frames(monkeypatch)
    source = FakeSource()
    data = source.files["a.jpg"] = sample_bytes("astronaut.jpg")
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server))
    for width in (50, 60, 70, 80):
        r = await client.get(f"/img/a.jpg?w={width}")
        assert r.status == 200 and width_of(await r.read()) == (width, width)
    carried = [size for size in frames.last(4) if size > len(data)]
    assert len(carried) <= 2  # once per worker at most (the pool has two)
    assert len(frames.last(4)) == 4


async def test_a_changed_source_is_fetched_again_once_its_record_expires(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
) -> None:
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("astronaut.jpg")  # square
    server = await aiohttp_server(source.app())
    client = await make_edge(http_config(tmp_path, server, max_age_s=1))
    assert width_of(await (await client.get("/img/a.jpg?w=50")).read()) == (50, 50)
    source.files["a.jpg"] = sample_bytes("large.jpg")  # 2000x1072
    await asyncio.sleep(1.1)
    r = await client.get("/img/a.jpg?w=60")
    assert width_of(await r.read()) == (60, 32)  # the new original, not the kept one
    assert source.hits["a.jpg"] == 2


async def test_a_purge_drops_the_kept_original(
    make_edge: EdgeFactory, aiohttp_server, tmp_path, sample_bytes
) -> None:
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("astronaut.jpg")
    server = await aiohttp_server(source.app())
    config = replace(http_config(tmp_path, server), security=SecurityConfig(purge_token=TOKEN))
    client = await make_edge(config)
    assert width_of(await (await client.get("/img/a.jpg?w=50")).read()) == (50, 50)
    source.files["a.jpg"] = sample_bytes("large.jpg")
    r = await client.post(
        "/_purge", json={"paths": ["a.jpg"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status == 200
    assert width_of(await (await client.get("/img/a.jpg?w=60")).read()) == (60, 32)
    assert source.hits["a.jpg"] == 2


async def test_the_edge_runs_its_workers_below_itself_by_config(aiohttp_client, tmp_path) -> None:
    """`edge.transforms.nice` reaches the workers."""
    config = edge_config(tmp_path)
    transforms = replace(config.transforms, processes=1, nice=3)
    client = await aiohttp_client(create_app(replace(config, transforms=transforms)))
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 3)
    assert await client.app[POOL].run(tasks.niceness) == expected


@pytest.mark.parametrize(("decoded_bytes", "kept"), [(16 << 20, 1), (0, 0)])
async def test_the_edge_sizes_its_workers_pixel_budget_from_config(
    aiohttp_client, aiohttp_server, tmp_path, sample_bytes, decoded_bytes, kept
) -> None:
    """`edge.transforms.decoded_source_bytes` reaches the workers: with it, the widths after
    the first of one source render from its kept pixels (transforms/held.py)."""
    source = FakeSource()
    source.files["a.jpg"] = sample_bytes("astronaut.jpg")
    server = await aiohttp_server(source.app())
    config = http_config(tmp_path, server)
    transforms = replace(config.transforms, processes=1, decoded_source_bytes=decoded_bytes)
    client = await aiohttp_client(create_app(replace(config, transforms=transforms)))
    for width in (50, 60, 70):
        r = await client.get(f"/img/a.jpg?w={width}")
        assert r.status == 200 and width_of(await r.read()) == (width, width)
    pixels = await client.app[POOL].run(tasks.kept_pixels)
    assert len(pixels) == kept and sum(size for _, size in pixels) == kept * 1024 * 1024 * 3
