"""The origin application: routes, the JSON error middleware and the resources it owns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from imgcdn.config import OriginConfig
from imgcdn.serverlog import quiet_malformed_requests
from origin import lookups, photos, uploads, users
from origin.blobstore import open_blobstore
from origin.db import Database
from origin.inflight import InFlight
from origin.janitor import sweep_forever
from origin.keys import BLOBS, CONFIG, DATABASE, HTTP, INFLIGHT, METRICS, PURGER, SIGNING_KEY
from origin.metrics import Handler, OriginMetrics, route_of, timer
from origin.payload import MAX_JSON_BYTES
from origin.purge import Purger
from transforms.errors import ImgcdnError
from transforms.pipeline import configure_vips

log = logging.getLogger(__name__)

HTTP_ERRORS = {
    404: ("not_found", "path: no such route"),
    405: ("method_not_allowed", "method: not allowed on this route"),
    413: ("too_large", f"body: larger than {MAX_JSON_BYTES} bytes"),
}


def create_app(config: OriginConfig) -> web.Application:
    """A ready-to-run origin app; the database, blob store and HTTP client open at startup."""
    quiet_malformed_requests()
    app = web.Application(client_max_size=MAX_JSON_BYTES, middlewares=[error_middleware])
    app[CONFIG] = config
    key = config.upload_signing_key
    app[SIGNING_KEY] = key.encode("utf-8") if key else secrets.token_bytes(32)
    app[METRICS] = OriginMetrics()
    app[INFLIGHT] = InFlight()
    app.cleanup_ctx.append(resources)
    add = app.router
    add.add_post("/v1/users", users.create_user)
    add.add_get("/v1/me", users.show_me)
    add.add_post("/v1/uploads", uploads.reserve_upload)
    add.add_post("/v1/photos", photos.register_photo)
    add.add_get("/v1/photos", photos.list_photos)
    add.add_put("/v1/me/active-photo", photos.set_active_photo)
    add.add_delete("/v1/photos/{photo_id}", photos.delete_photo)
    add.add_get("/v1/avatars/{hash}", lookups.avatar_lookup)
    add.add_get("/v1/photos/{photo_id}/raw", lookups.photo_raw)
    add.add_get("/photos/{hash}", lookups.photo_by_hash)
    add.add_get("/healthz", lookups.healthz)
    add.add_get("/metrics", lookups.metrics)
    if config.storage.type == "local":
        add.add_put("/blobs/{key:.+}", uploads.receive_blob)
    return app


async def resources(app: web.Application) -> AsyncIterator[None]:
    """Open the database, blob store, HTTP client, purger and janitor; close them in reverse."""
    config = app[CONFIG]
    configure_vips()  # the same loader allow-list as the edge's workers, for upload probes
    app[DATABASE] = db = await Database.open(config.database_url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            app[BLOBS] = blobs = await stack.enter_async_context(
                open_blobstore(config, app[SIGNING_KEY])
            )
            app[HTTP] = http = await stack.enter_async_context(aiohttp.ClientSession())
            metrics = app[METRICS]
            app[PURGER] = purger = Purger(
                http,
                config.edges,
                config.purge_token,
                on_result=lambda result: metrics.purges.labels(result=result).inc(),
            )
            janitor = asyncio.create_task(sweep_forever(db, blobs, config.upload_url_ttl_s))
            yield
            janitor.cancel()
            await asyncio.gather(janitor, return_exceptions=True)
            await purger.close()
    finally:
        await db.close()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors become `{"error": {"code", "message"}}`; every request is counted and timed."""
    started = timer()
    response: web.StreamResponse
    try:
        with request.app[INFLIGHT].track():
            response = await handler(request)
    except ImgcdnError as err:
        if err.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, err.status, err.message)
        response = error_response(err.status, err.code, err.message)
    except web.HTTPException as exc:  # aiohttp's own: no route, wrong method, body too large
        code, message = HTTP_ERRORS.get(exc.status, ("http_error", exc.reason))
        response = error_response(exc.status, code, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(500, "internal", "internal error")
    request.app[METRICS].observe(route_of(request), response.status, timer() - started)
    return response


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
