"""Turn a served variant into an aiohttp response: headers from `headers.py`, 304, HEAD."""

from __future__ import annotations

import time

from aiohttp import web

from edge.headers import ImageMeta, cache_control, etag_matches, image_headers
from edge.variants import Served


def image_response(
    request: web.Request, served: Served, *, vary_accept: bool, stale_if_error_s: float
) -> web.Response:
    """200 with the body (aiohttp leaves it out for HEAD, keeping Content-Length), or 304."""
    now = time.time()
    entry, record = served.entry, served.record
    headers = image_headers(
        ImageMeta(entry.content_type, entry.etag, entry.last_modified),
        # The edge serves stale while revalidating for one max-age; downstream caches may too.
        cache_control_value=cache_control(record.max_age, record.max_age, stale_if_error_s),
        vary_accept=vary_accept,
        outcome=served.outcome,
        age=record.age(now) if served.from_cache else None,
        ttl=record.ttl(now),
        timings_ms=served.timings_ms,
    )
    if etag_matches(request.headers.get("If-None-Match"), entry.etag):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, headers=headers)
