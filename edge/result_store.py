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
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

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
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
UNREACHABLE = (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError)


def is_missing(err: ClientError) -> bool:
    """Did S3 answer "no such object" (a plain miss, not an error)?"""
    return str(err.response.get("Error", {}).get("Code")) in MISSING_CODES


def decode_object(data: bytes) -> Entry | None:
    """The entry an object holds, or None when it is truncated, corrupt or not an entry."""
    try:
        return Entry.decode(data)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


class ResultStore:
    """A `CacheTier` over an S3 bucket (aiobotocore), named "shared"."""

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
        self.on_error = on_error
        self.max_object_bytes = max_object_bytes
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._uploads: set[asyncio.Task[None]] = set()
        self._down_until = 0.0  # monotonic time before which S3 is not asked

    @property
    def uploading(self) -> int:
        """Uploads in flight."""
        return len(self._uploads)

    async def start(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        c = self.config
        try:
            client = get_session().create_client(
                "s3",
                endpoint_url=c.endpoint_url,
                region_name=c.region or "us-east-1",
                config=AioConfig(
                    connect_timeout=c.timeout_s,
                    read_timeout=max(c.timeout_s, c.upload_timeout_s),
                    retries={"total_max_attempts": 1},  # a retry would outlast the read budget
                    # uploads may hold `max_uploads` connections; reads never wait behind them
                    max_pool_connections=c.max_uploads + READ_CONNECTIONS,
                ),
            )
            self._client = await self._stack.enter_async_context(client)
        except (ValueError, BotoCoreError) as err:  # e.g. a malformed endpoint_url
            log.error("result store s3://%s unusable, running without it: %s", self.bucket, err)
            self.on_error("shared-open")

    async def close(self) -> None:
        if self._uploads:
            await asyncio.wait(self._uploads, timeout=CLOSE_WAIT_S)
        for task in self._uploads:
            task.cancel()
        await asyncio.gather(*self._uploads, return_exceptions=True)
        self._client = None
        await self._stack.aclose()

    def _usable(self) -> bool:
        return self._client is not None and time.monotonic() >= self._down_until

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
        try:
            async with asyncio.timeout(self.config.timeout_s):
                resp = await self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
                async with resp["Body"] as stream:
                    if resp.get("ContentLength", 0) > self.max_object_bytes:
                        log.warning("result store object %s%s too large", self.prefix, key)
                        self.on_error("shared-corrupt")
                        return None
                    return bytes(await stream.read())
        except ClientError as err:
            if not is_missing(err):
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
        try:
            async with asyncio.timeout(self.config.upload_timeout_s):
                await self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=entry.encode(),
                    ContentType="application/octet-stream",  # an entry, not the image itself
                )
        except ClientError as err:
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


def describe(err: Exception) -> str:
    """One short line for the log: S3's error code, or the exception's class and message."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code") or "error")
    return f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
