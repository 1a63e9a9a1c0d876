"""Sources over the network: an HTTP base URL and an S3 bucket (aiobotocore)."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
from email.utils import parsedate_tz
from typing import Any
from urllib.parse import quote

import aiohttp

from edge.freshness import SourceRecord, parse_max_age
from edge.headers import http_date
from edge.sources import Fetched, Validators, read_limited, too_large
from imgcdn.config import SourceConfig
from transforms.errors import NotFound, OriginFailed, Timeout

CHUNK = 65_536


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
    """GetObject `<prefix><path>` from a bucket; revalidation is GetObject with IfNoneMatch."""

    def __init__(self, config: SourceConfig, max_bytes: int) -> None:
        assert config.bucket is not None
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.max_bytes = max_bytes
        self.timeout_s = config.timeout_s
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    def identity(self, path: str) -> str:
        return f"s3:{self.config.endpoint_url or ''}/{self.bucket}/{self.prefix}|{path}"

    async def start(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        client = get_session().create_client(
            "s3",
            endpoint_url=self.config.endpoint_url,
            region_name=self.config.region or "us-east-1",
            config=AioConfig(
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"max_attempts": 1},  # the edge's caller decides about retries
            ),
        )
        self._client = await self._stack.enter_async_context(client)

    async def close(self) -> None:
        await self._stack.aclose()

    async def fetch(self, path: str) -> Fetched:
        fetched = await self._get(path, {})
        assert isinstance(fetched, Fetched)
        return fetched

    async def revalidate(self, path: str, record: SourceRecord) -> Validators:
        conditions = {"IfNoneMatch": record.etag} if record.etag else {}
        fetched = await self._get(path, conditions, unchanged=record)
        return fetched.validators if isinstance(fetched, Fetched) else fetched

    async def _get(
        self, path: str, conditions: dict[str, str], unchanged: SourceRecord | None = None
    ) -> Fetched | Validators:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.get_object(
                    Bucket=self.bucket, Key=self.prefix + path, **conditions
                )
                async with resp["Body"] as stream:
                    if int(resp.get("ContentLength") or 0) > self.max_bytes:
                        raise too_large(path, self.max_bytes)
                    body = await read_limited(stream.iter_chunks(CHUNK), path, self.max_bytes)
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = err.response.get("Error", {}).get("Code")
            if status == 304 and unchanged is not None:
                return Validators(unchanged.validator, unchanged.last_modified, unchanged.etag)
            if status == 404 or code in ("NoSuchKey", "NotFound"):
                raise NotFound(f"{path}: not found at the source") from None
            raise OriginFailed(f"{path}: source answered {status} {code}") from None
        except TimeoutError:
            raise Timeout(f"{path}: source did not answer within {self.timeout_s:g} s") from None
        except (BotoCoreError, aiohttp.ClientError) as err:
            raise OriginFailed(f"{path}: source unreachable ({err.__class__.__name__})") from None
        etag = resp.get("ETag")
        modified = resp.get("LastModified")
        return Fetched(
            body,
            Validators(
                f"etag:{etag}" if etag else "sha256:" + hashlib.sha256(body).hexdigest(),
                modified.timestamp() if modified is not None else None,
                etag,
                parse_max_age(resp.get("CacheControl")),
            ),
            resp.get("ContentType"),
        )
