"""Hostile images through a running edge: bombs, polyglots, blocked formats, broken files,
50 MB over the limit (refused without being read), and the transform workers' peak memory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from edge.app import create_app
from tests.edge.conftest import edge_config
from tests.hardening.conftest import RSS_BOUND_KIB, HostileEdge
from tests.hardening.servers import (
    bytes_read,
    http_status,
    raw_get,
    reset_peak_rss,
    status_kib,
    transform_workers,
)
from tests.hardening.test_requests import assert_one_line
from transforms.pool import TransformPool

HOSTILE = [
    ("bomb.png", 413, "50000x50000"),
    ("bomb.jpg", 413, "50000x50000"),
    ("bomb-65500.jpg", 413, "65500x65500"),
    ("frames.gif", 413, "100000 frames"),
    ("polyglot.jpg", 422, "cannot be read"),
    ("archive.jpg", 415, "not an image"),
    ("vector.svg", 415, "not an image"),
    ("vector.png", 415, "not an image"),
    ("document.pdf", 415, "not an image"),
    ("empty.jpg", 415, "not an image"),
    ("truncated.jpg", 422, "cannot be decoded"),
    ("header-only.jpg", 422, "cannot be"),
    ("truncated.png", 422, "cannot be decoded"),
    ("corrupt.jpg", 422, "cannot be read"),
    ("huge.jpg", 413, "max_src_bytes"),
]


def test_every_hostile_file_is_listed(hostile_edge: HostileEdge) -> None:
    assert {name for name, _, _ in HOSTILE} == set(hostile_edge.expected)


@pytest.mark.parametrize(("name", "status", "says"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_images_are_refused_quickly(
    hostile_edge: HostileEdge, name: str, status: int, says: str
) -> None:
    assert hostile_edge.expected[name] == status
    started = time.perf_counter()
    r = raw_get(hostile_edge.service.port, f"/img/{name}?w=100".encode())
    assert time.perf_counter() - started < 2.0
    assert_one_line(r, status, says)
    assert http_status(hostile_edge.service.url + "/healthz") == 200


@pytest.mark.parametrize("name", ["archive.jpg", "vector.svg", "document.pdf", "empty.jpg"])
def test_raw_refuses_what_is_not_an_accepted_image(hostile_edge: HostileEdge, name: str) -> None:
    assert_one_line(raw_get(hostile_edge.service.port, f"/raw/{name}".encode()), 415, "not an")


def test_raw_passes_originals_unread_and_unsniffable(hostile_edge: HostileEdge) -> None:
    """/raw never decodes: a bomb's bytes are harmless to the edge. A polyglot goes out as
    image/jpeg with `nosniff`, so no browser treats it as anything but an image."""
    for name in ("bomb.png", "polyglot.jpg"):
        r = raw_get(hostile_edge.service.port, f"/raw/{name}".encode())
        assert r.status == 200
        assert r.body == (hostile_edge.images / name).read_bytes()
        assert r.header("Content-Type") in ("image/png", "image/jpeg")
        assert r.header("X-Content-Type-Options") == "nosniff"


def test_50_mb_file_is_refused_without_being_read(hostile_edge: HostileEdge) -> None:
    """The dir source checks the size before reading: /proc/PID/io shows the edge read a few
    KB (the request itself), not 50 MB."""
    pid = hostile_edge.service.pid
    for route in (b"/img/huge.jpg?w=10", b"/raw/huge.jpg"):
        before = bytes_read(pid)
        assert raw_get(hostile_edge.service.port, route).status == 413
        assert bytes_read(pid) - before < 1 << 20


class StreamingSource:
    """A bare asyncio HTTP server streaming a 50 MB body at ~25 MB/s, counting what it sent."""

    TOTAL = 50 * 1024 * 1024
    CHUNK = 256 * 1024

    def __init__(self, content_length: bool) -> None:
        self.content_length = content_length
        self.sent = 0
        self.finished = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        length = f"Content-Length: {self.TOTAL}\r\n" if self.content_length else ""
        head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
        writer.write((head + length + "\r\n").encode())
        body = b"\xff\xd8\xff" + b"\0" * (self.CHUNK - 3)
        try:
            while self.sent < self.TOTAL:
                writer.write(body)
                await writer.drain()
                self.sent += len(body)
                await asyncio.sleep(0.01)
            self.finished = True
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_http_source_over_the_limit_is_cut_short(
    aiohttp_client, tmp_path: Path, content_length: bool
) -> None:
    source = StreamingSource(content_length)
    server = await asyncio.start_server(source.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = edge_config(tmp_path)
    config = config.__class__(
        **{
            **config.__dict__,
            "source": config.source.__class__(type="http", url=f"http://127.0.0.1:{port}/"),
            "transforms": config.transforms.__class__(processes=1, max_src_bytes=1 << 20),
        }
    )
    pool = TransformPool(processes=1, max_queue=4, timeout_s=10)
    await pool.start()
    try:
        client: TestClient = await aiohttp_client(create_app(config, pool=pool))
        started = time.perf_counter()
        r = await client.get("/img/big.jpg?w=10")
        elapsed = time.perf_counter() - started
        assert r.status == 413 and "max_src_bytes" in await r.text()
        assert elapsed < 1.5  # the whole body would take ~2 s more to arrive
        await asyncio.sleep(0.3)
        assert not source.finished
        # socket buffers hold a few MB at most; 50 MB were never pulled
        assert source.sent < 12 * 1024 * 1024, source.sent
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


def test_worker_memory_stays_bounded(hostile_edge: HostileEdge) -> None:
    """Every hostile file, then the heaviest legitimate renders the limits allow; the peak
    RSS (VmHWM) of each transform worker stays under RSS_BOUND_KIB and no worker died."""
    port = hostile_edge.service.port
    workers = transform_workers(hostile_edge.service.pid)
    assert len(workers) == 2, workers
    for pid in workers:
        reset_peak_rss(pid)
    for name, status, _ in HOSTILE:
        for width in (100, 4096):
            assert raw_get(port, f"/img/{name}?w={width}&fm=png".encode()).status == status
    heavy = [
        "large.jpg?w=4096&h=4096&fit=fill&enlarge=1&fm=png",
        "large.jpg?w=4096&h=4096&fit=fill&enlarge=1&fm=webp",
        "large.jpg?w=4096&h=4096&fit=cover&gravity=attention&enlarge=1&fm=jpeg",
        "hubble.jpg?w=2048&h=2048&fit=cover&enlarge=1&fm=avif",
        "alpha.png?w=2048&h=2048&fit=contain&enlarge=1&blur=20&fm=png",
    ]
    for query in heavy:
        assert raw_get(port, f"/img/{query}".encode()).status == 200, query
    peaks = {pid: status_kib(pid, "VmHWM") for pid in workers}
    assert transform_workers(hostile_edge.service.pid) == workers  # none crashed or replaced
    assert all(0 < peak < RSS_BOUND_KIB for peak in peaks.values()), peaks
    print(f"transform worker peak RSS (MiB): {[round(p / 1024) for p in peaks.values()]}")
