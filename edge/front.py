"""The front of the edge: what a request meets before aiohttp's router.

A fresh memory hit on an `/img` request line the edge has already resolved (edge/memo.py)
needs nothing the router gives: the memo names the variant and the route's kept headers, the
memory tier holds the body. So the front answers those at once, counted exactly as the `img`
route counts them (`imgcdn_edge_requests_total{route="img"}`, the request latency, the
memory hit), and hands every other request to the application unchanged: its routes, the
catch-all, the error answers. Measured (wrk `-c32` on the hit scenario, alternating, 3 pairs):
47-54 -> 39-43 us of CPU per hit; routing, `Application._handle` and the route wrapper were
~20 % of a hit.

aiohttp has no public hook in front of its router (middlewares run after it), so the front
takes the place of the application's `_handle`, which is what its server calls for every
request (`Application._make_handler`); tests/edge/test_hotpath.py fails if that changes.
"""

from __future__ import annotations

import time

from aiohttp import web

from edge.appkeys import IMG_ROUTES, METRICS
from edge.img import IMG, ImgRoute, fresh_hit
from edge.middleware import error_response


def install_front(app: web.Application) -> None:
    """Answer `app`'s fresh memory hits before routing (call once, before it is served)."""
    behind = app._handle
    known = app[IMG_ROUTES].get  # (raw path with query, Accept) -> ImgRoute
    done = app[METRICS].request_done

    async def front(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            started = time.perf_counter()
            headers = request.headers
            route: ImgRoute | None = known((request.raw_path, headers.get("Accept")))
            if route is not None and "Expect" not in headers:  # aiohttp's router handles Expect
                try:
                    response = fresh_hit(app, route, request)
                except Exception as exc:  # as the route's wrapper would: an answer, not a trace
                    response = error_response(request, exc)
                if response is not None:
                    done(IMG, response.status, time.perf_counter() - started)
                    return response
        return await behind(request)

    app._handle = front  # type: ignore[method-assign]
