"""Handlers for `/img/{path}` (transformed) and `/raw/{path}` (original bytes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import cast

from aiohttp import web

from edge.appkeys import CONFIG, IMG_ROUTES, LIMITS, METRICS, POOL, ROUTE_PARTS, SOURCE, VARIANTS
from edge.headers import HIT_MEMORY
from edge.keys import RAW_FORMAT, RAW_TOKEN
from edge.paths import clean_path
from edge.responses import HeaderSlot, hit_headers, image_response
from edge.signing import verify
from edge.sources import Fetched
from edge.variants import Rendition, Served
from transforms.errors import UnsupportedImage
from transforms.formats import CONTENT_TYPES, negotiate, sniff
from transforms.spec import Format, TransformSpec, parse_spec

RAW_TYPES = {**CONTENT_TYPES, "tiff": "image/tiff", "heif": "image/heif"}
IMG = "img"  # the route's name, and its `route` label in the request metrics


@dataclass(slots=True, eq=False)
class ImgRoute(HeaderSlot):
    """What an `/img` request line + `Accept` resolve to. Pure (signature, path checks, spec,
    negotiated format, cache token), so it is memoized per (raw path, Accept): see memo.py.
    Its own `HeaderSlot`, like `AvatarRoute`; the spec is shared (`ROUTE_PARTS`)."""

    path: str
    source_id: str
    spec: TransformSpec
    token: str
    fmt: str
    vary: bool


async def handle_img(request: web.Request) -> web.Response:
    app = request.app
    memo_key = (request.raw_path, request.headers.get("Accept"))
    route = app[IMG_ROUTES].get(memo_key)
    if route is not None:
        return await answer_img(app, route, request)
    route = resolve_img(request)
    response = await answer_img(app, route, request)
    # Kept once it has answered: the 503s and 404s of URLs never seen before (every URL of
    # an overload) would otherwise push out the routes that hits use.
    app[IMG_ROUTES].put(memo_key, route)
    return response


async def answer_img(app: web.Application, route: ImgRoute, request: web.Request) -> web.Response:
    response = fresh_hit(app, route, request)
    if response is not None:
        return response
    served = await app[VARIANTS].serve(
        route.path, route.token, route.fmt, partial(render_image, app, route.spec)
    )
    return image_response(
        request,
        served,
        vary_accept=route.vary,
        stale_if_error_s=app[CONFIG].cache.stale_if_error_s,
        slot=route,
    )


def fresh_hit(app: web.Application, route: ImgRoute, request: web.Request) -> web.Response | None:
    """The answer to `request` when its variant is fresh in this process's memory (counted
    as a memory hit), else None. Synchronous: edge/front.py calls it before any routing."""
    hit = app[VARIANTS].fresh_entry(route.source_id, route.token, route.fmt)
    if hit is None:
        return None
    if "If-None-Match" not in request.headers:
        kept = hit_headers(route, *hit)  # the common case: nothing to build
        if kept is not None:
            return web.Response(body=hit[0].body, headers=kept)
    return image_response(
        request,
        Served(hit[0], HIT_MEMORY, hit[1]),
        vary_accept=route.vary,
        stale_if_error_s=app[CONFIG].cache.stale_if_error_s,
        slot=route,
    )


def resolve_img(request: web.Request) -> ImgRoute:
    """Check and parse an `/img` request (400/403 on refusal)."""
    app = request.app
    config = app[CONFIG]
    if config.security.signing_key:
        verify(request.raw_path, config.security.signing_key)
    path = clean_path(request.match_info["path"])
    spec = parse_spec(request.query.items(), app[LIMITS])
    fmt, vary = negotiate(
        spec.format, request.headers.get("Accept"), config.transforms.auto_formats
    )
    spec = spec.for_output(
        cast(Format, spec.format if fmt == "source" else fmt),  # "source": keep it
        config.transforms.jpeg_progressive,
    )
    token = spec.cache_token(fmt)
    return ImgRoute(path, app[SOURCE].identity(path), app[ROUTE_PARTS](spec), token, fmt, vary)


async def render_image(app: web.Application, spec: TransformSpec, fetched: Fetched) -> Rendition:
    pool, metrics = app[POOL], app[METRICS]
    started = time.perf_counter()
    try:
        rendered = await pool.render(fetched.body, spec, app[LIMITS])
    finally:
        metrics.transform_queue.set(pool.queued)
    metrics.transform_seconds.observe(time.perf_counter() - started)
    return Rendition(rendered.body, rendered.content_type)


async def handle_raw(request: web.Request) -> web.Response:
    path = clean_path(request.match_info["path"])
    variants = request.app[VARIANTS]
    source_id = request.app[SOURCE].identity(path)
    served = variants.fresh_in_memory(source_id, RAW_TOKEN, RAW_FORMAT)
    if served is None:
        served = await variants.serve(path, RAW_TOKEN, RAW_FORMAT, check_raw, stage=None)
    return image_response(
        request,
        served,
        vary_accept=False,
        stale_if_error_s=request.app[CONFIG].cache.stale_if_error_s,
    )


async def check_raw(fetched: Fetched) -> Rendition:
    """Originals pass unchanged, but only images in an accepted format (magic bytes)."""
    fmt = sniff(fetched.body)
    if fmt is None:
        raise UnsupportedImage(
            "not an image in an accepted format (jpeg, png, webp, gif, avif, tiff)"
        )
    declared = fetched.content_type or ""
    return Rendition(fetched.body, declared if declared.startswith("image/") else RAW_TYPES[fmt])
