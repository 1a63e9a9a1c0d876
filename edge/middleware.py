"""The two middlewares, outermost first: request metrics, then errors -> one-line responses."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.appkeys import METRICS
from transforms.errors import ImgcdnError, Overloaded

log = logging.getLogger(__name__)


def route_name(request: web.Request) -> str:
    """The metrics `route` label: the route's name, or `other` (no unbounded label values)."""
    route = request.match_info.route
    name = getattr(route, "name", None)
    return name or "other"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_name(request)
        metrics.requests.labels(route=route, status=str(status)).inc()
        metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)


def text_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """One short text/plain line; errors are never cached downstream."""
    response = web.Response(status=status, text=message + "\n", content_type="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ImgcdnError as err:
        headers = {}
        if isinstance(err, Overloaded):
            headers["Retry-After"] = str(err.retry_after)
        if err.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if err.status >= 500:
            log.warning("%s %s -> %d %s", request.method, request.path_qs, err.status, err.message)
        return text_error(err.status, err.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        keep = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return text_error(exc.status, (exc.reason or "error").lower(), keep)
    except Exception:
        log.exception("%s %s failed", request.method, request.path_qs)
        return text_error(500, "internal error")
