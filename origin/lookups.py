"""Public, edge-facing routes: hash -> active photo, photo bytes, health and metrics."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Awaitable

from aiohttp import web

from origin.errors import StorageFailed
from origin.identity import parse_avatar_hash
from origin.keys import BLOBS, DATABASE, METRICS
from origin.models import Photo, avatar_json
from transforms.errors import ImgcdnError, NotFound

log = logging.getLogger(__name__)

# Photo ids never change their bytes, so `/raw` may be cached forever; `/photos/{hash}`
# follows the active photo and is cached as long as Gravatar caches avatars.
RAW_CACHE_CONTROL = "public, max-age=31536000, immutable"
HASH_CACHE_CONTROL = "public, max-age=300"
HEALTH_TIMEOUT_S = 2.0


async def avatar_lookup(request: web.Request) -> web.Response:
    """GET /v1/avatars/{hash} -> {"photo_id","version","rating","content_type","etag"} or 404."""
    photo = await active_photo(request)
    response = web.json_response(avatar_json(photo))
    response.headers["Cache-Control"] = "no-cache"  # edges cache it themselves and get purges
    return response


async def photo_raw(request: web.Request) -> web.Response:
    """GET /v1/photos/{photo_id}/raw -> the original bytes."""
    photo = await request.app[DATABASE].get_photo(request.match_info["photo_id"])
    if photo is None:
        raise NotFound("photo_id: no such photo")
    return await photo_bytes(request, photo, RAW_CACHE_CONTROL)


async def photo_by_hash(request: web.Request) -> web.Response:
    """GET /photos/{hash} -> the active photo's original bytes."""
    return await photo_bytes(request, await active_photo(request), HASH_CACHE_CONTROL)


async def active_photo(request: web.Request) -> Photo:
    avatar_hash = parse_avatar_hash(request.match_info["hash"])
    photo = None if avatar_hash is None else await request.app[DATABASE].active_photo(avatar_hash)
    if photo is None:
        raise NotFound("hash: no user with an active photo for this hash")
    return photo


async def photo_bytes(request: web.Request, photo: Photo, cache_control: str) -> web.Response:
    headers = {
        "ETag": photo.etag,
        "Cache-Control": cache_control,
        "Last-Modified": email.utils.formatdate(photo.created_at, usegmt=True),
    }
    if etag_matches(request.headers.get("If-None-Match"), photo.etag):
        return web.Response(status=304, headers=headers)
    data = await request.app[BLOBS].get(photo.storage_key)
    if data is None:  # registration guarantees the blob; its loss is the store's failure
        log.error("photo %s has no blob at %s", photo.id, photo.storage_key)
        raise StorageFailed("storage: the photo's bytes are missing")
    return web.Response(body=data, content_type=photo.content_type, headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of `If-None-Match` against our strong ETag."""
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


async def healthz(request: web.Request) -> web.Response:
    """200 when the database and the blob store answer within HEALTH_TIMEOUT_S, else 503."""
    checks = {
        "database": request.app[DATABASE].ping(),
        "storage": request.app[BLOBS].check(),
    }
    results = {name: await probe_health(check) for name, check in checks.items()}
    ok = all(result == "ok" for result in results.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", **results}, status=200 if ok else 503
    )


async def probe_health(check: Awaitable[None]) -> str:
    """ "ok", or why the check failed."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            await check
    except ImgcdnError as err:
        return err.message
    except TimeoutError:
        return f"no answer within {HEALTH_TIMEOUT_S} s"
    return "ok"


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in Prometheus text format."""
    return request.app[METRICS].render()
