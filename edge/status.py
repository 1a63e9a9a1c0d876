"""Operational endpoints: `/healthz` (the process answers), `/readyz` (every readiness check
passes) and `/metrics` (Prometheus text).

Readiness checks are a list under `app[READINESS_CHECKS]`: create_app adds the pool and the
disk cache; avatars add "origin reachable".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from aiohttp import web

from edge.appkeys import (
    METRICS,
    ORIGINALS,
    POOL,
    READINESS_CHECKS,
    REPORTS_SHARED,
    TIERS,
    ReadinessCheck,
)
from edge.metrics import CONTENT_TYPE, gc_timer, render_metrics
from edge.middleware import text_error

CHECK_TIMEOUT_S = 2.0


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


async def handle_readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS_CHECKS]
    results = await asyncio.gather(*(run_check(check) for check in checks))
    problems = [problem for problem in results if problem]
    if problems:
        return text_error(503, "not ready: " + "; ".join(problems), {"Retry-After": "1"})
    return web.Response(text="ready\n", headers={"Cache-Control": "no-store"})


async def run_check(check: ReadinessCheck) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check()
    except TimeoutError:
        return f"{getattr(check, '__name__', 'check')} timed out"
    except Exception as err:  # a readiness check must answer, never raise
        return f"{getattr(check, '__name__', 'check')} failed: {err.__class__.__name__}"


def default_checks(app: web.Application) -> list[ReadinessCheck]:
    async def transform_pool() -> str | None:
        return None if app[POOL].healthy else "transform pool is not healthy"

    async def disk_cache() -> str | None:
        return await app[TIERS].disk.probe()

    return [transform_pool, disk_cache]


# With several processes any one answers a scrape from the values in files: the others' counts
# and gauges are at most this old
FLUSH_INTERVAL_S = 1.0


def refresh_metrics(app: web.Application) -> None:
    """Set the gauges and add the request tallies to the counters (`Metrics.flush`)."""
    metrics, tiers = app[METRICS], app[TIERS]
    metrics.flush()
    metrics.transform_queue.set(app[POOL].queued)
    metrics.cache_bytes.labels(tier="memory").set(tiers.memory.size_bytes())
    metrics.cache_bytes.labels(tier="originals").set(app[ORIGINALS].size_bytes())
    if app[REPORTS_SHARED]:  # the disk is shared: one process reports it, or the sum lies
        metrics.cache_bytes.labels(tier="disk").set(tiers.disk.size_bytes())


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Refresh the gauges and counters now and then, and once more at the end."""

    async def refresh() -> None:
        while True:
            refresh_metrics(app)
            await asyncio.sleep(FLUSH_INTERVAL_S)

    task = asyncio.create_task(refresh())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    app[METRICS].flush()  # a stopped process's counts stay in the files of multiprocess mode


async def gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """Time the cyclic GC's collections while the app lives (`gc_timer`)."""
    hook = gc_timer(app[METRICS])
    gc.callbacks.append(hook)
    yield
    gc.callbacks.remove(hook)


async def handle_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    refresh_metrics(request.app)
    body = render_metrics(metrics)
    return web.Response(
        body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )
