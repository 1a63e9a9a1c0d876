"""The shared result store (`edge.cache.result_store`): rendered variants in one S3 bucket that
every edge host reads after its own memory and disk, and fills in the background.

An object is an `Entry.encode()` under `<prefix><variant key>`. Keys name everything that
makes the bytes (source validator, or photo id + version), so objects never go stale and are
never deleted here: the bucket's lifecycle rule expires them (docs/edge.md, "Shared result
store"). The store is an optimisation, never a dependency: a read that fails, times out or
finds a corrupt object is a miss plus a counted error; an upload never delays a response, and
one more than `max_uploads` in flight is dropped, not queued.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from botocore.exceptions import BotoCoreError
from yarl import URL

from edge import sigv4
from edge.cache import Entry
from imgcdn.config import ResultStoreConfig

log = logging.getLogger(__name__)

# After S3 did not answer (refused, unreachable, timed out), skip it this long: a dead or
# black-holed endpoint then costs a miss nothing, instead of `timeout_s` on every miss.
RETRY_AFTER_S = 2.0
CLOSE_WAIT_S = 2.0  # at shutdown, uploads in flight get this long to finish
# Larger objects are not read: no variant of a 4096 px side limit comes near it, and a bucket
# that others can write to must not make an edge hold an arbitrary object in memory.
MAX_OBJECT_BYTES = 64 * 1024 * 1024
READ_CONNECTIONS = 32  # connections kept for reads however many uploads are in flight
ERROR_BYTES = 4096  # of an S3 error document, read for its <Code>
UNREACHABLE = (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError)
CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


class S3Error(Exception):
    """S3 answered, but not with what was asked: its status and error code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


def error_code(status: int, document: bytes) -> str:
    """The `<Code>` of an S3 error document, else the HTTP status."""
    found = CODE.search(document)
    return found.group(1).decode("ascii", "replace") if found else str(status)


def decode_object(data: bytes) -> Entry | None:
    """The entry an object holds, or None when it is truncated, corrupt or not an entry."""
    try:
        return Entry.decode(data)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def bucket_base(config: ResultStoreConfig) -> tuple[str, str, str]:
    """(scheme://host of the requests, their `Host`, the path before a key): path-style under
    `endpoint_url` (MinIO, moto, Ceph), else AWS's virtual-hosted style (path-style for a
    bucket with dots, which a virtual host's TLS certificate does not cover)."""
    assert config.bucket is not None
    region = config.region or "us-east-1"
    if config.endpoint_url:
        parts = urlsplit(config.endpoint_url)
        prefix = parts.path.rstrip("/") + "/" + sigv4.quote_segment(config.bucket)
        return f"{parts.scheme}://{parts.netloc}", parts.netloc, prefix
    if "." in config.bucket:
        host = f"s3.{region}.amazonaws.com"
        return f"https://{host}", host, "/" + sigv4.quote_segment(config.bucket)
    host = f"{config.bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}", host, ""


class ResultStore:
    """A `CacheTier` over an S3 bucket, named "shared".

    Its GETs and PUTs are plain HTTP on its own aiohttp session, signed by edge/sigv4.py with
    credentials from botocore's usual chain (environment, profile, instance or container
    role; refreshed when they expire). aiobotocore's client cost ~1 ms of the loop's CPU per
    call around the request (endpoint rules, hooks, parsers); `python -m benchmarks.load
    --scenario miss` with the store on a local moto server showed the serving process at
    ~5 ms of CPU per miss with it, ~1 without a store (benchmarks/README.md)."""

    name = "shared"

    def __init__(
        self,
        config: ResultStoreConfig,
        on_error: Callable[[str], None],
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        """`on_error(kind)` counts a failure: shared-read, shared-write, shared-corrupt (also
        an object over `max_object_bytes`, left unread), shared-dropped (an upload over the
        bound) or shared-open."""
        assert config.bucket is not None  # imgcdn.config.validate requires it
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.region = config.region or "us-east-1"
        self.on_error = on_error
        self.max_object_bytes = max_object_bytes
        self._origin, self._host, self._path = bucket_base(config)
        self._credentials: Any = None  # botocore's (refreshable) credentials
        self._session: aiohttp.ClientSession | None = None
        self._uploads: set[asyncio.Task[None]] = set()
        self._down_until = 0.0  # monotonic time before which S3 is not asked

    @property
    def uploading(self) -> int:
        """Uploads in flight."""
        return len(self._uploads)

    async def start(self) -> None:
        from aiobotocore.session import get_session

        try:
            self._credentials = await get_session().get_credentials()
        except BotoCoreError as err:
            log.error("result store s3://%s: no credentials (%s)", self.bucket, err)
        if self._credentials is None:
            log.error(
                "result store s3://%s unusable, running without it: no AWS credentials "
                "(environment, profile or role)",
                self.bucket,
            )
            self.on_error("shared-open")
            return
        c = self.config
        self._session = aiohttp.ClientSession(
            # uploads may hold `max_uploads` connections; reads never wait behind them
            connector=aiohttp.TCPConnector(limit=c.max_uploads + READ_CONNECTIONS),
            timeout=aiohttp.ClientTimeout(sock_connect=c.timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._uploads:
            await asyncio.wait(self._uploads, timeout=CLOSE_WAIT_S)
        for task in self._uploads:
            task.cancel()
        await asyncio.gather(*self._uploads, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _usable(self) -> bool:
        return self._session is not None and time.monotonic() >= self._down_until

    async def _request(
        self, method: str, key: str, body: bytes = b""
    ) -> tuple[URL, dict[str, str]]:
        """The URL of `key` and the signed headers of a `method` request with `body`."""
        frozen = await self._credentials.get_frozen_credentials()
        credentials = sigv4.Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        path = self._path + "/" + sigv4.quote_key(self.prefix + key)
        payload = hashlib.sha256(body).hexdigest() if body else sigv4.EMPTY_SHA256
        headers = sigv4.sign(
            method, self._host, path, payload, credentials, self.region, sigv4.amz_date(time.time())
        )
        return URL(self._origin + path, encoded=True), headers  # sent as signed, not re-quoted

    async def get(self, key: str) -> Entry | None:
        if not self._usable():
            return None
        data = await self._read(key)
        if data is None:
            return None
        entry = decode_object(data)
        if entry is None:
            # Not deleted: the miss renders the variant again and its upload overwrites it.
            log.warning("corrupt result store object %s%s", self.prefix, key)
            self.on_error("shared-corrupt")
        return entry

    async def _read(self, key: str) -> bytes | None:
        assert self._session is not None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                url, headers = await self._request("GET", key)
                async with self._session.get(url, headers=headers) as resp:
                    if resp.status == 404:
                        return None  # no such key: a plain miss
                    if resp.status != 200:
                        document = await resp.content.read(ERROR_BYTES)
                        raise S3Error(resp.status, error_code(resp.status, document))
                    if (resp.content_length or 0) <= self.max_object_bytes:
                        data = await bounded_read(resp.content, self.max_object_bytes)
                        if data is not None:
                            return data
                    log.warning("result store object %s%s too large", self.prefix, key)
                    self.on_error("shared-corrupt")
                    return None
        except S3Error as err:
            self._failed("shared-read", err, reachable=True)
        except UNREACHABLE as err:
            self._failed("shared-read", err, reachable=False)
        return None

    async def set(self, key: str, entry: Entry) -> bool:
        """Start uploading `entry` and return at once: True when the upload started, False
        when S3 is down or `max_uploads` are already in flight (dropped and counted)."""
        if not self._usable():
            return False
        if len(self._uploads) >= self.config.max_uploads:
            self.on_error("shared-dropped")
            return False
        task = asyncio.ensure_future(self._upload(key, entry))
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)
        return True

    async def _upload(self, key: str, entry: Entry) -> None:
        session = self._session
        if session is None:
            return
        try:
            async with asyncio.timeout(self.config.upload_timeout_s):
                body = entry.encode()
                url, headers = await self._request("PUT", key, body)
                headers["Content-Type"] = "application/octet-stream"  # an entry, not an image
                async with session.put(url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        document = await resp.content.read(ERROR_BYTES)
                        raise S3Error(resp.status, error_code(resp.status, document))
        except S3Error as err:
            self._failed("shared-write", err, reachable=True)
        except UNREACHABLE as err:
            self._failed("shared-write", err, reachable=False)

    def _failed(self, kind: str, err: Exception, *, reachable: bool) -> None:
        log.warning("result store s3://%s: %s failed (%s)", self.bucket, kind, describe(err))
        self.on_error(kind)
        if not reachable:
            self._down_until = time.monotonic() + RETRY_AFTER_S

    async def evict(self, tag: str) -> int:
        """Nothing: keys are content-addressed (a changed source or photo gets new keys), so
        no purge can be answered with stale bytes from here; the lifecycle rule expires them."""
        return 0

    def size_bytes(self) -> int:
        return 0  # unknown without listing the bucket; not reported


async def bounded_read(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (a body without a length)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def describe(err: Exception) -> str:
    """One short line for the log: S3's status and code, or the exception's class and message."""
    if isinstance(err, S3Error):
        return str(err)
    return f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
