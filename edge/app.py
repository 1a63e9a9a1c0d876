"""`create_app(config)`: the edge's routes, middlewares and the lifetime of everything shared."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from edge.appkeys import (
    AVATAR_ROUTES,
    BROADCAST,
    CONFIG,
    IMG_ROUTES,
    LIMITS,
    METRICS,
    ORIGINALS,
    POOL,
    PURGE_HOOKS,
    READINESS_CHECKS,
    REPORTS_SHARED,
    ROUTE_PARTS,
    SOURCE,
    TIERS,
    VARIANTS,
)
from edge.avatars import setup_avatars
from edge.broadcast import PurgeBroadcast
from edge.cache import DiskTier, MemoryTier, TieredCache
from edge.front import install_front
from edge.img import IMG, handle_img, handle_raw
from edge.memo import Interner, request_memo
from edge.metrics import create_metrics
from edge.middleware import add_catch_all, add_route
from edge.originals import Originals
from edge.purge import drop_locally, handle_purge, purge_paths_hook
from edge.records import RecordStore
from edge.sources import create_source
from edge.status import (
    default_checks,
    gc_ctx,
    handle_healthz,
    handle_metrics,
    handle_readyz,
    metrics_ctx,
)
from edge.variants import VariantService
from imgcdn.config import EdgeConfig
from imgcdn.serverlog import quiet_malformed_requests
from transforms.pool import TransformPool
from transforms.spec import Limits

ROUTES_KEPT = 4096  # memoized /img request resolutions (~1 KB each with their headers)
AVATAR_ROUTES_KEPT = 16384  # avatars: many hashes x a few sizes; Zipf traffic needs more
ROUTE_PARTS_KEPT = 1024  # distinct specs and avatar queries shared by the memoized routes


def create_app(
    config: EdgeConfig, *, pool: TransformPool | None = None, reports_shared: bool = True
) -> web.Application:
    """The edge app. `pool`: an already started pool to share (tests); the app then leaves
    it running at cleanup. `reports_shared`: this process reports the disk tier's size
    (one process of several sharing the disk)."""
    quiet_malformed_requests()
    app = web.Application()  # no middlewares: each handler is wrapped (edge/middleware.py)
    app[CONFIG] = config
    app[LIMITS] = Limits.from_config(config.transforms)
    app[METRICS] = create_metrics()
    app[REPORTS_SHARED] = reports_shared
    app[IMG_ROUTES] = request_memo(ROUTES_KEPT)
    app[AVATAR_ROUTES] = request_memo(AVATAR_ROUTES_KEPT)
    app[ROUTE_PARTS] = Interner(ROUTE_PARTS_KEPT)
    app[PURGE_HOOKS] = {"paths": purge_paths_hook(app)}
    app[READINESS_CHECKS] = default_checks(app)
    app.cleanup_ctx.extend(
        [pool_ctx(pool), cache_ctx, source_ctx, variants_ctx, broadcast_ctx, metrics_ctx, gc_ctx]
    )
    add_routes(app)
    setup_avatars(app)  # after the fixed routes: its pattern only takes hashes anyway
    add_catch_all(app)  # last: whatever no route above matched
    install_front(app)
    return app


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/img/{path:.+}", handle_img, IMG)
    add_route(app, "GET", "/raw/{path:.+}", handle_raw, "raw")
    add_route(app, "POST", "/_purge", handle_purge, "purge")
    add_route(app, "GET", "/metrics", handle_metrics, "metrics")
    add_route(app, "GET", "/healthz", handle_healthz, "healthz")
    add_route(app, "GET", "/readyz", handle_readyz, "readyz")


def pool_ctx(
    shared: TransformPool | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def transform_pool(app: web.Application) -> AsyncIterator[None]:
        if shared is not None:
            app[POOL] = shared
            yield
            return
        t = app[CONFIG].transforms
        pool = TransformPool(
            t.processes,
            t.max_queue,
            t.timeout_s,
            on_restart=app[METRICS].pool_restarts.inc,
            hold_bytes=t.held_source_bytes,
            decoded_bytes=t.decoded_source_bytes,
            nice=t.nice,
        )
        await pool.start()
        app[POOL] = pool
        yield
        await pool.close()

    return transform_pool


async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
    c = app[CONFIG].cache
    disk = DiskTier(c.disk_path, c.disk_bytes, on_error=app[METRICS].cache_error)
    await disk.open()
    shared = None
    if c.result_store is not None:
        # imported here: botocore is loaded only by edges that use S3
        from edge.result_store import ResultStore

        shared = ResultStore(c.result_store, on_error=app[METRICS].cache_error)
        await shared.start()
    app[TIERS] = TieredCache(MemoryTier(c.memory_bytes), disk, shared)
    app[ORIGINALS] = Originals(c.originals_bytes)
    yield
    if shared is not None:
        await shared.close()
    await disk.close()


async def source_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    source = create_source(config.source, config.transforms.max_src_bytes)
    await source.start()
    app[SOURCE] = source
    yield
    await source.close()


async def variants_ctx(app: web.Application) -> AsyncIterator[None]:
    c = app[CONFIG].cache
    tiers = app[TIERS]
    service = VariantService(
        app[SOURCE],
        tiers,
        RecordStore(tiers.disk),
        app[METRICS],
        max_age_s=c.max_age_s,
        stale_if_error_s=c.stale_if_error_s,
        admit=app[POOL].admit,
        originals=app[ORIGINALS],
    )
    app[VARIANTS] = service
    yield
    await service.close()


async def broadcast_ctx(app: web.Application) -> AsyncIterator[None]:
    broadcast = PurgeBroadcast(
        app[TIERS].disk, lambda field, values: drop_locally(app, field, values)
    )
    await broadcast.start()
    app[BROADCAST] = broadcast
    yield
    await broadcast.close()
