"""`GET/HEAD /avatar/{hash}[.ext]` and `/{hash}[.ext]`: Gravatar's URL API at the edge.

parse (path, query, size, format) -> find the photo (lookup cache, or the origin) -> its
variant, or the `d=` default, or a 302/404 -> headers. `setup_avatars(app)` adds the route,
the purge hook for `hashes`, the "origin reachable" readiness check and the resources.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from edge.appkeys import (
    AVATAR_ROUTES,
    AVATARS,
    CONFIG,
    LIMITS,
    LOOKUPS,
    METRICS,
    ORIGIN,
    ORIGINALS,
    POOL,
    PURGE_HOOKS,
    READINESS_CHECKS,
    ROUTE_PARTS,
    TIERS,
    PurgeHook,
)
from edge.avatar_query import (
    ROUTE,
    AvatarQuery,
    default_variant_key,
    parse_avatar_query,
    parse_target,
    photo_variant_key,
    rating_allows,
)
from edge.avatar_variants import AvatarServed, AvatarVariants
from edge.defaults import Redirect
from edge.headers import HIT_MEMORY, ImageMeta, etag_matches, image_headers, stale_if_error
from edge.lookup import ORIGIN_DOWN, AvatarLookups, Lookup
from edge.middleware import add_route
from edge.origin_client import Avatar, OriginClient
from edge.responses import HeaderSlot
from transforms.errors import InvalidParam, NotFound
from transforms.formats import negotiate
from transforms.spec import Format, TransformSpec, parse_spec

HASH_RE = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")
AVATAR = "avatar"  # the route's name, and its `route` label in the request metrics
NO_STORE = "no-store"  # a stand-in served while the origin fails must not outlive the failure


@dataclass(frozen=True)
class Found:
    """What the edge knows about a hash for this request."""

    avatar: Avatar | None  # the photo to show; None: show the default
    lookup: Lookup | None = None  # None with f=y (not looked up) or when the origin failed
    degraded: bool = False  # the origin failed and `d` stands in


@dataclass(slots=True, eq=False)
class AvatarRoute(HeaderSlot):
    """What an avatar request line + `Accept` resolve to (pure): memoized like /img's. The
    query and spec are shared with every route that asks the same (`ROUTE_PARTS`). It is its
    own `HeaderSlot`: one object per memoized route for the cyclic GC to walk, not two."""

    hash: str
    query: AvatarQuery
    spec: TransformSpec
    fmt: str
    vary: bool
    token: str


def resolve_avatar(request: web.Request) -> AvatarRoute:
    """Parse an avatar request (400 on a bad parameter)."""
    target = parse_target(request.match_info["tail"])
    query = parse_avatar_query(request.query.items())
    spec, fmt, vary = avatar_spec(request, target.format)
    shared = request.app[ROUTE_PARTS]
    return AvatarRoute(target.hash, shared(query), shared(spec), fmt, vary, spec.cache_token(fmt))


async def handle_avatar(request: web.Request) -> web.StreamResponse:
    started = time.time()
    memo_key = (request.raw_path, request.headers.get("Accept"))
    route = request.app[AVATAR_ROUTES].get(memo_key)
    if route is not None:
        return await answer_avatar(request, route, started)
    route = resolve_avatar(request)
    response = await answer_avatar(request, route, started)
    # Kept once it has answered (as /img's routes: edge/img.py `handle_img`).
    request.app[AVATAR_ROUTES].put(memo_key, route)
    return response


async def answer_avatar(
    request: web.Request, route: AvatarRoute, started: float
) -> web.StreamResponse:
    response = fresh_avatar_hit(request.app, route, request, started)
    if response is not None:
        return response
    avatar_hash, query, spec, fmt, vary, token = (
        route.hash,
        route.query,
        route.spec,
        route.fmt,
        route.vary,
        route.token,
    )
    found = await find_avatar(request.app, avatar_hash, query)
    served, found = await serve_photo(request.app, avatar_hash, query, found, spec, token, fmt)
    if served is None:
        if query.default == "404":
            raise NotFound("hash: no avatar for this hash")
        if isinstance(query.default, Redirect):
            return redirect(request, query.default.url, found.degraded)
        key = default_variant_key(query.default, avatar_hash, query.initials, token, fmt)
        served = await request.app[AVATARS].default(
            key, query.default, avatar_hash, query.initials, spec
        )
    return avatar_response(
        request.app, request, served, found, vary=vary, started=started, slot=route
    )


def fresh_avatar_hit(
    app: web.Application, route: AvatarRoute, request: web.Request, started: float
) -> web.Response | None:
    """The answer to `request` when its hash's lookup is fresh (or `f=y` needs none) and the
    variant it leads to is in this process's memory: the photo's, or the `d=` default's when
    there is no photo to show (counted as a memory hit). Else None: stale lookups, the origin,
    `d=404`, redirects and misses are `handle_avatar`'s. Synchronous: edge/front.py calls it
    before any routing. It decides as `find_avatar` and `serve_photo` do, so nothing the
    client sees differs from the route's answer."""
    query = route.query
    if query.force_default:
        found = Found(None)
    else:
        lookup = app[LOOKUPS].cached(route.hash)
        if lookup is None:
            return None
        avatar = lookup.avatar
        if avatar is not None and rating_allows(query.rating, avatar.rating):
            key = photo_variant_key(avatar.photo_id, avatar.version, route.token, route.fmt)
            return memory_answer(app, request, route, key, Found(avatar, lookup), started)
        found = Found(None, lookup)  # no photo, or rated above the page's: the default
    default = query.default
    if default == "404" or isinstance(default, Redirect):
        return None
    key = default_variant_key(default, route.hash, query.initials, route.token, route.fmt)
    return memory_answer(app, request, route, key, found, started)


def memory_answer(
    app: web.Application,
    request: web.Request,
    route: AvatarRoute,
    key: str,
    found: Found,
    started: float,
) -> web.Response | None:
    """The response with variant `key` from memory, or None when memory does not hold it."""
    entry = app[TIERS].memory.get_now(key)
    if entry is None:
        return None
    app[METRICS].hit("memory")
    served = AvatarServed(entry, HIT_MEMORY)
    return avatar_response(
        app, request, served, found, vary=route.vary, started=started, slot=route
    )


async def serve_photo(
    app: web.Application,
    avatar_hash: str,
    query: AvatarQuery,
    found: Found,
    spec: TransformSpec,
    token: str,
    fmt: str,
) -> tuple[AvatarServed | None, Found]:
    """The photo's variant, or None (and why) when the default must stand in."""
    if found.avatar is None:
        return None, found
    key = photo_variant_key(found.avatar.photo_id, found.avatar.version, token, fmt)
    try:
        return await app[AVATARS].photo(key, found.avatar, spec, fmt), found
    except NotFound:  # deleted since the lookup: forget the lookup; the default stands in
        app[LOOKUPS].drop([avatar_hash])
        return None, Found(None, found.lookup)
    except ORIGIN_DOWN:
        if not can_stand_in(query):
            raise
        return None, Found(None, found.lookup, degraded=True)


def avatar_spec(
    request: web.Request, extension_format: str | None
) -> tuple[TransformSpec, str, bool]:
    """Size from `s`/`w`/`h`, format from the extension, `fm` or `Accept` -> (spec, format
    for the key, vary on Accept)."""
    config = request.app[CONFIG]
    spec = parse_spec(request.query.items(), request.app[LIMITS], avatar=True)
    requested = extension_format or spec.format
    fmt, vary = negotiate(requested, request.headers.get("Accept"), config.transforms.auto_formats)
    spec = spec.for_output(
        cast(Format, requested if fmt == "source" else fmt),  # "source": keep it
        config.transforms.jpeg_progressive,
    )
    return spec, fmt, vary


async def find_avatar(app: web.Application, avatar_hash: str, query: AvatarQuery) -> Found:
    if query.force_default:
        return Found(None)
    try:
        lookup = await app[LOOKUPS].get(avatar_hash)
    except ORIGIN_DOWN:
        if not can_stand_in(query):
            raise
        return Found(None, degraded=True)
    avatar = lookup.avatar
    if avatar is not None and not rating_allows(query.rating, avatar.rating):
        avatar = None  # rated above what the page asked for: as if absent
    return Found(avatar, lookup)


def can_stand_in(query: AvatarQuery) -> bool:
    """With the origin failing, an explicit `d` is served instead of a 502 (as Gravatar does);
    except `d=404`, whose 404 would tell the page "no avatar", which nobody knows."""
    return query.default_given and query.default != "404"


def avatar_response(
    app: web.Application,
    request: web.Request,
    served: AvatarServed,
    found: Found,
    *,
    vary: bool,
    started: float,
    slot: HeaderSlot | None = None,
) -> web.Response:
    """The image response; `slot`: reuse the headers of the same shape (see HeaderSlot)."""
    now = time.time()
    lookup, outcome, timings = found.lookup, served.outcome, dict(served.timings_ms)
    if lookup is not None and lookup.checked_at >= started:  # asked the origin just now
        timings = {"lookup": (lookup.checked_at - started) * 1000, **timings}
    if lookup is not None and lookup.stale and served.from_cache:
        outcome = stale_if_error(502)
        app[METRICS].stale_served.inc()
    entry = served.entry
    # Age counts from when the origin last confirmed the lookup: the variant never changes.
    age = (now - lookup.checked_at if lookup else 0.0) if served.from_cache else None
    ttl = app[LOOKUPS].ttl_left(lookup, now) if lookup else None
    if age is None or timings:
        slot = None  # a miss: its own timings, nothing to reuse
    whole_ttl = None if ttl is None else int(ttl)
    headers = None
    if slot is not None and age is not None:
        headers = slot.get(entry, outcome, int(age), whole_ttl, found.degraded)
    if headers is None:
        max_age = app[CONFIG].cache.avatar_max_age_s
        headers = image_headers(
            ImageMeta(entry.content_type, entry.etag, entry.last_modified),
            cache_control_value=NO_STORE if found.degraded else f"public, max-age={max_age}",
            vary_accept=vary,
            outcome=outcome,
            age=age,
            ttl=ttl,
            timings_ms=timings,
        )
        if slot is not None and age is not None:
            headers = slot.keep(entry, outcome, int(age), whole_ttl, headers, found.degraded)
    if etag_matches(request.headers.get("If-None-Match"), entry.etag):
        headers = {name: value for name, value in headers.items() if name != "Content-Type"}
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, headers=headers)


def redirect(request: web.Request, url: str, degraded: bool) -> web.Response:
    """`d=<http(s) URL>`: 302 to it; the edge never fetches it."""
    max_age = request.app[CONFIG].cache.avatar_max_age_s
    cache_control = NO_STORE if degraded else f"public, max-age={max_age}"
    return web.Response(status=302, headers={"Location": url, "Cache-Control": cache_control})


# ---- wiring ----


def setup_avatars(app: web.Application) -> None:
    """Add the avatar route, the `hashes` purge hook, the origin readiness check, resources."""
    app.cleanup_ctx.append(avatars_ctx)
    app[PURGE_HOOKS]["hashes"] = purge_hashes_hook(app)

    async def origin_reachable() -> str | None:
        return await app[ORIGIN].problem()

    app[READINESS_CHECKS].append(origin_reachable)
    add_route(app, "GET", ROUTE, handle_avatar, AVATAR)


def purge_hashes_hook(app: web.Application) -> PurgeHook:
    """Drop the lookups of the hashes (variants are immutable: they need no purge)."""

    async def drop(values: list[str]) -> int:
        hashes = [value.strip().lower() for value in values]
        bad = [value for value in hashes if not HASH_RE.fullmatch(value)]
        if bad:  # all checked before any drop
            raise InvalidParam(f"purge: {bad[0][:70]!r} is not a 32 or 64 hex character hash")
        return app[LOOKUPS].drop(hashes)

    def drop_local(values: list[str]) -> None:
        app[LOOKUPS].drop(values)

    return PurgeHook(drop, drop_local)


async def avatars_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    origin = OriginClient(
        config.origin_url, config.origin_timeout_s, config.transforms.max_src_bytes, app[METRICS]
    )
    await origin.start()
    app[ORIGIN] = origin
    app[LOOKUPS] = lookups = AvatarLookups(
        origin.avatar,
        ttl_s=config.cache.lookup_ttl_s,
        negative_ttl_s=config.cache.negative_ttl_s,
        keep_s=config.cache.stale_if_error_s,
    )
    app[AVATARS] = variants = AvatarVariants(
        app[TIERS],
        app[POOL],
        app[LIMITS],
        origin,
        app[METRICS],
        from_larger=config.transforms.avatar_from_larger,
        originals=app[ORIGINALS],
    )
    yield
    await variants.close()
    await lookups.close()
    await origin.close()
