"""Sources over the network: an HTTP base URL and an S3 bucket (edge/s3.py)."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
from email.utils import parsedate_tz
from urllib.parse import quote

import aiohttp

from edge.freshness import SourceRecord, parse_max_age
from edge.headers import http_date
from edge.s3 import UNREACHABLE, S3Bucket, error_code
from edge.sources import Fetched, Validators, read_limited, too_large
from imgcdn.config import SourceConfig
from transforms.errors import NotFound, OriginFailed, Timeout

log = logging.getLogger(__name__)

CHUNK = 65_536
SOURCE_CONNECTIONS = 32  # fetches in flight at once are bounded by the pool's admission


def parse_http_date(value: str | None) -> float | None:
    parsed = parsedate_tz(value) if value else None
    if parsed is None:
        return None
    return float(calendar.timegm(parsed[:9]) - (parsed[9] or 0))


def body_validator(etag: str | None, last_modified: str | None, body: bytes) -> str:
    """The source's ETag, else its Last-Modified, else a hash of the bytes themselves."""
    if etag:
        return f"etag:{etag}"
    if last_modified:
        return f"lm:{last_modified}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


class HttpSource:
    """GET `<base url><path>`; revalidation is a conditional GET (If-None-Match/-Modified-Since)."""

    def __init__(self, base_url: str, max_bytes: int, timeout_s: float) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def identity(self, path: str) -> str:
        return f"http:{self.base_url}|{path}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": "imgcdn-edge"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, path: str) -> Fetched:
        fetched = await self._get(path, {})
        assert isinstance(fetched, Fetched)  # no conditional headers, so no 304
        return fetched

    async def revalidate(self, path: str, record: SourceRecord) -> Validators:
        conditions = {}
        if record.etag:
            conditions["If-None-Match"] = record.etag
        if record.last_modified is not None:
            conditions["If-Modified-Since"] = http_date(record.last_modified)
        fetched = await self._get(path, conditions, unchanged=record)
        return fetched.validators if isinstance(fetched, Fetched) else fetched

    async def _get(
        self, path: str, headers: dict[str, str], unchanged: SourceRecord | None = None
    ) -> Fetched | Validators:
        assert self._session is not None, "HttpSource.start() not called"
        url = self.base_url + quote(path, safe="/")
        try:
            async with self._session.get(url, headers=headers, max_redirects=3) as resp:
                if resp.status == 304 and unchanged is not None:
                    return Validators(
                        unchanged.validator,
                        unchanged.last_modified,
                        unchanged.etag,
                        parse_max_age(resp.headers.get("Cache-Control")),
                    )
                if resp.status in (404, 410):
                    raise NotFound(f"{path}: not found at the source")
                if resp.status != 200:
                    raise OriginFailed(f"{path}: source answered {resp.status}")
                if (resp.content_length or 0) > self.max_bytes:
                    raise too_large(path, self.max_bytes)
                body = await read_limited(resp.content.iter_chunked(CHUNK), path, self.max_bytes)
                etag, last_modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
                return Fetched(
                    body,
                    Validators(
                        body_validator(etag, last_modified, body),
                        parse_http_date(last_modified),
                        etag,
                        parse_max_age(resp.headers.get("Cache-Control")),
                    ),
                    resp.content_type,
                )
        except TimeoutError:
            raise Timeout(f"{path}: source did not answer within {self.timeout_s:g} s") from None
        except aiohttp.ClientError as err:
            raise OriginFailed(f"{path}: source unreachable ({err.__class__.__name__})") from None


class S3Source:
    """GET `<prefix><path>` from a bucket; revalidation is a GET with If-None-Match. Without
    credentials the requests go out unsigned, which a public bucket answers."""

    def __init__(self, config: SourceConfig, max_bytes: int) -> None:
        assert config.bucket is not None
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.max_bytes = max_bytes
        self.timeout_s = config.timeout_s
        self._objects = S3Bucket(
            config.bucket,
            endpoint_url=config.endpoint_url,
            region=config.region,
            connections=SOURCE_CONNECTIONS,
            connect_timeout_s=config.timeout_s,
        )

    def identity(self, path: str) -> str:
        return f"s3:{self.config.endpoint_url or ''}/{self.bucket}/{self.prefix}|{path}"

    async def start(self) -> None:
        await self._objects.start()
        if not self._objects.signed:
            log.warning("s3://%s: no AWS credentials, so anonymous requests", self.bucket)

    async def close(self) -> None:
        await self._objects.close()

    async def fetch(self, path: str) -> Fetched:
        fetched = await self._get(path, {})
        assert isinstance(fetched, Fetched)
        return fetched

    async def revalidate(self, path: str, record: SourceRecord) -> Validators:
        conditions = {"If-None-Match": record.etag} if record.etag else {}
        fetched = await self._get(path, conditions, unchanged=record)
        return fetched.validators if isinstance(fetched, Fetched) else fetched

    async def _get(
        self, path: str, conditions: dict[str, str], unchanged: SourceRecord | None = None
    ) -> Fetched | Validators:
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._objects.request("GET", self.prefix + path, headers=conditions) as resp,
            ):
                if resp.status == 304 and unchanged is not None:
                    return Validators(unchanged.validator, unchanged.last_modified, unchanged.etag)
                if resp.status == 404:
                    raise NotFound(f"{path}: not found at the source")
                if resp.status != 200:
                    code = await error_code(resp)
                    raise OriginFailed(f"{path}: source answered {resp.status} {code}")
                if (resp.content_length or 0) > self.max_bytes:
                    raise too_large(path, self.max_bytes)
                body = await read_limited(resp.content.iter_chunked(CHUNK), path, self.max_bytes)
                headers = resp.headers
        except TimeoutError:
            raise Timeout(f"{path}: source did not answer within {self.timeout_s:g} s") from None
        except UNREACHABLE as err:
            raise OriginFailed(f"{path}: source unreachable ({err.__class__.__name__})") from None
        etag = headers.get("ETag")
        return Fetched(
            body,
            Validators(
                f"etag:{etag}" if etag else "sha256:" + hashlib.sha256(body).hexdigest(),
                parse_http_date(headers.get("Last-Modified")),
                etag,
                parse_max_age(headers.get("Cache-Control")),
            ),
            headers.get("Content-Type"),
        )
