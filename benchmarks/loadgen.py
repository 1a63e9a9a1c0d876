"""Built-in closed-loop HTTP load generator on aiohttp's client.

`connections` coroutines share one keep-alive connection pool of that size; each sends a
request, reads the whole body, records the latency, and sends the next one, until the duration
is over or the URL iterator runs dry. Every latency is kept (a few hundred thousand floats at
most), so percentiles are exact. One Python process tops out at a few thousand requests/s, so
for hit-path figures prefer wrk (`benchmarks/wrk.py`); the baseline is always measured with the
same generator, so the ratio stays comparable.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from benchmarks.measure import Measurement, percentile_curve


@dataclass
class LoadState:
    """Live counters a progress line can read while the load runs."""

    started: float = 0.0
    requests: int = 0
    errors: int = 0
    done: bool = False


@dataclass
class LoadOutcome:
    measurement: Measurement
    sizes: dict[str, int] = field(default_factory=dict)  # path -> body bytes (record_sizes)
    latencies_ms: list[float] = field(default_factory=list)


async def run_load(
    base_url: str,
    paths: Iterable[str],
    *,
    connections: int,
    duration_s: float | None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    state: LoadState | None = None,
    record_sizes: bool = False,
    rate: float | None = None,
) -> LoadOutcome:
    """Drive `base_url + path` for each path; stop after `duration_s` (None: when paths end).

    `rate` (requests/s over all connections) paces each connection on a fixed schedule
    instead of sending the next request as soon as the last one is answered.
    """
    if duration_s is None and not hasattr(paths, "__len__"):
        raise ValueError("an endless path iterator needs a duration")
    state = state or LoadState()
    base = base_url.rstrip("/")
    source: Iterator[str] = iter(paths)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    sizes: dict[str, int] = {}
    body_bytes = 0
    socket_errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    start = time.perf_counter()
    deadline = start + duration_s if duration_s is not None else float("inf")
    state.started = start

    interval = connections / rate if rate else 0.0

    async def worker(session: aiohttp.ClientSession, slot: int) -> None:
        nonlocal body_bytes, socket_errors
        clock = time.perf_counter
        next_at = start + interval * slot / connections
        while clock() < deadline:
            next_at = await wait_turn(next_at, interval)
            path = next(source, None)
            if path is None:
                return
            t0 = clock()
            try:
                async with session.get(URL(base + path, encoded=True)) as resp:
                    body = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                socket_errors += 1
                statuses[f"error:{type(err).__name__}"] += 1
                state.errors += 1
                await asyncio.sleep(0.01)  # a refused connect must not spin the loop
                continue
            latencies.append((clock() - t0) * 1000.0)
            statuses[str(status)] += 1
            body_bytes += len(body)
            state.requests += 1
            if not 200 <= status < 400:
                state.errors += 1
            if record_sizes and status == 200:
                sizes[path] = len(body)

    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=dict(headers or {}),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    ) as session:
        await asyncio.gather(*(worker(session, i) for i in range(connections)))
    elapsed = time.perf_counter() - start
    state.done = True
    non_ok = sum(n for s, n in statuses.items() if s.isdigit() and not 200 <= int(s) < 400)
    measurement = Measurement(
        generator="builtin",
        connections=connections,
        duration_s=elapsed,
        requests=len(latencies),
        statuses=dict(sorted(statuses.items())),
        non_2xx_3xx=non_ok,
        socket_errors=socket_errors,
        body_bytes=body_bytes,
        curve=percentile_curve(latencies),
    )
    return LoadOutcome(measurement, sizes, latencies)


async def wait_turn(next_at: float, interval: float) -> float:
    """Paced load (`interval` > 0, per connection): sleep until `next_at`, return the time of
    the connection's next request. Unpaced: return at once."""
    if not interval:
        return next_at
    delay = next_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    return next_at + interval
