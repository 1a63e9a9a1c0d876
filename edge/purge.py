"""`POST /_purge {"paths": [...], "hashes": [...]}` with `Authorization: Bearer <purge_token>`.

Each field is handled by a hook registered under `app[PURGE_HOOKS]`: create_app registers
"paths"; avatars register "hashes". A known field without a hook drops nothing (counts 0).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from aiohttp import web

from edge.appkeys import BROADCAST, CONFIG, PURGE_HOOKS, VARIANTS, PurgeHook
from edge.errors import Forbidden, Unauthorized
from edge.paths import clean_path
from transforms.errors import InvalidParam

FIELDS = ("paths", "hashes")
MAX_ITEMS = 1000
BODY_TIMEOUT_S = 5.0  # aiohttp has no body-read deadline of its own


def authorize(header: str | None, token: str | None) -> None:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("purge: missing bearer token")
    if not token:
        raise Forbidden("purge: disabled (edge.security.purge_token is not set)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Forbidden("purge: wrong token")


def parse_purge(body: Any) -> dict[str, list[str]]:
    """Validate the JSON body -> {field: values}; raise InvalidParam naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidParam('purge: body must be a JSON object like {"paths": [...]}')
    fields: dict[str, list[str]] = {}
    for name, values in body.items():
        if name not in FIELDS:
            raise InvalidParam(f"purge: unknown field {name!r} (expected paths, hashes)")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidParam(f"purge: {name} must be a list of strings")
        if len(values) > MAX_ITEMS:
            raise InvalidParam(f"purge: at most {MAX_ITEMS} {name} per request")
        fields[name] = values
    return fields


async def handle_purge(request: web.Request) -> web.Response:
    authorize(request.headers.get("Authorization"), request.app[CONFIG].security.purge_token)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read()
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParam("purge: body is not valid JSON") from None
    hooks = request.app[PURGE_HOOKS]
    purged = 0
    for name, values in parse_purge(body).items():
        hook = hooks.get(name)
        if hook is not None and values:
            purged += await hook.drop(values)
            await request.app[BROADCAST].publish(name, values)  # the host's other processes
    return web.json_response({"purged": purged})


def drop_locally(app: web.Application, field: str, values: list[str]) -> None:
    """Apply a purge another process of this host logged (see edge/broadcast.py)."""
    hook = app[PURGE_HOOKS].get(field)
    if hook is not None:
        hook.drop_local(values)


def purge_paths_hook(app: web.Application) -> PurgeHook:
    """Drop every variant (both tiers) and the record of each source path."""

    async def drop(values: list[str]) -> int:
        paths = [clean_path(value.lstrip("/")) for value in values]  # all checked before any drop
        variants = app[VARIANTS]
        return sum([await variants.purge(path) for path in paths])

    def drop_local(values: list[str]) -> None:
        for value in values:
            app[VARIANTS].forget_locally(value.lstrip("/"))

    return PurgeHook(drop, drop_local)
