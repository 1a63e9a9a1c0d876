"""The edge's HTTP client for the avatar origin (DESIGN.md section 7): lookups, photo bytes,
health. One aiohttp session per app, every call bounded by `edge.origin_timeout_s`, timed into
`imgcdn_edge_origin_seconds`; failures (not 404s) count in `imgcdn_edge_origin_errors_total`.

The edge and the origin share no code: this module only knows the JSON and HTTP they exchange.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp

from edge.metrics import Metrics
from edge.remote_sources import CHUNK, parse_http_date
from edge.sources import read_limited
from transforms.errors import NotFound, OriginFailed, Timeout

HEALTH_TIMEOUT_S = 1.5  # under the readiness check's own 2 s
IDLE_KEEPALIVE_S = 5.0


class Avatar(NamedTuple):
    """The origin's answer for a hash with an active photo. A tuple of atomics, so the cyclic
    GC stops tracking it (edge/lookup.py keeps one per found hash)."""

    photo_id: str
    version: int
    rating: str


@dataclass(frozen=True)
class PhotoBytes:
    body: bytes
    last_modified: float | None


def parse_avatar(body: Any) -> Avatar:
    """`{"photo_id","version","rating",...}` -> Avatar; anything else is the origin's failure."""
    try:
        photo_id, version, rating = body["photo_id"], body["version"], body["rating"]
    except (KeyError, TypeError):
        raise OriginFailed("origin: malformed avatar lookup") from None
    ok = (
        isinstance(photo_id, str)
        and 0 < len(photo_id) <= 128
        and isinstance(version, int)
        and isinstance(rating, str)
    )
    if not ok:
        raise OriginFailed("origin: malformed avatar lookup")
    return Avatar(photo_id, version, rating)


class OriginClient:
    def __init__(self, base_url: str, timeout_s: float, max_bytes: int, metrics: Metrics) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            # Idle connections are dropped before the origin's own keep-alive (10 s) would drop
            # them, so a request rarely lands on a socket the origin is closing.
            connector=aiohttp.TCPConnector(keepalive_timeout=IDLE_KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": "imgcdn-edge"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def avatar(self, avatar_hash: str) -> Avatar | None:
        """GET /v1/avatars/{hash}: the active photo, or None (404: no user or no photo)."""
        async with self._get(f"/v1/avatars/{avatar_hash}", f"lookup of {avatar_hash}") as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise OriginFailed(f"origin: lookup answered {resp.status}")
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                raise OriginFailed("origin: malformed avatar lookup") from None
            return parse_avatar(body)

    async def photo(self, photo_id: str) -> PhotoBytes:
        """GET /v1/photos/{id}/raw, at most `max_bytes` (413 past it); 404 -> NotFound."""
        path = f"/v1/photos/{quote(photo_id, safe='')}/raw"
        async with self._get(path, f"photo {photo_id}") as resp:
            if resp.status == 404:
                raise NotFound(f"photo {photo_id}: gone from the origin")
            if resp.status != 200:
                raise OriginFailed(f"origin: photo answered {resp.status}")
            chunks = resp.content.iter_chunked(CHUNK)
            body = await read_limited(chunks, f"photo {photo_id}", self.max_bytes)
            return PhotoBytes(body, parse_http_date(resp.headers.get("Last-Modified")))

    async def problem(self) -> str | None:
        """Readiness: None when the origin's /healthz answers 200, else one line saying why."""
        assert self._session is not None, "OriginClient.start() not called"
        try:
            async with self._session.get(
                self.base_url + "/healthz", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
            ) as resp:
                await resp.read()
                return None if resp.status == 200 else f"origin unhealthy ({resp.status})"
        except TimeoutError:
            return f"origin {self.base_url} did not answer within {HEALTH_TIMEOUT_S:g} s"
        except aiohttp.ClientError as err:
            return f"origin {self.base_url} unreachable ({err.__class__.__name__})"

    @asynccontextmanager
    async def _get(self, path: str, what: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET `path` (timed); connection failures -> 502, no answer in time -> 504."""
        assert self._session is not None, "OriginClient.start() not called"
        started = time.perf_counter()
        try:
            async with await self._send(self.base_url + path) as resp:
                yield resp
        except TimeoutError:
            self.metrics.origin_errors.inc()
            raise Timeout(f"origin: no answer within {self.timeout_s:g} s ({what})") from None
        except aiohttp.ClientError as err:
            self.metrics.origin_errors.inc()
            raise OriginFailed(f"origin unreachable ({err.__class__.__name__})") from None
        except OriginFailed:
            self.metrics.origin_errors.inc()
            raise
        finally:
            self.metrics.origin_seconds.observe(time.perf_counter() - started)

    async def _send(self, url: str) -> aiohttp.ClientResponse:
        """GET, retried once when a kept-alive connection turns out closed (the origin
        restarted or dropped it idle): the request never reached it, so a retry is safe."""
        assert self._session is not None
        try:
            return await self._session.get(url)
        except aiohttp.ServerDisconnectedError:
            return await self._session.get(url)
