"""Reading JSON request bodies and checking their fields; every message names the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from origin.errors import RequestTimeout
from transforms.errors import InvalidParam, SourceTooLarge

MAX_JSON_BYTES = 1_048_576
JSON_READ_TIMEOUT_S = 10.0

Body = dict[str, Any]


async def read_json(request: web.Request) -> Body:
    """The request's JSON object; 400 when malformed, 413 past MAX_JSON_BYTES."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise SourceTooLarge(f"body: larger than {MAX_JSON_BYTES} bytes")
    # aiohttp has no body-read deadline of its own; a slow client must not hold the handler.
    try:
        async with asyncio.timeout(JSON_READ_TIMEOUT_S):
            raw = await request.read()  # capped by the app's client_max_size (MAX_JSON_BYTES)
    except TimeoutError:
        raise RequestTimeout("body: not received in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise SourceTooLarge(f"body: larger than {MAX_JSON_BYTES} bytes") from None
    return parse_json(raw)


def parse_json(raw: bytes) -> Body:
    """Decode a JSON object from `raw` (pure)."""
    if not raw.strip():
        raise InvalidParam("body: a JSON object is required")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidParam("body: not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidParam("body: expected a JSON object")
    return value


def require_str(body: Body, name: str, max_len: int = 1024) -> str:
    """A non-empty string field."""
    if name not in body:
        raise InvalidParam(f"{name}: required")
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise InvalidParam(f"{name}: expected a non-empty string")
    if len(value) > max_len:
        raise InvalidParam(f"{name}: longer than {max_len} characters")
    return value


def require_int(body: Body, name: str) -> int:
    """An integer field (JSON booleans are not integers here)."""
    if name not in body:
        raise InvalidParam(f"{name}: required")
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParam(f"{name}: expected an integer")
    return value


def optional_choice(body: Body, name: str, choices: tuple[str, ...], default: str) -> str:
    """A string field limited to `choices`, `default` when absent or null."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in choices:
        raise InvalidParam(f"{name}: must be one of {', '.join(choices)}")
    return value.lower()
