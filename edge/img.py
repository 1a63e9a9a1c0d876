"""Handlers for `/img/{path}` (transformed) and `/raw/{path}` (original bytes)."""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import cast

from aiohttp import web

from edge.appkeys import CONFIG, LIMITS, METRICS, POOL, VARIANTS
from edge.keys import RAW_FORMAT, RAW_TOKEN
from edge.paths import clean_path
from edge.responses import image_response
from edge.signing import verify
from edge.sources import Fetched
from edge.variants import Rendition
from transforms.errors import UnsupportedImage
from transforms.formats import CONTENT_TYPES, negotiate, sniff
from transforms.spec import Format, TransformSpec, parse_spec

RAW_TYPES = {**CONTENT_TYPES, "tiff": "image/tiff", "heif": "image/heif"}


async def handle_img(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if config.security.signing_key:
        verify(request.raw_path, config.security.signing_key)
    path = clean_path(request.match_info["path"])
    spec = parse_spec(request.query.items(), request.app[LIMITS])
    fmt, vary = negotiate(
        spec.format, request.headers.get("Accept"), config.transforms.auto_formats
    )
    spec = dataclasses.replace(
        spec,
        format=spec.format if fmt == "source" else cast(Format, fmt),  # "source": keep it
        progressive=config.transforms.jpeg_progressive,
    )
    served = await request.app[VARIANTS].serve(
        path, spec.cache_token(fmt), fmt, partial(render_image, request.app, spec)
    )
    return image_response(
        request, served, vary_accept=vary, stale_if_error_s=config.cache.stale_if_error_s
    )


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
    served = await request.app[VARIANTS].serve(path, RAW_TOKEN, RAW_FORMAT, check_raw, stage=None)
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
