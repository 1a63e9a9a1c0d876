"""The load generators against a tiny real aiohttp server: do they count what the server saw?"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections import Counter

import pytest
from aiohttp import web

from benchmarks.loadgen import run_load
from benchmarks.wrk import run_wrk, wrk_binary, wrk_threads

BODY = b"x" * 1000
MISSING = b"no such thing"
SLOW_S = 0.03


@pytest.fixture
async def server(aiohttp_server):
    seen: Counter[str] = Counter()

    async def ok(request: web.Request) -> web.Response:
        seen["ok"] += 1
        return web.Response(body=BODY)

    async def missing(request: web.Request) -> web.Response:
        seen["missing"] += 1
        return web.Response(status=404, body=MISSING)

    async def slow(request: web.Request) -> web.Response:
        seen["slow"] += 1
        await asyncio.sleep(SLOW_S)
        return web.Response(body=b"s")

    async def numbered(request: web.Request) -> web.Response:
        seen["p" + request.match_info["n"]] += 1
        return web.Response(body=b"n")

    app = web.Application()
    app.router.add_get("/p/{n}", numbered)
    app.router.add_get("/ok", ok)
    app.router.add_get("/missing", missing)
    app.router.add_get("/slow", slow)
    srv = await aiohttp_server(app)
    return str(srv.make_url("")), seen


async def test_counts_statuses_bytes_and_duration(server) -> None:
    base, seen = server
    paths = itertools.cycle(["/ok", "/ok", "/missing"])
    out = await run_load(base, paths, connections=4, duration_s=1.5)
    m = out.measurement
    assert m.requests > 50
    assert m.requests == seen["ok"] + seen["missing"]
    assert m.statuses == {"200": seen["ok"], "404": seen["missing"]}
    assert m.non_2xx_3xx == seen["missing"] and m.errors == seen["missing"]
    assert m.socket_errors == 0
    assert m.body_bytes == len(BODY) * seen["ok"] + len(MISSING) * seen["missing"]
    assert 1.4 <= m.duration_s <= 3.0
    assert m.rps == pytest.approx(m.requests / m.duration_s)
    assert len(out.latencies_ms) == m.requests
    assert abs(seen["ok"] - 2 * seen["missing"]) <= 4 * 2  # the 2:1 cycle, give or take in-flight


async def test_latencies_are_real_and_the_loop_is_closed(server) -> None:
    base, seen = server
    out = await run_load(base, itertools.repeat("/slow"), connections=3, duration_s=1.0)
    m = out.measurement
    assert min(out.latencies_ms) >= SLOW_S * 1000 * 0.95
    assert SLOW_S * 1000 <= m.latency(50) <= SLOW_S * 1000 * 4
    assert m.latency(99) >= m.latency(50)
    # closed loop: at most one request in flight per connection
    assert m.requests <= 3 * (m.duration_s / SLOW_S) + 3
    assert m.requests == seen["slow"]


async def test_finite_path_list_runs_each_once_and_records_sizes(server) -> None:
    base, seen = server
    paths = ["/ok"] * 7 + ["/missing"] * 3
    out = await run_load(base, paths, connections=2, duration_s=None, record_sizes=True)
    assert out.measurement.requests == 10
    assert seen == Counter({"ok": 7, "missing": 3})
    assert out.sizes == {"/ok": len(BODY)}  # only 200s are recorded


async def test_refused_connections_are_socket_errors() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = await run_load(
        f"http://127.0.0.1:{port}", itertools.repeat("/"), connections=2, duration_s=0.3
    )
    m = out.measurement
    assert m.requests == 0 and m.socket_errors > 0
    assert m.errors == m.socket_errors
    assert all(k.startswith("error:") for k in m.statuses)


@pytest.mark.skipif(wrk_binary() is None, reason="wrk is not installed")
async def test_wrk_counts_match_the_server(server) -> None:
    base, seen = server
    m = await run_wrk(
        base, paths=["/ok", "/ok", "/missing"], connections=2, duration_s=1, timeout_s=2
    )
    assert m.generator == "wrk"
    assert m.requests > 50
    # wrk may cut requests in flight at the deadline: the server saw at least what wrk counted
    assert 0 <= seen["ok"] + seen["missing"] - m.requests <= 2
    assert m.statuses["404"] == m.non_2xx_3xx > 0
    assert m.statuses["200"] + m.statuses["404"] == m.requests
    assert m.statuses["200"] == pytest.approx(2 * m.statuses["404"], abs=4)
    assert 0 < m.latency(50) <= m.latency(99) <= m.latency(100)


@pytest.mark.skipif(wrk_binary() is None, reason="wrk is not installed")
async def test_wrk_once_answers_every_path_then_stops(server) -> None:
    base, seen = server
    paths = [f"/p/{n}" for n in range(500)]
    m = await run_wrk(base, paths=paths, connections=4, duration_s=30, once=True)
    assert m.duration_s < 10  # it did not wait for the 30 s cap
    assert all(seen[f"p{n}"] >= 1 for n in range(500))
    # requests in flight when a thread's share ran out repeat its last line (one of the last)
    repeated = {name: count for name, count in seen.items() if count > 1}
    assert sum(repeated.values()) - len(repeated) < 4
    assert all(int(name[1:]) >= 500 - 4 for name in repeated)
    assert 500 <= m.requests <= 503 and m.errors == 0


@pytest.mark.skipif(wrk_binary() is None, reason="wrk is not installed")
async def test_wrk_fixed_path_latency(server) -> None:
    base, seen = server
    m = await run_wrk(base, fixed_path="/slow", connections=2, duration_s=1, timeout_s=2)
    assert m.requests > 10 and seen["slow"] >= m.requests
    assert m.latency(50) >= SLOW_S * 1000 * 0.95
    assert m.errors == 0


async def test_rate_paces_the_load(server) -> None:
    base, seen = server
    out = await run_load(base, itertools.repeat("/ok"), connections=4, duration_s=1.0, rate=200)
    m = out.measurement
    assert 170 <= m.requests <= 215  # ~200 in 1 s, not the thousands a closed loop would send
    assert m.requests == seen["ok"]


@pytest.fixture
async def raw_server():
    """A bare HTTP/1.1 server that notes how many requests each read brought at once."""
    batches: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            heads = buffer.count(b"\r\n\r\n")
            if heads == 0:
                continue
            batches.append(heads)
            complete = buffer[: buffer.rindex(b"\r\n\r\n") + 4]
            buffer = buffer[len(complete) :]
            hosts = complete.lower().count(b"\r\nhost: ")
            answer = b"200 OK" if hosts == heads else b"400 No Host"  # as aiohttp would
            writer.write((b"HTTP/1.1 " + answer + b"\r\nContent-Length: 2\r\n\r\nok") * heads)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", batches
    server.close()


@pytest.mark.skipif(wrk_binary() is None, reason="wrk is not installed")
@pytest.mark.parametrize("pipeline", [1, 4])
async def test_wrk_pipeline_sends_requests_at_once(raw_server, pipeline: int) -> None:
    base, batches = raw_server
    m = await run_wrk(base, fixed_path="/x", connections=2, duration_s=1, pipeline=pipeline)
    assert m.requests > 100 and m.errors == 0
    assert (m.latency(50) > 0) is (pipeline == 1)  # a batch's time is no request's latency
    # every write of wrk's holds `pipeline` requests (a read may rarely split or merge them)
    assert max(batches) == pipeline
    assert sum(1 for b in batches if b == pipeline) >= 0.9 * len(batches)
    assert 0 <= sum(batches) - m.requests <= 2 * pipeline * 2


def test_wrk_takes_a_thread_per_cpu_and_one_when_pipelining() -> None:
    cpus = os.cpu_count() or 1
    assert wrk_threads(32) == min(32, cpus) and wrk_threads(1) == 1
    assert wrk_threads(32, pipeline=8) == 1  # one thread drives it at a third of a core


async def test_wrk_pipeline_needs_one_fixed_path() -> None:
    with pytest.raises(ValueError, match="pipeline"):
        await run_wrk("http://127.0.0.1:9", paths=["/a"], connections=1, duration_s=1, pipeline=2)
    with pytest.raises(ValueError, match="pipeline"):
        await run_wrk(
            "http://127.0.0.1:9",
            fixed_path="/a",
            connections=1,
            duration_s=1,
            pipeline=2,
            delay_ms=5,
        )
