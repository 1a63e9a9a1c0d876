"""Slow and idle clients against a running edge (`edge.keepalive_timeout_s` = 1 s here)."""

from __future__ import annotations

import asyncio
import time

from tests.hardening.conftest import KEEPALIVE_S, HostileEdge
from tests.hardening.servers import http_status

IDLE_CONNECTIONS = 500


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1024), within_s) == b""
    except (TimeoutError, ConnectionError):
        return False


async def test_headers_sent_one_byte_a_second_are_dropped(hostile_edge: HostileEdge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile_edge.service.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60
    started = time.monotonic()
    dropped_after = None
    try:
        for byte in request:  # bounded: 80 bytes, at most ~80 s, dropped after ~1 s
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                dropped_after = time.monotonic() - started
                break
            if await closed_by_server(reader, 1.0):
                dropped_after = time.monotonic() - started
                break
    finally:
        writer.close()
    assert dropped_after is not None, "a slowloris client was never dropped"
    assert KEEPALIVE_S * 0.8 < dropped_after < KEEPALIVE_S + 2.5, dropped_after
    assert http_status(hostile_edge.service.url + "/healthz") == 200


async def test_idle_connections_do_not_stop_others_being_served(hostile_edge: HostileEdge) -> None:
    port = hostile_edge.service.port
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(await asyncio.open_connection("127.0.0.1", port))
        # half of them start a request and stall mid-header, the rest say nothing
        for _, writer in idle[::2]:
            writer.write(b"GET /img/astronaut.jpg HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.1)
        started = time.monotonic()
        for n in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /img/astronaut.jpg?w={40 + n} HTTP/1.1\r\nHost: x\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            reply = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert time.monotonic() - started < 5.0
        # ...and the idle ones are all closed by the server after the keep-alive timeout
        results = await asyncio.gather(
            *(closed_by_server(reader, KEEPALIVE_S + 3.0) for reader, _ in idle)
        )
        assert all(results), f"{results.count(False)} idle connections were still open"
    finally:
        for _, writer in idle:
            writer.close()
    assert http_status(hostile_edge.service.url + "/healthz") == 200
