"""Faults inside a running edge: a transform worker SIGKILLed under load, the disk tier made
unwritable or truncated underneath it, and SIGTERM mid-load followed by a clean restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.loadgen import run_load
from tests.hardening.conftest import copy_samples, edge_section
from tests.hardening.servers import (
    Service,
    free_port,
    http_status,
    start_service,
    stop_service,
    transform_workers,
    write_config,
)


def fetch_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())


def readiness(service: Service) -> str:
    """`ready`, or `not ready: <reasons>` (the origin may be down in these edge-only tests)."""
    return fetch_text(service.url + "/readyz")


def metric(service: Service, name: str, **labels: str) -> float:
    """One sample of the edge's /metrics (0 when absent)."""
    text = fetch_text(service.url + "/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def start_edge(root: Path, samples: Path, **extra: object) -> Service:
    copy_samples(root / "images", samples)
    port = free_port()
    # aiohttp clients reuse idle connections: a 1 s server keep-alive would race them
    section = edge_section(port, root, keepalive_timeout_s=10, **extra)
    config = write_config(root / "config.yaml", {"edge": section})
    return start_service("edge", config, port)


def thaw(root: Path) -> None:
    """Clear the immutable flag everywhere under `root` (pytest must be able to clean up)."""
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)


def moved_aside(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith("edge-cache.corrupt-")]


@pytest.fixture
def edge_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    thaw(tmp_path)


async def test_a_sigkilled_worker_fails_only_its_own_request(edge_dir: Path, samples: Path) -> None:
    edge = start_edge(edge_dir, samples, cache={"memory_bytes": 0, "disk_bytes": 0})
    try:
        before = transform_workers(edge.pid)
        assert len(before) == 2
        paths = [f"/img/large.jpg?w={200 + i}&fm=jpeg" for i in range(600)]  # every one a miss
        load = asyncio.ensure_future(
            run_load(edge.url, paths, connections=6, duration_s=4.0, timeout_s=20)
        )
        await asyncio.sleep(1.5)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        whole_after = None
        while time.monotonic() - killed_at < 5.0:  # bounded poll
            now = transform_workers(edge.pid)
            # whole again: the victim replaced, the survivor untouched
            if victim not in now and len(now) == 2 and before[1] in now:
                whole_after = time.monotonic() - killed_at
                break
            await asyncio.sleep(0.02)
        outcome = await load
        statuses = outcome.measurement.statuses
        assert whole_after is not None and whole_after < 1.0, whole_after
        print(f"pool whole {whole_after:.2f} s after the kill; statuses {statuses}")
        assert statuses.get("200", 0) > 20, statuses
        # at most the one request the victim was rendering failed, as a one-line 500
        assert set(statuses) <= {"200", "500"} and statuses.get("500", 0) <= 1, statuses
        assert outcome.measurement.socket_errors == 0
        assert metric(edge, "imgcdn_edge_pool_restarts_total") == 1
        assert "transform pool" not in readiness(edge)
    finally:
        stop_service(edge)


def cached_variants(edge: Service, widths: range, fm: str = "png") -> None:
    """Render these variants once (large PNGs: the disk tier stores them as files)."""
    for width in widths:
        assert http_status(f"{edge.url}/img/large.jpg?w={width}&fm={fm}") == 200


async def x_cache(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as r:
        assert r.status == 200, (url, r.status, await r.text())
        await r.read()
        return r.headers["X-Cache"]


def chattr(flag: str, *paths: Path) -> None:
    """Set or clear the immutable flag: root ignores permission bits, not this flag."""
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not supported here: {done.stderr.decode().strip()}")


def directories(root: Path) -> list[Path]:
    return [root, *(p for p in root.rglob("*") if p.is_dir())]


async def test_an_unwritable_disk_tier_directory_degrades_to_misses(
    edge_dir: Path, samples: Path
) -> None:
    """The tier's directories made read-only under a running edge (what `chmod -w` or a
    read-only remount does to a non-root service): no file can be created, renamed or
    deleted there. New variants are served as misses; what was stored stays served."""
    edge = start_edge(edge_dir, samples, cache=cache_section(edge_dir))
    cache = edge_dir / "edge-cache"
    try:
        cached_variants(edge, range(600, 604))
        chattr("+i", *directories(cache))
        async with aiohttp.ClientSession() as session:
            for width in range(700, 704):  # large PNGs: stored as files, which now fail
                url = f"{edge.url}/img/large.jpg?w={width}&fm=png"
                assert await x_cache(session, url) == "MISS"
                assert await x_cache(session, url) == "MISS"
            for width in range(600, 604):  # stored before: nothing is lost
                url = f"{edge.url}/img/large.jpg?w={width}&fm=png"
                assert await x_cache(session, url) == "HIT-DISK"
            assert metric(edge, "imgcdn_edge_cache_errors_total", kind="write") >= 8
            assert "disk cache write failed" in edge.log_text()
            chattr("-i", *directories(cache))  # and it heals by itself
            url = f"{edge.url}/img/large.jpg?w=700&fm=png"
            assert await x_cache(session, url) == "MISS"
            assert await x_cache(session, url) == "HIT-DISK"
    finally:
        stop_service(edge)


async def test_a_read_only_disk_tier_at_start_is_skipped_not_wiped(
    edge_dir: Path, samples: Path
) -> None:
    """A tier whose files cannot be written at start (its database read-only, its directory
    still writable) is served around, and kept: a read-only database is not a corrupt one."""
    edge = start_edge(edge_dir, samples, cache=cache_section(edge_dir))
    cache = edge_dir / "edge-cache"
    cached_variants(edge, range(600, 604))
    stop_service(edge)
    before = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    files = [p for p in cache.rglob("*") if p.is_file()]
    chattr("+i", *files)
    edge = start_service("edge", edge.config, edge.port)
    try:
        async with aiohttp.ClientSession() as session:
            for width in (600, 601, 900):
                url = f"{edge.url}/img/large.jpg?w={width}&fm=png"
                assert await x_cache(session, url) == "MISS"
        assert metric(edge, "imgcdn_edge_cache_errors_total", kind="open") >= 1
        assert "disk cache" in readiness(edge) and "unusable" in edge.log_text()
    finally:
        stop_service(edge)
        thaw(edge_dir)
    assert not moved_aside(edge_dir)
    assert {p: p.read_bytes() for p in before if p.exists()} == before  # nothing lost
    edge = start_service("edge", edge.config, edge.port)
    try:
        assert http_status(f"{edge.url}/img/large.jpg?w=600&fm=png") == 200
        async with aiohttp.ClientSession() as session:
            assert await x_cache(session, f"{edge.url}/img/large.jpg?w=601&fm=png") == "HIT-DISK"
    finally:
        stop_service(edge)


def cache_section(root: Path) -> dict[str, object]:
    """No memory tier, so every repeat request reaches the disk tier."""
    return {"disk_path": str(root / "edge-cache"), "memory_bytes": 0, "disk_bytes": 256 << 20}


async def test_truncated_disk_tier_files_are_counted_misses(edge_dir: Path, samples: Path) -> None:
    edge = start_edge(edge_dir, samples, cache=cache_section(edge_dir))
    cache = edge_dir / "edge-cache"
    try:
        cached_variants(edge, range(600, 606))
        values = list(cache.rglob("*.val"))
        assert len(values) >= 6
        for value in values:
            os.truncate(value, value.stat().st_size // 3)
        async with aiohttp.ClientSession() as session:
            for width in range(600, 606):
                url = f"{edge.url}/img/large.jpg?w={width}&fm=png"
                assert await x_cache(session, url) == "MISS"
                assert await x_cache(session, url) == "HIT-DISK"  # stored afresh
        assert metric(edge, "imgcdn_edge_cache_errors_total", kind="corrupt") == 6
        assert "corrupt disk cache entry" in edge.log_text()
    finally:
        stop_service(edge)
    # the database itself truncated while the edge is down: moved aside at the next start
    database = cache / "cache.db"
    os.truncate(database, 100)
    edge = start_service("edge", edge.config, edge.port)
    try:
        assert http_status(f"{edge.url}/img/large.jpg?w=600&fm=png") == 200
        assert metric(edge, "imgcdn_edge_cache_errors_total", kind="open") == 1
        assert "is corrupt" in edge.log_text()
        assert moved_aside(edge_dir)
        assert "disk cache" not in readiness(edge)
    finally:
        stop_service(edge)


class SlowSource:
    """An HTTP source that answers each image after `delay_s` (requests in flight at SIGTERM)."""

    def __init__(self, body: bytes, delay_s: float) -> None:
        self.body = body
        self.delay_s = delay_s

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay_s)
        return web.Response(body=self.body, content_type="image/jpeg")


async def test_sigterm_mid_load_finishes_in_flight_and_reopens_clean(
    aiohttp_server, edge_dir: Path, samples: Path
) -> None:
    source = SlowSource((samples / "coffee.jpg").read_bytes(), delay_s=1.0)
    app = web.Application()
    app.router.add_get("/{path:.+}", source.handle)
    server = await aiohttp_server(app)
    http_source = {"type": "http", "url": str(server.make_url("/"))}
    edge = start_edge(edge_dir, samples, source=http_source, shutdown_grace_s=5)
    try:
        async with aiohttp.ClientSession() as session:

            async def get(i: int) -> int:
                async with session.get(f"{edge.url}/img/p{i}.jpg?w={30 + i}") as r:
                    await r.read()
                    return r.status

            in_flight = [asyncio.ensure_future(get(i)) for i in range(12)]
            await asyncio.sleep(0.4)  # all 12 are waiting on the slow source
            edge.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            await asyncio.sleep(0.2)
            with pytest.raises(aiohttp.ClientConnectionError):
                async with aiohttp.ClientSession() as fresh, fresh.get(edge.url + "/healthz"):
                    pass  # no new connections once stopping
            assert await asyncio.gather(*in_flight) == [200] * 12
        code = await asyncio.to_thread(edge.process.wait, 15)
        assert code == 0 and time.monotonic() - stopped_at < 5.0
    finally:
        stop_service(edge)
    # the disk tier reopens clean: every variant rendered before the stop is a disk hit
    source.delay_s = 0.0
    edge = start_service("edge", edge.config, edge.port)
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(12):
                url = f"{edge.url}/img/p{i}.jpg?w={30 + i}"
                assert await x_cache(session, url) == "HIT-DISK"
        assert metric(edge, "imgcdn_edge_cache_errors_total", kind="open") == 0
    finally:
        stop_service(edge)
    with contextlib.suppress(Exception):
        await server.close()
