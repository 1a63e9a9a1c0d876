"""The front of the edge: what a request meets before aiohttp's router.

A fresh memory hit on a request line the edge has already resolved (edge/memo.py: `/img` and
avatar lines, per raw path and `Accept`) needs nothing the router gives: the memo names the
variant and the route's kept headers, the memory tier holds the body (and, for avatars, the
lookup cache the photo, or that there is none and the `d=` default stands in). So the front
answers those at once, through the very functions the routes use first (`img.fresh_hit`,
`avatars.fresh_avatar_hit`), counted exactly as the route counts them
(`imgcdn_edge_requests_total{route}`, the request latency, the memory hit).
Every other request goes to the application unchanged: its routes, the catch-all, the error
answers. Measured (wrk `-c32`, `/img` hits, alternating, 3 pairs): 47-54 -> 39-43 us of CPU
per hit; routing, `Application._handle` and the route wrapper were ~20 % of a hit.

aiohttp has no public hook in front of its router (middlewares run after it), so the front
takes the place of the application's `_handle`, which is what its server calls for every
request (`Application._make_handler`); tests/edge/test_hotpath.py fails if that changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from edge.appkeys import AVATAR_ROUTES, IMG_ROUTES, METRICS
from edge.avatars import AVATAR, fresh_avatar_hit
from edge.img import IMG, fresh_hit
from edge.middleware import error_response

Answer = Callable[[], web.Response | None]


def install_front(app: web.Application) -> None:
    """Answer `app`'s fresh memory hits before routing (call once, before it is served)."""
    behind = app._handle
    img_routes = app[IMG_ROUTES].get  # (raw path with query, Accept) -> img.ImgRoute
    avatar_routes = app[AVATAR_ROUTES].get  # the same -> avatars.AvatarRoute
    done = app[METRICS].request_done

    async def front(request: web.Request) -> web.StreamResponse:
        # `Expect: 100-continue` is aiohttp's to answer first (in `_handle`)
        if request.method == "GET" and "Expect" not in request.headers:
            started = time.perf_counter()
            memo_key = (request.raw_path, request.headers.get("Accept"))
            if (img := img_routes(memo_key)) is not None:
                response = answered(request, lambda: fresh_hit(app, img, request))
                route = IMG
            elif (avatar := avatar_routes(memo_key)) is not None:
                now = time.time()
                response = answered(request, lambda: fresh_avatar_hit(app, avatar, request, now))
                route = AVATAR
            else:
                response = None
            if response is not None:
                done(route, response.status, time.perf_counter() - started)
                return response
        return await behind(request)

    app._handle = front  # type: ignore[method-assign]


def answered(request: web.Request, answer: Answer) -> web.Response | None:
    """`answer()`, or what the route's wrapper would make of its failure (never a trace)."""
    try:
        return answer()
    except Exception as exc:
        return error_response(request, exc)
