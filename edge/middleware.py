"""What wraps every edge handler: errors -> one-line responses, then request metrics.

Not aiohttp middlewares: their chain (plus the `_fix_request_current_app` layer aiohttp adds
whenever an app has any) cost ~16 us of CPU per request on the benchmark machine, a third of
a whole memory hit. Each route's handler is wrapped once instead (`add_route`), and a
catch-all route last answers unknown paths (404) and wrong methods (405) the same way.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.appkeys import METRICS
from edge.metrics import Metrics
from imgcdn.serverlog import LogThrottle
from transforms.errors import ImgcdnError, NotFound, Overloaded

log = logging.getLogger(__name__)

OTHER = "other"  # the route label of requests no named route matched


class Refusals(LogThrottle):
    """503s for a full transform queue, logged as one line a second at most: under overload a
    line per refusal was 4 % of the loop's time (~3,000 lines/s) and let anyone flood the log."""

    def note(self, reason: str) -> None:
        count = self.tick()
        if count:
            log.warning("503 to %d request(s) since the last report: %s", count, reason)


REFUSALS = Refusals()


def add_route(app: web.Application, method: str, path: str, handler: Handler, name: str) -> None:
    """Register `handler` under `name` (also its metrics `route` label), wrapped; GET
    routes answer HEAD too."""
    wrapped = instrumented(name, handler, app[METRICS])
    if method == "GET":
        app.router.add_get(path, wrapped, name=name)
    else:
        app.router.add_route(method, path, wrapped, name=name)


def add_catch_all(app: web.Application) -> None:
    """Last route: unknown paths and wrong methods, answered and counted like the others."""
    handler = instrumented(OTHER, handle_unmatched, app[METRICS])
    app.router.add_route("*", "/{tail:.*}", handler, name=OTHER)


def instrumented(route: str, handler: Handler, metrics: Metrics) -> Handler:
    """`handler` with errors turned into responses and the request counted under `route`."""
    done = metrics.request_done

    async def wrapped(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            try:
                response = await handler(request)
            except Exception as exc:
                response = error_response(request, exc)  # re-raises HTTP redirects
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            done(route, status, time.perf_counter() - started)

    return wrapped


async def handle_unmatched(request: web.Request) -> web.StreamResponse:
    """404, or 405 with `Allow` when another route serves this path with other methods."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name == OTHER:
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise NotFound("not found")


def text_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """One short text/plain line; errors are never cached downstream."""
    response = web.Response(status=status, text=message + "\n", content_type="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The one-line answer to a handler's exception (HTTP redirects are raised again)."""
    if isinstance(exc, ImgcdnError):
        headers = {}
        if isinstance(exc, Overloaded):
            headers["Retry-After"] = str(exc.retry_after)
            REFUSALS.note(exc.message)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.status >= 500 and not isinstance(exc, Overloaded):
            log.warning("%s %s -> %d %s", request.method, request.path_qs, exc.status, exc.message)
        return text_error(exc.status, exc.message, headers)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        keep = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return text_error(exc.status, (exc.reason or "error").lower(), keep)
    log.error("%s %s failed", request.method, request.path_qs, exc_info=exc)
    return text_error(500, "internal error")
